package cluster

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

var plainHTTP = &http.Client{Timeout: 5 * time.Second}

// httpGet fetches a plain-HTTP health endpoint of a component.
func httpGet(url string) (string, error) {
	resp, err := plainHTTP.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}
