package codexrayreceiver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// TestContainerMetricsIncompleteCgroups collects a docker container (hybrid host, cgroupfs
// driver) whose runtime has created its cgroup v2 and memory cgroups but not yet its cpu and
// cpuacct ones: the collection reports its memory and no CPU limit or throttling at all, never
// a zero or another cgroup's (the cpu root's) numbers; its second collection still finds it
// incomplete and counts it once under codexray_source_errors_total{reason="cgroup_incomplete"};
// once the runtime creates the rest, the next collection is complete.
func TestContainerMetricsIncompleteCgroups(t *testing.T) {
	const id = "f258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369c"
	ctr := "/docker/" + id
	root, proc := t.TempDir(), t.TempDir()
	put := func(file, content string) {
		t.Helper()
		require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
		require.NoError(t, os.WriteFile(file, []byte(content), 0o644))
	}
	put(filepath.Join(root, "unified", "cgroup.controllers"), "")
	put(filepath.Join(root, "unified", ctr, "cpu.stat"), "usage_usec 2000000\n")
	put(filepath.Join(root, "memory", ctr, "memory.stat"), "total_rss 4096\ntotal_cache 8192\n")
	put(filepath.Join(root, "memory", ctr, "memory.limit_in_bytes"), "67108864\n")
	// The cpu hierarchy's root: another cgroup's numbers, which must never show.
	put(filepath.Join(root, "cpu", "cpu.stat"), "nr_periods 1\nnr_throttled 1\nthrottled_time 5000000000\n")
	put(filepath.Join(root, "cpu", "cpu.cfs_quota_us"), "100000\n")
	put(filepath.Join(root, "cpu", "cpu.cfs_period_us"), "100000\n")
	put(filepath.Join(root, "cpuacct", "cpuacct.usage"), "999000000000\n")
	put(filepath.Join(proc, "77", "cgroup"), "4:memory:"+ctr+"\n2:cpuacct:/\n1:cpu:/\n0::"+ctr+"\n")

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	onlyNode(t, cfg)
	cfg.Cgroups.Enabled = true
	cfg.Cgroups.Root, cfg.Cgroups.ProcRoot = root, proc
	cfg.Containers.DockerSocket = ""
	cfg.Containers.CRISockets = nil
	cfg.Containers.ScanInterval = time.Hour
	r := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), nil)
	require.NoError(t, r.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	r.registry.Scan()

	incomplete := func() float64 {
		mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
		r.containerMetrics.recordNode(mb, 0)
		return metricValues(t, mb.Emit())["codexray.source.errors{reason=cgroup_incomplete,source=containers}"]
	}
	for collection := 1; collection <= 2; collection++ {
		got, _ := containerResource(t, r.collect(context.Background(), time.Now()), "/docker/"+id)
		assert.Equal(t, 4096.0, got["container.resources.memory.rss"], "collection %d", collection)
		assert.Equal(t, 67108864.0, got["container.resources.memory.limit"], "collection %d", collection)
		assert.Equal(t, 2.0, got["container.resources.cpu.usage"], "collection %d: usage from the container's cgroup v2", collection)
		for _, absent := range []string{"container.resources.cpu.throttled", "container.resources.cpu.limit_cores"} {
			_, ok := got[absent]
			assert.False(t, ok, "collection %d: %s = %v without the container's cpu cgroup", collection, absent, got[absent])
		}
		assert.Equal(t, float64(collection-1), incomplete(), "collection %d", collection)
	}

	put(filepath.Join(root, "cpu", ctr, "cpu.stat"), "nr_periods 10\nnr_throttled 2\nthrottled_time 30000000\n")
	put(filepath.Join(root, "cpu", ctr, "cpu.cfs_quota_us"), "30000\n")
	put(filepath.Join(root, "cpu", ctr, "cpu.cfs_period_us"), "100000\n")
	put(filepath.Join(root, "cpuacct", ctr, "cpuacct.usage"), "2000000500\n")
	got, _ := containerResource(t, r.collect(context.Background(), time.Now()), "/docker/"+id)
	assert.Equal(t, 0.3, got["container.resources.cpu.limit_cores"])
	assert.Equal(t, 0.03, got["container.resources.cpu.throttled"])
	assert.Equal(t, 2.0000005, got["container.resources.cpu.usage"])
	assert.Equal(t, 1.0, incomplete(), "counted once per container instance")
}
