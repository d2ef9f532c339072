package cloudmeta

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain makes two promises: no goroutine outlives a test (goleak), and no test reaches a
// real metadata address — every connection this package opens must go to loopback, where the
// httptest servers imitating the providers listen.
func TestMain(m *testing.M) {
	realDial := dialContext
	dialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("test dial guard: refusing %s %s (only loopback is allowed in tests)", network, addr)
		}
		return realDial(ctx, network, addr)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
