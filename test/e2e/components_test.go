package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDistributionComponents: the components the README says the distribution bundles are
// the ones it has.
func TestDistributionComponents(t *testing.T) {
	out, err := exec.Command(distBinary(t), "components").Output()
	if err != nil {
		t.Fatalf("components: %v", err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- name: "); ok {
			have[name] = true
		}
	}
	for _, want := range []string{
		"codexray", "host_metrics", "otlp", "prometheus", "otlp_grpc", "otlp_http", "debug",
		"batch", "memory_limiter", "health_check", "file_storage", "pprof",
	} {
		if !have[want] {
			t.Errorf("the distribution lacks %s (has %v)", want, have)
		}
	}
}
