package codexrayreceiver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// newFixtureContainerMetrics runs the registry over the pure cgroup v2 fixture host in
// testdata/cgroupfs/v2 (no container runtime).
func newFixtureContainerMetrics(t *testing.T) (*containerMetrics, *containers.Registry) {
	t.Helper()
	root, err := filepath.Abs("../../testdata")
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Cgroups.Root = filepath.Join(root, "cgroupfs", "v2")
	cfg.Node.ProcRoot = filepath.Join(root, "proc", "v2") // cgroups.proc_root left unset: node's
	cfg.Containers.DockerSocket = ""
	cfg.Containers.CRISockets = nil
	cfg.Containers.ScanInterval = time.Hour
	cfg = cfg.withProcRoots()
	reg := &containers.Registry{}
	require.NoError(t, reg.Start(cfg.Containers, cfg.Cgroups, nil))
	t.Cleanup(func() { require.NoError(t, reg.Close()) })
	reg.Scan()
	src := newContainerMetrics(cfg.Cgroups, reg, zap.NewNop())
	return src, reg
}

// metricValues is metricstest.Values of md, which must hold one resource.
func metricValues(t *testing.T, md pmetric.Metrics) map[string]float64 {
	t.Helper()
	require.Equal(t, 1, md.ResourceMetrics().Len())
	return metricstest.Values(md)
}

func TestContainersSourceRecordsResources(t *testing.T) {
	src, reg := newFixtureContainerMetrics(t)
	c, ok := reg.ContainerByPID(201)
	require.True(t, ok)
	require.Equal(t, containers.ID("/docker/7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"), c.ID)

	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), c)
	got := metricValues(t, mb.Emit())

	want := map[string]float64{
		"container.info{image=}":                                 1,
		"container.restarts":                                     0,
		"container.resources.cpu.usage":                          1.123456,
		"container.resources.cpu.throttled":                      0.005,
		"container.resources.cpu.limit_cores":                    0.5,
		"container.resources.memory.rss":                         1<<20 + 4096, // anon + file_mapped
		"container.resources.memory.cache":                       2 << 20,
		"container.resources.memory.limit":                       64 << 20,
		"container.resources.disk.reads{device=nvme0n1}":         100,
		"container.resources.disk.writes{device=nvme0n1}":        200,
		"container.resources.disk.read_bytes{device=nvme0n1}":    4096000,
		"container.resources.disk.written_bytes{device=nvme0n1}": 8192000,
		"container.resources.cpu.pressure.waiting{kind=some}":    0.251,
		"container.resources.cpu.pressure.waiting{kind=full}":    0.051,
		"container.resources.memory.pressure.waiting{kind=some}": 0.0016,
		"container.resources.memory.pressure.waiting{kind=full}": 0.0008,
		"container.resources.io.pressure.waiting{kind=some}":     3.00001,
		"container.resources.io.pressure.waiting{kind=full}":     2.00001,
	}
	require.Len(t, got, len(want), "got %v", got)
	for k, v := range want {
		assert.InDelta(t, v, got[k], 1e-9, k)
	}
}

// TestContainerMetricsGolden records every container of the pure cgroup v2 fixture host.
func TestContainerMetricsGolden(t *testing.T) {
	src, reg := newFixtureContainerMetrics(t)
	list := reg.Containers()
	slices.SortFunc(list, func(a, b *containers.Container) int { return strings.Compare(string(a.ID), string(b.ID)) })
	require.NotEmpty(t, list)
	cfg := metadata.DefaultMetricsBuilderConfig()
	cfg.ResourceAttributes.CorootContainerID.Enabled, cfg.ResourceAttributes.CorootAppID.Enabled = true, true
	mb := metadata.NewMetricsBuilder(cfg, receivertest.NewNopSettings(metadata.Type))
	now := pcommon.NewTimestampFromTime(time.Now())
	for _, c := range list {
		src.recordContainer(mb, now, c)
		rb := mb.NewResourceBuilder()
		describeContainer(rb, c, corootNamesOf(c, time.Now()))
		mb.EmitForResource(metadata.WithResource(rb.Emit()))
	}
	src.recordNode(mb, now)
	metricstest.Golden(t, mb.Emit(), "testdata/golden/containers_v2.txt")
}

