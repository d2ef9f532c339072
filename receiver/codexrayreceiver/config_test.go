package codexrayreceiver

import (
	"path/filepath"
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
	assert.Equal(t, "/host/proc", cfg.Node.ProcRoot)
	assert.False(t, cfg.Taskstats.Enabled)
	assert.True(t, cfg.EBPF.Enabled)
	assert.False(t, cfg.Metrics.ContainerNetLatency.Enabled)
	assert.True(t, cfg.Metrics.ContainerNetLatency.EnabledSetByUser())
	assert.True(t, cfg.Metrics.ContainerResourcesSwapinDelay.Enabled)
	assert.True(t, cfg.Metrics.ContainerResourcesCPUDelay.Enabled)
	assert.False(t, cfg.ResourceAttributes.HostID.Enabled)
}

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
			"node": "/host/proc", "ebpf": "/host/proc", "taskstats": "/host/proc", "cgroups": "/host/proc", "logs.files": "/host/proc",
		}},
		// An explicit section value wins, also when it is the old default.
		{"section_proc_root", map[string]string{
			"node": "/host/proc", "ebpf": "/host/proc", "taskstats": "/host/proc", "cgroups": "/other/proc", "logs.files": "/proc",
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

func TestConfigErrorsAreClear(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{"bad_interval", "collection_interval must be at least 1s, got 10ms"},
		{"unknown_option", "no_such_option"},
		{"containers_enabled", "containers.enabled was removed: the container registry always runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(t, tt.name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}
