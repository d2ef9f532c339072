package cloudmeta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Errors a fetch can end with; test with errors.Is.
var (
	// ErrNotFound: the service answered 404 for a path (the field does not exist here).
	ErrNotFound = errors.New("metadata: not found")
	// ErrTooLarge: a response body was larger than max_response_bytes.
	ErrTooLarge = errors.New("metadata: response too large")
	// ErrMalformed: a response did not have the provider's documented shape.
	ErrMalformed = errors.New("metadata: malformed response")
)

// dialContext opens connections to the metadata service. Tests replace it with a dialer that
// refuses anything outside loopback, so no test can ever reach a real metadata address.
var dialContext = (&net.Dialer{Timeout: DefaultTimeout}).DialContext

// counters are the fetcher's self-observation, read through Watcher.Stats.
type counters struct {
	requests  atomic.Uint64
	failures  atomic.Uint64
	oversized atomic.Uint64
}

// fetcher does bounded HTTP requests against one metadata base URL.
type fetcher struct {
	ctx      context.Context
	client   *http.Client
	base     string
	timeout  time.Duration
	maxBytes int64
	counters *counters
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			// The metadata service is link-local: never through a proxy from the environment.
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialContext(ctx, network, addr)
			},
			// One fetch an hour: keeping connections (and their goroutines) alive buys nothing.
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: 0, // the per-request context bounds the whole exchange
		},
		// A metadata service never redirects to somewhere we should follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do sends one request and returns the body of a 200 answer. Any other status is an error;
// 404 wraps ErrNotFound.
func (f *fetcher) do(method, path string, header http.Header) ([]byte, http.Header, error) {
	f.counters.requests.Add(1)
	body, h, err := f.doOnce(method, path, header)
	if err != nil {
		f.counters.failures.Add(1)
		if errors.Is(err, ErrTooLarge) {
			f.counters.oversized.Add(1)
		}
	}
	return body, h, err
}

func (f *fetcher) doOnce(method, path string, header http.Header) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.base+path, http.NoBody)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	// Read one byte past the cap to tell "exactly the cap" from "more than the cap".
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, nil, fmt.Errorf("%s %s: body exceeds %d bytes: %w", method, path, f.maxBytes, ErrTooLarge)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, resp.Header, nil
	case http.StatusNotFound:
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, ErrNotFound)
	default:
		return nil, nil, &statusError{method: method, path: path, code: resp.StatusCode}
	}
}

// statusError is a non-200, non-404 answer.
type statusError struct {
	method, path string
	code         int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d %s", e.method, e.path, e.code, http.StatusText(e.code))
}

func get(f *fetcher, path string, header http.Header) ([]byte, error) {
	b, _, err := f.do(http.MethodGet, path, header)
	return b, err
}

// getText fetches a single-value text path and validates it with parseText.
func getText(f *fetcher, path string, header http.Header) (string, error) {
	b, err := get(f, path, header)
	if err != nil {
		return "", err
	}
	v, err := parseText(b)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	return v, nil
}

// getOptionalText is getText where 404 means "no such field on this instance" (no public IP,
// no AZ id in an old region): it yields "" and no error.
func getOptionalText(f *fetcher, path string, header http.Header) (string, error) {
	v, err := getText(f, path, header)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return v, err
}

// maxValueLen bounds one metadata value: ids, types, zones and IPs are short. Anything longer
// is not an answer from a metadata service (e.g. an HTML page from something else listening
// on the link-local address).
const maxValueLen = 256

// parseText turns a single-value text response into the value: surrounding whitespace is
// trimmed; empty, multi-line, over-long, non-UTF-8 or control-character bodies are malformed.
func parseText(b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	if err := checkValue(s); err != nil {
		return "", err
	}
	if s == "" {
		return "", fmt.Errorf("empty value: %w", ErrMalformed)
	}
	return s, nil
}

// checkValue vets a value taken from any response before it becomes a label value.
func checkValue(s string) error {
	if len(s) > maxValueLen {
		return fmt.Errorf("value of %d bytes is longer than %d: %w", len(s), maxValueLen, ErrMalformed)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("value is not UTF-8: %w", ErrMalformed)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '<' || r == '>' {
			return fmt.Errorf("value %q has a control or markup character: %w", s, ErrMalformed)
		}
	}
	return nil
}

// checkIPv4 vets an address field: empty is allowed (no such address), anything else must be
// a dotted-quad IPv4 address.
func checkIPv4(field, s string) error {
	if s != "" && !isIPv4(s) {
		return fmt.Errorf("%s %q is not an IPv4 address: %w", field, truncate(s), ErrMalformed)
	}
	return nil
}

// keepIPv4 clears *ip and records why when it is not an IPv4 address: one bad field must not
// cost the others.
func keepIPv4(field string, ip *string, errs *[]error) {
	if err := checkIPv4(field, *ip); err != nil {
		*errs = append(*errs, err)
		*ip = ""
	}
}

// checkFields vets every value of a parsed Metadata.
func checkFields(m Metadata) error {
	for _, v := range []string{m.AccountID, m.InstanceID, m.InstanceType, m.LifeCycle, m.Region, m.AvailabilityZone, m.AvailabilityZoneID} {
		if err := checkValue(v); err != nil {
			return err
		}
	}
	if err := checkIPv4("local ipv4", m.LocalIPv4); err != nil {
		return err
	}
	return checkIPv4("public ipv4", m.PublicIPv4)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// lastSegment returns what follows the last "/" ("projects/1/zones/us-central1-a" gives
// "us-central1-a").
func lastSegment(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// regionOfZone strips the zone suffix after the last "-" ("us-central1-a" gives
// "us-central1", "fr-par-1" gives "fr-par").
func regionOfZone(zone string) string {
	if i := strings.LastIndexByte(zone, '-'); i > 0 {
		return zone[:i]
	}
	return ""
}
