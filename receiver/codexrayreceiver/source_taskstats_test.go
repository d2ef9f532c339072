package codexrayreceiver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/taskstats"
	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

func newTestTaskstatsSource(t *testing.T, mutate func(*Config)) *taskstatsSource {
	t.Helper()
	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	rcfg.Taskstats.Enabled = true
	if mutate != nil {
		mutate(rcfg)
	}
	src := newTaskstatsSource(sourceEnv{cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type), registry: &containers.Registry{}}).(*taskstatsSource)
	require.Equal(t, "taskstats", src.name())
	return src
}

func TestTaskstatsSourceLifecycle(t *testing.T) {
	t.Run("disabled", func(t *testing.T) {
		src := newTestTaskstatsSource(t, func(c *Config) { c.Taskstats.Enabled = false })
		assert.False(t, src.enabled())
	})
	t.Run("shutdown without start", func(t *testing.T) {
		src := newTestTaskstatsSource(t, nil)
		require.NoError(t, src.shutdown(context.Background()))
		require.NoError(t, src.shutdown(context.Background()))
	})
	t.Run("record before start is a no-op", func(t *testing.T) {
		src := newTestTaskstatsSource(t, nil)
		mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
		src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), &containers.Container{ID: "/docker/x"})
		src.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
		assert.Equal(t, 0, mb.Emit().MetricCount())
	})
}

// cgroupResolver attributes processes to one docker container by /proc/<pid>/cgroup, standing
// in for the registry so this test is about the source.
type cgroupResolver struct{ id string }

func (r cgroupResolver) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup")
	if err != nil || !strings.Contains(string(b), "/docker/"+r.id) {
		return "", false
	}
	return containers.ID("/docker/" + r.id), true
}

// sumValue returns the value of the one point of metric name in md.
func sumValue(t *testing.T, md pmetric.Metrics, name string) (float64, bool) {
	t.Helper()
	v, ok := metricstest.Named(md, name)[""]
	return v, ok
}

func TestTaskstatsSourceRecordsContainerDelays(t *testing.T) {
	testutil.RequireDocker(t)
	out, err := exec.Command("docker", "run", "-d", "--label", "codexray-test=1", "--network", "none", "--cpus", "0.2",
		testutil.DockerImage, "sh", "-c", "for i in 1 2; do (while :; do :; done) & done; wait").CombinedOutput()
	require.NoError(t, err, "%s", out)
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })

	src := newTestTaskstatsSource(t, func(*Config) {})
	src.resolver = cgroupResolver{id: id}
	err = src.start(context.Background(), componenttest.NewNopHost())
	testutil.SkipUnlessPrivileged(t, err == nil, "taskstats source: %v", err)
	t.Cleanup(func() { require.NoError(t, src.shutdown(context.Background())) })

	ctr := &containers.Container{ID: containers.ID("/docker/" + id)}
	mbCfg := metadata.DefaultMetricsBuilderConfig()
	mbCfg.Metrics.ContainerResourcesSwapinDelay.Enabled = true
	mb := metadata.NewMetricsBuilder(mbCfg, receivertest.NewNopSettings(metadata.Type))
	record := func() pmetric.Metrics {
		src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), ctr)
		return mb.Emit()
	}
	time.Sleep(500 * time.Millisecond)
	first := record()
	cpu0, ok := sumValue(t, first, "container.resources.cpu.delay")
	require.True(t, ok, "no cpu delay metric")
	_, ok = sumValue(t, first, "container.resources.disk.delay")
	require.True(t, ok, "no disk delay metric")
	_, ok = sumValue(t, first, "container.resources.swapin.delay")
	require.True(t, ok, "swapin delay metric enabled: swapin delay expected")
	time.Sleep(3 * time.Second)
	cpu1, _ := sumValue(t, record(), "container.resources.cpu.delay")
	t.Logf("container_resources_cpu_delay_seconds_total %.3f → %.3f", cpu0, cpu1)
	assert.GreaterOrEqual(t, cpu1-cpu0, 1.0, "two CPU loops under --cpus 0.2 wait more than 1s in 3s")
}

// The same through the real registry: processes attributed by their cgroup, the container
// found by its docker id.
func TestTaskstatsSourceWithRegistry(t *testing.T) {
	testutil.RequireDocker(t)
	reg := &containers.Registry{}
	require.NoError(t, reg.Start(containers.DefaultConfig(), cgroups.DefaultConfig(), nil))
	t.Cleanup(func() { require.NoError(t, reg.Close()) })

	out, err := exec.Command("docker", "run", "-d", "--label", "codexray-test=1", "--network", "none", "--cpus", "0.2",
		testutil.DockerImage, "sh", "-c", "for i in 1 2; do (while :; do :; done) & done; wait").CombinedOutput()
	require.NoError(t, err, "%s", out)
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })

	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	rcfg.Taskstats.Enabled = true
	src := newTaskstatsSource(sourceEnv{cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type), registry: reg}).(*taskstatsSource)
	err = src.start(context.Background(), componenttest.NewNopHost())
	testutil.SkipUnlessPrivileged(t, err == nil, "taskstats source: %v", err)
	t.Cleanup(func() { require.NoError(t, src.shutdown(context.Background())) })

	var ctr *containers.Container
	require.Eventually(t, func() bool {
		reg.Scan()
		c, ok := reg.ContainerByRuntimeID(id)
		ctr = c
		return ok
	}, 10*time.Second, 100*time.Millisecond, "registry never saw container %s", id)

	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), ctr)
	cpu0, ok := sumValue(t, mb.Emit(), "container.resources.cpu.delay")
	require.True(t, ok, "no cpu delay for %s", ctr.ID)
	time.Sleep(3 * time.Second)
	src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), ctr)
	cpu1, _ := sumValue(t, mb.Emit(), "container.resources.cpu.delay")
	t.Logf("%s: cpu delay %.3f → %.3f", ctr.ID, cpu0, cpu1)
	assert.GreaterOrEqual(t, cpu1-cpu0, 1.0)
}

