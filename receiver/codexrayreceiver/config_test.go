package codexrayreceiver

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.MustNewIDWithName("codexray", name).String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestConfigDefaultIsValidAndUseful(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, 15*time.Second, cfg.CollectionInterval)
	assert.Equal(t, "/proc", cfg.Node.ProcRoot)
	for name, enabled := range map[string]bool{
		"ebpf": cfg.EBPF.Enabled, "taskstats": cfg.Taskstats.Enabled, "cgroups": cfg.Cgroups.Enabled,
		"logs": cfg.Logs.Enabled, "cloud": cfg.Cloud.Enabled,
	} {
		assert.True(t, enabled, "source %s must be on by default", name)
	}
	assert.Equal(t, metadata.DefaultMetricsBuilderConfig(), cfg.MetricsBuilderConfig)
}

func TestConfigCustom(t *testing.T) {
	cfg, err := loadConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, cfg.CollectionInterval)
	assert.Equal(t, "testdata/node/proc", cfg.Node.ProcRoot)
	assert.False(t, cfg.Taskstats.Enabled)
	assert.True(t, cfg.EBPF.Enabled)
	assert.False(t, cfg.Metrics.ContainerNetLatency.Enabled)
	assert.True(t, cfg.Metrics.ContainerNetLatency.EnabledSetByUser())
	assert.True(t, cfg.Metrics.ContainerResourcesSwapinDelay.Enabled)
	assert.True(t, cfg.Metrics.ContainerResourcesCPUDelay.Enabled)
	assert.False(t, cfg.ResourceAttributes.HostID.Enabled)
}

// hostProc stands for a host's procfs mounted in the agent's pod (/host/proc): validation wants
// it to exist.
const hostProc = "testdata/node/proc"

// procRoots are the proc_root every source is built with.
func procRoots(c *Config) map[string]string {
	return map[string]string{
		"node": c.Node.ProcRoot, "ebpf": c.EBPF.ProcRoot, "taskstats": c.Taskstats.ProcRoot,
		"cgroups": c.Cgroups.ProcRoot, "logs.files": c.Logs.Files.ProcRoot,
	}
}

func TestConfigSectionProcRootsFollowNode(t *testing.T) {
	tests := []struct {
		name string
		want map[string]string
	}{
		{"", map[string]string{"node": "/proc", "ebpf": "/proc", "taskstats": "/proc", "cgroups": "/proc", "logs.files": "/proc"}},
		{"node_proc_root", map[string]string{
			"node": hostProc, "ebpf": hostProc, "taskstats": hostProc, "cgroups": hostProc, "logs.files": hostProc,
		}},
		// An explicit section value wins, also when it is the old default.
		{"section_proc_root", map[string]string{
			"node": hostProc, "ebpf": hostProc, "taskstats": hostProc, "cgroups": "/dev", "logs.files": "/proc",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(t, tt.name)
			require.NoError(t, err)
			before := procRoots(cfg)
			assert.Equal(t, tt.want, procRoots(cfg.withProcRoots()))
			assert.Equal(t, before, procRoots(cfg), "the user's config must not change")
		})
	}
}

// TestConfigErrorsAreClear: every mistake `validate` can see without privileges is refused
// with one message naming the option by its full path, once.
func TestConfigErrorsAreClear(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{"bad_interval", "collection_interval must be at least 1s, got 10ms"},
		{"unknown_option", "no_such_option"},
		{"containers_enabled", "containers.enabled was removed: the container registry always runs"},
		{"int_overflow", "logs.max_open_files: 1e+20 is out of range: must be from -9223372036854775808 to 9223372036854775807"},
		{"int_uint64", "logs.max_line_length: 9223372036854775808 is out of range: must be from -9223372036854775808 to 9223372036854775807"},
		{"not_whole", "ebpf.ring_buffer_size: 4096.5 is not a whole number"},
		{"path_as_list", "node.proc_root: expected a single value, got a list"},
		{"list_as_string", `logs.files.include: expected a list, got the string "/var/log/*.log,/var/log/{a,b}.log" (write ["/var/log/*.log,/var/log/{a,b}.log"] for one entry)`},
		{"list_element_as_list", "node.machine_id_paths[1]: expected a single value, got a list"},
		{"section_as_list", "cgroups: expected a section of options, got a list"},
		{"bad_glob", `logs.files.include[2]: bad pattern "/x/[": syntax error in pattern`},
		{"bad_name_glob", `logs.exclude[1]: bad pattern "bad[": unexpected end of input`},
		{"bad_max_patterns", "max_patterns must be at least 1, got 0"},
		{"missing_proc_root", `node.proc_root: "/nonexistent/proc" does not exist`},
		{"missing_cgroup_root", `cgroups.root: "/nonexistent/cgroup" does not exist`},
		{"missing_journal_dir", `logs.journald.directory: "/nonexistent/journal" does not exist`},
		{"proc_root_is_file", `node.proc_root: "testdata/node/machine-id" is not a directory`},
		{"storage_conflict", `storage "file_storage/a" and logs.storage "file_storage/b" name different extensions`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(t, tt.name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Equal(t, 1, strings.Count(err.Error(), tt.wantErr), "reported more than once: %s", err)
		})
	}
}
