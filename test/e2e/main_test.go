package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the programs the tests built (each in a temporary directory of its own)
// once they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, bin := range []string{workloadBin, l7Peers.path, l7Fixtures.path} {
		if bin != "" {
			_ = os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}