func TestContainersSourceNoLimitsNoSeries(t *testing.T) {
	src, reg := newFixtureContainerMetrics(t)
	// The burstable containerd container has cpu.max "max" and memory.max "max".
	c, ok := reg.ContainerByPID(202)
	require.True(t, ok)
	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), c)
	got := metricValues(t, mb.Emit())
	assert.NotContains(t, got, "container.resources.cpu.limit_cores")
	assert.NotContains(t, got, "container.resources.memory.limit")
	assert.InDelta(t, 2.123456, got["container.resources.cpu.usage"], 1e-9)
	assert.Contains(t, got, "container.resources.disk.reads{device=sda}")
	assert.Contains(t, got, "container.resources.disk.reads{device=sdb}")
}

// TestRegistryThatCannotStartDegrades: without a cgroup hierarchy the registry stays empty and
// reports "failed"; the sources still start and attribute through its (missing) lookups.
func TestRegistryThatCannotStartDegrades(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	onlyNode(t, cfg)
	cfg.Cgroups.Root = t.TempDir()
	r := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), nil)
	working := &fakeSource{id: "working", on: true}
	r.newSources = func(env sourceEnv) []source {
		require.NotNil(t, env.registry, "sources always get a registry")
		return []source{working}
	}
	var reported []*componentstatus.Event
	host := &statusHost{report: func(ev *componentstatus.Event) { reported = append(reported, ev) }}
	require.NoError(t, r.Start(context.Background(), host))
	md := r.collect(context.Background(), time.Now())
	require.NoError(t, r.Shutdown(context.Background()))

	assert.True(t, working.started)
	require.Len(t, reported, 1)
	assert.ErrorContains(t, reported[0].Err(), registryName+": ")
	assert.Equal(t, map[string]float64{
		"codexray.source.status{source=containers,state=failed}": 1,
		"codexray.source.status{source=working,state=running}":   1,
	}, filterPrefix(metricValues(t, md), "codexray.source.status"))
}

// filterPrefix keeps the entries whose key starts with prefix.
func filterPrefix(m map[string]float64, prefix string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// fakeCRIRuntime answers ContainerStatus for fixed containers, like containerd's CRI plugin.
type fakeCRIRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	containers map[string]*runtimeapi.ContainerStatus
}

func (f *fakeCRIRuntime) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if st, ok := f.containers[req.GetContainerId()]; ok {
		return &runtimeapi.ContainerStatusResponse{Status: st}, nil
	}
	return nil, status.Errorf(codes.NotFound, "container %q not found", req.GetContainerId())
}

func (f *fakeCRIRuntime) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	return nil, status.Errorf(codes.NotFound, "sandbox %q not found", req.GetPodSandboxId())
}

func serveFakeCRI(t *testing.T, f *fakeCRIRuntime) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cx") // short: unix socket paths are limited to 108 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "cri.sock")
	l, err := net.Listen("unix", socket)
	require.NoError(t, err)
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return socket
}

// containerResource returns the metrics of the resource with this container.id, and the
// start timestamp every instance counter of it carries (failing when they differ).
func containerResource(t *testing.T, md pmetric.Metrics, id string) (map[string]float64, pcommon.Timestamp) {
	t.Helper()
	one, ok := metricstest.Resource(md, "codexray.container.id", id)
	require.True(t, ok, "no resource with codexray.container.id %s", id)
	var start pcommon.Timestamp
	for _, p := range metricstest.Points(one) {
		if p.Type != pmetric.MetricTypeSum || !instanceCounters[p.Name] {
			continue // the other sums accumulate per id from their own start
		}
		if start == 0 {
			start = p.Start
		}
		require.Equal(t, start, p.Start, "start of %s", p.Key())
	}
	return metricValues(t, one), start
}