// fakeDelays is a delayCollector whose totals the test sets.
type fakeDelays struct {
	delays    map[containers.ID]taskstats.ContainerDelays
	status    taskstats.Status
	forgotten []containers.ID
}

func (f *fakeDelays) ContainerIDs() []containers.ID {
	ids := make([]containers.ID, 0, len(f.delays))
	for id := range f.delays {
		ids = append(ids, id)
	}
	return ids
}

func (f *fakeDelays) Forget(ids []containers.ID) {
	for _, id := range ids {
		if _, ok := f.delays[id]; ok {
			delete(f.delays, id)
			f.forgotten = append(f.forgotten, id)
		}
	}
}

func (f *fakeDelays) Collect(time.Time) error { return nil }
func (f *fakeDelays) ContainerDelays(id containers.ID) (taskstats.ContainerDelays, bool) {
	d, ok := f.delays[id]
	return d, ok
}
func (f *fakeDelays) Status() taskstats.Status { return f.status }
func (f *fakeDelays) Close() error             { return nil }

func (f *fakeDelays) Save() []taskstats.SavedContainer { return nil }

// The collector forgets the totals of a container idle for 5 minutes and starts them again from
// zero when it comes back: the delays must carry the totals' creation as their start, so no
// backend sees a cumulative value fall under an unchanged start.
func TestTaskstatsSourceStartFollowsTotals(t *testing.T) {
	src := newTestTaskstatsSource(t, nil)
	fake := &fakeDelays{delays: map[containers.ID]taskstats.ContainerDelays{}}
	src.collector = fake
	ctr := &containers.Container{ID: "/docker/x"}
	mbCfg := metadata.DefaultMetricsBuilderConfig()
	mbCfg.Metrics.ContainerResourcesSwapinDelay.Enabled = true
	mbCfg.Metrics.ContainerResourcesMemoryReclaimDelay.Enabled = true
	mbCfg.Metrics.ContainerResourcesMemoryThrashingDelay.Enabled = true
	receiverStart := time.Unix(1000, 0).UTC()
	mb := metadata.NewMetricsBuilder(mbCfg, receivertest.NewNopSettings(metadata.Type),
		metadata.WithStartTime(pcommon.NewTimestampFromTime(receiverStart)))
	names := []string{
		"container.resources.cpu.delay", "container.resources.disk.delay", "container.resources.swapin.delay",
		"container.resources.memory.reclaim.delay", "container.resources.memory.thrashing.delay",
	}
	record := func(at time.Time) map[string]metricstest.Point {
		src.recordContainer(mb, pcommon.NewTimestampFromTime(at), ctr)
		md := mb.Emit()
		out := map[string]metricstest.Point{}
		for _, p := range metricstest.Points(md) {
			out[p.Name] = p
		}
		return out
	}

	firstLife := receiverStart.Add(time.Minute)
	fake.delays[ctr.ID] = taskstats.ContainerDelays{CPU: 5, Disk: 4, Swapin: 3, MemoryReclaim: 2, MemoryThrashing: 1, Since: firstLife}
	got := record(firstLife.Add(15 * time.Second))
	for _, n := range names {
		require.Contains(t, got, n)
		assert.Equal(t, firstLife, got[n].Start.AsTime(), n)
	}
	assert.Equal(t, 5.0, got["container.resources.cpu.delay"].Value)

	// Forgotten: nothing recorded.
	delete(fake.delays, ctr.ID)
	assert.Empty(t, record(firstLife.Add(7*time.Minute)))

	// Back, from zero: a lower value under a later start.
	secondLife := firstLife.Add(8 * time.Minute)
	fake.delays[ctr.ID] = taskstats.ContainerDelays{CPU: 0.5, Since: secondLife}
	got = record(secondLife.Add(15 * time.Second))
	for _, n := range names {
		require.Contains(t, got, n)
		assert.Equal(t, secondLife, got[n].Start.AsTime(), n)
	}
	assert.Equal(t, 0.5, got["container.resources.cpu.delay"].Value)
}

func TestTaskstatsDegradation(t *testing.T) {
	src := newTestTaskstatsSource(t, nil)
	fake := &fakeDelays{status: taskstats.Status{TaskDelayacct: true}}
	src.collector = fake
	assert.Empty(t, src.degradation())
	fake.status.TaskDelayacct = false
	assert.Contains(t, src.degradation(), "kernel.task_delayacct is 0")
	fake.status.ExitListenerErr = errors.New("permission denied")
	assert.Contains(t, src.degradation(), "no exit notifications")
	assert.Contains(t, src.degradation(), "permission denied")
}
