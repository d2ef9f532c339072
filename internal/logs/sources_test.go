package logs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

const testDockerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDockerAndCRIDirectories(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig()
	cfg.Docker.Enabled, cfg.Docker.ContainersDir = true, filepath.Join(root, "docker")
	cfg.CRI.Enabled, cfg.CRI.PodsDir = true, filepath.Join(root, "pods")
	lookup := &fakeLookup{byRuntime: map[string]*containers.Container{
		testDockerID: {ID: "/docker/" + testDockerID, Name: "web"},
	}}
	rec := &recorder{}
	r := startReader(t, cfg, lookup, rec, nil)

	dockerLog := filepath.Join(cfg.Docker.ContainersDir, testDockerID, testDockerID+"-json.log")
	otherID := strings.Repeat("e", 64)
	otherLog := filepath.Join(cfg.Docker.ContainersDir, otherID, otherID+"-json.log")
	criLog := filepath.Join(cfg.CRI.PodsDir, "default_api-7f9c_1111-2222", "app", "0.log")
	for _, p := range []string{dockerLog, otherLog, criLog} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("a", 16<<10)
	appendLines(t, dockerLog,
		`{"log":"GET /health 200\n","stream":"stdout","time":"2024-01-02T03:04:05.000000001Z"}`,
		`{"log":"`+long+`","stream":"stderr","time":"2024-01-02T03:04:05.000000002Z"}`,
		`{"log":"tail\n","stream":"stderr","time":"2024-01-02T03:04:05.000000003Z"}`,
		`not json at all`,
	)
	appendLines(t, otherLog, `{"log":"from a container the registry does not know\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}`)
	appendLines(t, criLog,
		"2024-01-02T03:04:05.1Z stdout P first half, ",
		"2024-01-02T03:04:05.2Z stderr F an error line",
		"2024-01-02T03:04:05.3Z stdout F second half",
	)
	// A rotated generation is not followed.
	appendLines(t, filepath.Join(cfg.CRI.PodsDir, "default_api-7f9c_1111-2222", "app", "0.log.20240101-000000"),
		"2024-01-01T00:00:00Z stdout F rotated")
	awaitCount(rec, 5, 5*time.Second)

	got := map[string]Message{}
	for _, m := range rec.snapshot() {
		got[string(m.Container)+"|"+m.Stream+"|"+head80(m.Text)] = m
		if m.Source != SourceStdoutStderr {
			t.Errorf("source %q", m.Source)
		}
	}
	want := []string{
		"/docker/" + testDockerID + "|stdout|GET /health 200",
		"/docker/" + testDockerID + "|stderr|" + head80(long+"tail"),
		"/docker/" + otherID + "|stdout|from a container the registry does not know",
		"/k8s/default/api-7f9c/app|stderr|an error line",
		"/k8s/default/api-7f9c/app|stdout|first half, second half",
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("missing %q; got %v", k, keys(got))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d distinct messages, want %d: %v", len(got), len(want), keys(got))
	}
	if got := r.Stats().ParseErrors.Load(); got != 1 {
		t.Errorf("parse errors: got %d, want 1", got)
	}
	if m := got[want[1]]; len(m.Text) != len(long)+4 || m.Time.Nanosecond() != 3 {
		t.Errorf("joined docker line: %d bytes at %v", len(m.Text), m.Time)
	}
}