// sumStart returns the start timestamp of the one data point of the sum name in the resource
// with this container.id.
func sumStart(t *testing.T, md pmetric.Metrics, id, name string) pcommon.Timestamp {
	t.Helper()
	one, ok := metricstest.Resource(md, "codexray.container.id", id)
	require.True(t, ok, "no resource with codexray.container.id %s", id)
	var starts []pcommon.Timestamp
	for _, p := range metricstest.Points(one) {
		if p.Name == name {
			require.Equal(t, pmetric.MetricTypeSum, p.Type)
			starts = append(starts, p.Start)
		}
	}
	require.Len(t, starts, 1, "%s of %s", name, id)
	return starts[0]
}

// TestContainersSourceKubernetesRestart collects through the receiver across a Kubernetes
// container restart (new runtime id and cgroup, attempt 1, same pod): the resource keeps its
// container.id; its cumulative sums restart from the new cgroup's counters with a later start
// timestamp, never a lower value under the old start; container.restarts is the runtime's,
// continued under its start. Then the pod is re-created under its name (a StatefulSet pod: new
// pod UID, attempt 0): the same container.id, its restart count 0 under a later start.
func TestContainersSourceKubernetesRestart(t *testing.T) {
	const (
		oldID     = "e147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258b"
		newID     = "0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad"
		podUID    = "8d4e1f6a-52b3-4c70-9e21-3f5a6b7c8d90"
		podDir    = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice"
		newPodID  = "f258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369c"
		newPodUID = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"
		newPodDir = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f6e7d8c_9b0a_4c1d_8e2f_3a4b5c6d7e8f.slice"
		k8sID     = "/k8s/shop/api-7d9f/api"
	)
	labelsOf := func(uid string) map[string]string {
		return map[string]string{
			"io.kubernetes.pod.name": "api-7d9f", "io.kubernetes.pod.namespace": "shop",
			"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": "api",
		}
	}
	socket := serveFakeCRI(t, &fakeCRIRuntime{containers: map[string]*runtimeapi.ContainerStatus{
		oldID: {
			Id: oldID, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 0}, Labels: labelsOf(podUID),
			Image: &runtimeapi.ImageSpec{Image: "registry.example/api:2"},
		},
		newID: {
			Id: newID, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 1}, Labels: labelsOf(podUID),
			Image: &runtimeapi.ImageSpec{Image: "registry.example/api:2"},
		},
		newPodID: {
			Id: newPodID, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 0}, Labels: labelsOf(newPodUID),
			Image: &runtimeapi.ImageSpec{Image: "registry.example/api:2"},
		},
	}})
	testdata, err := filepath.Abs("../../testdata")
	require.NoError(t, err)
	root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
	proc := testutil.CopyTree(t, filepath.Join(testdata, "proc", "v2"))

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	onlyNode(t, cfg)
	cfg.Cgroups.Enabled = true
	cfg.Cgroups.Root, cfg.Cgroups.ProcRoot = root, proc
	cfg.Containers.DockerSocket = ""
	cfg.Containers.CRISockets = []string{socket}
	cfg.Containers.ScanInterval = time.Hour
	r := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), nil)
	require.NoError(t, r.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	r.registry.Scan()

	md := r.collect(context.Background(), time.Now())
	before, start0 := containerResource(t, md, k8sID)
	assert.Equal(t, 0.0, before["container.restarts"])
	restartsStart0 := sumStart(t, md, k8sID, "container.restarts")
	assert.InDelta(t, 2.123456, before["container.resources.cpu.usage"], 1e-9)
	first, ok := r.registry.ContainerByID(k8sID)
	require.True(t, ok)
	assert.Equal(t, pcommon.NewTimestampFromTime(first.FirstSeen), start0)

	// replace ends process gone and removes cgroup dir gone, then starts process pid in a new
	// container cgroup dir whose cpu usage is usageUsec, and rescans.
	replace := func(gone uint32, goneDir string, pid uint32, dir string, usageUsec int) {
		t.Helper()
		require.NoError(t, os.RemoveAll(filepath.Join(proc, strconv.Itoa(int(gone)))))
		r.registry.OnProcessExit(gone)
		require.NoError(t, os.RemoveAll(filepath.Join(root, goneDir)))
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
		cpu := fmt.Sprintf("usage_usec %d\nthrottled_usec 0\n", usageUsec)
		require.NoError(t, os.WriteFile(filepath.Join(root, dir, "cpu.stat"), []byte(cpu), 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(proc, strconv.Itoa(int(pid))), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(proc, strconv.Itoa(int(pid)), "cgroup"), []byte("0::"+dir+"\n"), 0o644))
		r.registry.Scan()
	}

	// kubelet restarts the container: the old process and cgroup go, attempt 1 comes.
	time.Sleep(10 * time.Millisecond) // a visibly later start timestamp
	replace(202, podDir+"/cri-containerd-"+oldID+".scope", 210, podDir+"/cri-containerd-"+newID+".scope", 250000)

	md = r.collect(context.Background(), time.Now())
	after, start1 := containerResource(t, md, k8sID)
	assert.Equal(t, restartsStart0, sumStart(t, md, k8sID, "container.restarts"), "a restart continues the count")
	second, ok := r.registry.ContainerByID(k8sID)
	require.True(t, ok)
	assert.Equal(t, newID, second.RuntimeID)
	assert.Equal(t, 1.0, after["container.restarts"], "restart count is the runtime's attempt")
	assert.InDelta(t, 0.25, after["container.resources.cpu.usage"], 1e-9, "counters of the new cgroup")
	assert.Equal(t, pcommon.NewTimestampFromTime(second.FirstSeen), start1)
	assert.Greater(t, start1, start0, "a lower cumulative value must come with a later start")

	// The pod is deleted and re-created under its name: new pod UID, new cgroup, attempt 0.
	time.Sleep(10 * time.Millisecond)
	recreatedAt := pcommon.NewTimestampFromTime(time.Now())
	replace(210, podDir, 211, newPodDir+"/cri-containerd-"+newPodID+".scope", 1000)

	md = r.collect(context.Background(), time.Now())
	recreated, _ := containerResource(t, md, k8sID)
	assert.Equal(t, 0.0, recreated["container.restarts"], "the new pod's attempt")
	restartsStart2 := sumStart(t, md, k8sID, "container.restarts")
	assert.GreaterOrEqual(t, restartsStart2, recreatedAt, "a count begun again must come with a start after the pod was re-created")
	third, ok := r.registry.ContainerByID(k8sID)
	require.True(t, ok)
	assert.Equal(t, newPodUID, third.PodUID)
	assert.Equal(t, pcommon.NewTimestampFromTime(third.RestartsSince), restartsStart2)
}

