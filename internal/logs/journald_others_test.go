//go:build !(cgo && linux)

package logs

import (
	"context"
	"strings"
	"testing"
)

func TestJournaldNotBuiltInIsAnError(t *testing.T) {
	cfg := testConfig()
	cfg.Journald.Enabled = true
	r := NewReader(cfg, nil, &recorder{}, nil)
	err := r.Start(context.Background(), nil)
	defer r.Shutdown()
	if err == nil || !strings.Contains(err.Error(), "journald source not built in") {
		t.Fatalf("got %v", err)
	}
}
