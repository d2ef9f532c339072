package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// `otelcol-codexray validate` refuses each configuration mistake it can see without
// privileges, with a message naming the option, once. A missing storage extension cannot be
// seen there (a receiver's validation does not see the service's extensions): the agent's start
// fails with the option's name instead.
func TestValidateNamesTheOption(t *testing.T) {
	bin := distBinary(t)
	tests := []struct {
		name, receiver, want string
	}{
		{"nonexistent node.proc_root", "node: {proc_root: /nonexistent/proc}", `node.proc_root: "/nonexistent/proc" does not exist`},
		{"nonexistent cgroups.root", "cgroups: {root: /nonexistent/cgroup}", `cgroups.root: "/nonexistent/cgroup" does not exist`},
		{"a list for a path", "node: {proc_root: [/proc]}", "node.proc_root: expected a single value, got a list"},
		{"a string for a list", `logs: {files: {include: "/var/log/{a,b}.log"}}`, `logs.files.include: expected a list, got the string "/var/log/{a,b}.log"`},
		{"integer overflow", "logs: {max_open_files: 99999999999999999999}", "logs.max_open_files: 1e+20 is out of range"},
		{"bad glob", `logs: {files: {include: ["/var/log/*.log", "/a/*.log", "/x/["]}}`, `logs.files.include[2]: bad pattern "/x/["`},
		{"max_patterns", "logs: {patterns: {max_patterns: 0}}", "max_patterns must be at least 1, got 0"},
		{"storage conflict", "storage: file_storage/a\n    logs: {storage: file_storage/b}", `storage "file_storage/a" and logs.storage "file_storage/b" name different extensions`},
	}
	config := func(t *testing.T, receiver string) string {
		t.Helper()
		return writeFile(t, "config.yaml", fmt.Sprintf(`
receivers:
  codexray:
    %s
exporters:
  debug: {}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    metrics: {receivers: [codexray], exporters: [debug]}
`, receiver))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config := config(t, tt.receiver)
			out, err := exec.Command(bin, "validate", "--config", config).CombinedOutput()
			if err == nil {
				t.Fatalf("validate accepted it:\n%s", out)
			}
			if n := strings.Count(string(out), tt.want); n != 1 {
				t.Fatalf("validate said %d times %q:\n%s", n, tt.want, out)
			}
		})
	}

	t.Run("missing storage extension", func(t *testing.T) {
		config := config(t, "storage: file_storage/missing\n    cloud: {dmi_root: "+t.TempDir()+"}")
		if out, err := exec.Command(bin, "validate", "--config", config).CombinedOutput(); err != nil {
			t.Fatalf("validate cannot see extensions, yet refused: %v\n%s", err, out)
		}
		cmd := exec.Command(bin, "--config", config)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("the agent ran with a missing storage extension:\n%s", tail(string(out), 3000))
		}
		want := `storage: extension "file_storage/missing" is not configured in service.extensions`
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("start: %v, want a failure saying %q:\n%s", err, want, tail(string(out), 3000))
		}
	})
}