func TestContainersSourceCountsUnplaceableProcesses(t *testing.T) {
	testdata, err := filepath.Abs("../../testdata")
	require.NoError(t, err)
	// The agent (pid 4242, ProcRoot/self) says its own cgroup is one the host tree does not
	// have: its namespace root cannot be found, so the processes whose paths are relative to
	// it (itself and 202) are skipped and counted, not attributed.
	proc := t.TempDir()
	for pid, cgroup := range map[string]string{
		"4242": "0::/not-on-this-host\n",
		"202":  "0::/../../kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice/cri-containerd-e147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258b.scope\n",
	} {
		require.NoError(t, os.MkdirAll(filepath.Join(proc, pid), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(cgroup), 0o644))
	}
	require.NoError(t, os.Symlink("4242", filepath.Join(proc, "self")))
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Cgroups.Root = filepath.Join(testdata, "cgroupfs", "v2ns")
	cfg.Cgroups.ProcRoot = proc
	cfg.Containers.DockerSocket = ""
	cfg.Containers.CRISockets = nil
	cfg.Containers.ScanInterval = time.Hour
	reg := &containers.Registry{}
	require.NoError(t, reg.Start(cfg.Containers, cfg.Cgroups, nil))
	t.Cleanup(func() { require.NoError(t, reg.Close()) })
	reg.Scan()
	src := newContainerMetrics(cfg.Cgroups, reg, zap.NewNop())
	require.Empty(t, reg.Containers())

	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	src.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
	got := metricValues(t, mb.Emit())
	// At least the explicit scan's two readings; the background's first scan may add two more.
	skipped := got["codexray.source.errors{reason=cgroup_namespace_unresolved,source=containers}"]
	assert.True(t, skipped == 2 || skipped == 4, "skipped = %v (%v)", skipped, got)
	assert.Equal(t, 0.0, got["codexray.source.errors{reason=process_unreadable,source=containers}"])
}