func keys(m map[string]Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestIncludeExclude(t *testing.T) {
	tests := []struct {
		name             string
		include, exclude []string
		names            []string
		want             bool
	}{
		{name: "no filter", names: []string{"web"}, want: true},
		{name: "excluded by name", exclude: []string{"web*"}, names: []string{"web-1", "/docker/x"}, want: false},
		{name: "excluded by id", exclude: []string{"/k8s/kube-system/*"}, names: []string{"coredns", "/k8s/kube-system/coredns-1/coredns"}, want: false},
		{name: "included unit", include: []string{"*.service"}, names: []string{"nginx.service"}, want: true},
		{name: "not included", include: []string{"*.service"}, names: []string{"web"}, want: false},
		{name: "exclude wins", include: []string{"*"}, exclude: []string{"noisy"}, names: []string{"noisy"}, want: false},
		{name: "empty names ignored", include: []string{"x"}, names: []string{"", ""}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newNameFilter(tt.include, tt.exclude)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.allows(tt.names...); got != tt.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestFileExcludes(t *testing.T) {
	ex := DefaultFileExcludes()
	for path, want := range map[string]bool{
		"/var/log/syslog":                    false,
		"/var/log/nginx/access.log":          false,
		"/var/log/syslog.1":                  true,
		"/var/log/syslog.2.gz":               true,
		"/var/log/messages-20240101":         true,
		"/var/log/pods/ns_p_u/c/0.log":       true,
		"/var/log/containers/p_ns_c-abc.log": true,
		"/var/log/dpkg.log":                  false,
		"/var/log/nginx-1.log":               false,
		"/var/log/app-20240101.log":          true,
		"/var/log/syslog.12":                 true,
	} {
		if got := excludedFile(ex, path); got != want {
			t.Errorf("%s: excluded=%v, want %v", path, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"line length", func(c *Config) { c.MaxLineLength = 10 }, "max_line_length"},
		{"open files", func(c *Config) { c.MaxOpenFiles = 0 }, "max_open_files"},
		{"poll", func(c *Config) { c.PollInterval = 0 }, "poll_interval"},
		{"flush", func(c *Config) { c.PatternsFlushInterval = -1 }, "patterns_flush_interval"},
		{"glob", func(c *Config) { c.Exclude = []string{"ok*", "["} }, `logs.exclude[1]: bad pattern "["`},
		{"file glob", func(c *Config) { c.Files.Include = []string{"/a/*.log", "/b/*.log", "/x/["} }, `logs.files.include[2]: bad pattern "/x/["`},
		{"docker dir", func(c *Config) { c.Docker.ContainersDir = "" }, "containers_dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %s", err, tt.want)
			}
		})
	}
	// logs.patterns validates itself (the collector calls it on every section): repeating it
	// here printed its message twice.
	dup := DefaultConfig()
	dup.Patterns.MaxPatterns = 0
	if err := dup.Validate(); err != nil {
		t.Fatalf("logs.patterns reported by logs too: %v", err)
	}
	off := DefaultConfig()
	off.Enabled, off.MaxLineLength = false, 0
	if err := off.Validate(); err != nil {
		t.Fatalf("disabled config should not be checked: %v", err)
	}
}

// Logs the directory scans cannot see (dockerd with another data-root, CRI logs elsewhere) are
// found through the registry's LogPath.
func TestRegistryLogPaths(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig()
	cfg.Docker.Enabled, cfg.Docker.ContainersDir = true, filepath.Join(root, "absent-docker")
	cfg.CRI.Enabled, cfg.CRI.PodsDir = true, filepath.Join(root, "absent-pods")
	dockerLog := filepath.Join(root, "data-root", "containers", testDockerID, testDockerID+"-json.log")
	criLog := filepath.Join(root, "elsewhere", "app", "0.log")
	lookup := &fakeLookup{list: []*containers.Container{
		{ID: "/docker/" + testDockerID, Runtime: "docker", Name: "web", LogPath: dockerLog},
		{ID: "/k8s/shop/api-1/api", Runtime: "containerd", Name: "api", LogPath: criLog},
		{ID: "/system.slice/cron.service", Runtime: "systemd", LogPath: ""},
	}}
	rec := &recorder{}
	startReader(t, cfg, lookup, rec, nil)
	for _, p := range []string{dockerLog, criLog} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	appendLines(t, dockerLog, `{"log":"from another data-root\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}`)
	appendLines(t, criLog, "2024-01-02T03:04:05Z stderr F from another pod log root")
	awaitCount(rec, 2, 5*time.Second)
	got := map[string]bool{}
	for _, m := range rec.snapshot() {
		got[string(m.Container)+"|"+m.Text] = true
	}
	for _, k := range []string{"/docker/" + testDockerID + "|from another data-root", "/k8s/shop/api-1/api|from another pod log root"} {
		if !got[k] {
			t.Errorf("missing %q in %v", k, got)
		}
	}
	if len(got) != 2 {
		t.Errorf("got %v", got)
	}
}
