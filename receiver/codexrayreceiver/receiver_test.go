package codexrayreceiver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/codexray/codexray-node-agent/internal/nodestats"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// onlyNode turns every source off and gives the registry a fixture cgroup tree without
// processes, leaving the node and self-metrics.
func onlyNode(t *testing.T, cfg *Config) {
	t.Helper()
	cfg.EBPF.Enabled = false
	cfg.Taskstats.Enabled = false
	cfg.Processes.Enabled = false
	cfg.Cgroups.Enabled = false
	cfg.Logs.Enabled = false
	cfg.Cloud.Enabled = false
	root, err := filepath.Abs("../../testdata/cgroupfs/v2")
	require.NoError(t, err)
	cfg.Cgroups.Root, cfg.Cgroups.ProcRoot = root, hostOnlyProcfs(t)
	cfg.Containers.DockerSocket, cfg.Containers.CRISockets = "", nil
}

// hostOnlyProcfs is a procfs of one process, in the root cgroup: no container.
func hostOnlyProcfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "1"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "1", "cgroup"), []byte("0::/\n"), 0o644))
	return root
}

// A procfs that exists but lists no processes (an empty mount point) passes validation; every
// source that attributes processes then fails at start with the reason, instead of running.
func TestEmptyProcfsFailsItsSources(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	onlyNode(t, cfg)
	cfg.Cgroups.ProcRoot = ""
	cfg.Node.ProcRoot = t.TempDir()
	cfg.EBPF.Enabled, cfg.Taskstats.Enabled, cfg.Processes.Enabled = true, true, true
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.MetricsSink)
	r := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), nil)
	r.setMetricsConsumer(sink)
	var reported []*componentstatus.Event
	host := &statusHost{report: func(ev *componentstatus.Event) { reported = append(reported, ev) }}
	require.NoError(t, r.Start(context.Background(), host))
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) > 0 }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))

	assert.Equal(t, map[string]string{
		registryName: stateFailed, "ebpf": stateFailed, "taskstats": stateFailed, "processes": stateFailed,
		"logs": stateDisabled, "cloud": stateDisabled,
	}, r.states)
	require.Len(t, reported, 1)
	for _, src := range []string{registryName, "ebpf", "taskstats", "processes"} {
		assert.ErrorContains(t, reported[0].Err(), src+`: node.proc_root "`+cfg.Node.ProcRoot+`" lists no processes`)
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Shutdown(context.Background()))
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestOneInstanceServesMetricsAndLogs(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	onlyNode(t, cfg.(*Config))
	set := receivertest.NewNopSettings(metadata.Type)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.Same(t, mr, lr, "metrics and logs pipelines must share one receiver")

	other := f.CreateDefaultConfig()
	or, err := f.CreateMetrics(context.Background(), set, other, consumertest.NewNop())
	require.NoError(t, err)
	assert.NotSame(t, mr, or, "a second config is a second receiver")

	host := componenttest.NewNopHost()
	require.NoError(t, mr.Start(context.Background(), host))
	require.NoError(t, lr.Start(context.Background(), host)) // second Start is a no-op
	require.NoError(t, mr.Shutdown(context.Background()))
	require.NoError(t, lr.Shutdown(context.Background()))
	require.NoError(t, or.Shutdown(context.Background()))

	// After shutdown the config maps to a fresh receiver again (a collector reload).
	again, err := f.CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.NotSame(t, mr, again)
	require.NoError(t, again.Shutdown(context.Background()))
}

func TestCollectsNodeInfoAndSelfMetrics(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	onlyNode(t, cfg)
	sink := new(consumertest.MetricsSink)
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	require.Eventually(t, func() bool { return len(sink.AllMetrics()) > 0 }, 10*time.Second, 20*time.Millisecond)
	md := sink.AllMetrics()[0]
	require.Equal(t, 1, md.ResourceMetrics().Len(), "only the node resource when no source runs")
	res := md.ResourceMetrics().At(0).Resource().Attributes()
	host, _ := os.Hostname()
	v, ok := res.Get("host.name")
	require.True(t, ok)
	assert.Equal(t, host, v.Str())
	v, _ = res.Get("os.type")
	assert.Equal(t, "linux", v.Str())

	kernel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	require.NoError(t, err)
	info := metricstest.Metric(t, md, "node.info")
	require.Equal(t, 1, info.Gauge().DataPoints().Len())
	dp := info.Gauge().DataPoints().At(0)
	assert.Equal(t, int64(1), dp.IntValue())
	kv, _ := dp.Attributes().Get("kernel_version")
	assert.Equal(t, strings.TrimSpace(string(kernel)), kv.Str())
	hv, _ := dp.Attributes().Get("hostname")
	assert.Equal(t, host, hv.Str())

	up := metricstest.Metric(t, md, "node.uptime")
	assert.Greater(t, up.Gauge().DataPoints().At(0).DoubleValue(), 0.0)

	tracked := metricstest.Metric(t, md, "codexray.containers.tracked")
	assert.Equal(t, int64(0), tracked.Gauge().DataPoints().At(0).IntValue())
}

// fakeSource stands in for a real source in lifecycle tests.
type fakeSource struct {
	id       string
	on       bool
	startErr error
	started  bool
	stopped  int
}

func (f *fakeSource) name() string  { return f.id }
func (f *fakeSource) enabled() bool { return f.on }
func (f *fakeSource) start(context.Context, component.Host) error {
	if f.startErr != nil {
		return f.startErr
	}
	f.started = true
	return nil
}
func (f *fakeSource) shutdown(context.Context) error { f.stopped++; return nil }

func TestFailingSourceDegradesAndIsReported(t *testing.T) {
	failing := &fakeSource{id: "failing", on: true, startErr: errors.New("no BTF")}
	working := &fakeSource{id: "working", on: true}
	off := &fakeSource{id: "off", on: false}
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	onlyNode(t, cfg)
	sink := new(consumertest.MetricsSink)
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	r.(*codexrayReceiver).newSources = func(sourceEnv) []source { return []source{failing, working, off} }
	var reported []*componentstatus.Event
	host := &statusHost{report: func(ev *componentstatus.Event) { reported = append(reported, ev) }}
	require.NoError(t, r.Start(context.Background(), host), "a failing source must not fail the receiver")
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) > 0 }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))

	require.Len(t, reported, 1)
	assert.Equal(t, componentstatus.StatusRecoverableError, reported[0].Status())
	assert.ErrorContains(t, reported[0].Err(), "failing: no BTF")
	assert.True(t, working.started)
	assert.Equal(t, 1, working.stopped, "a running source is shut down exactly once")
	assert.Equal(t, 0, failing.stopped, "a source that did not start is not shut down")

	status := metricstest.Metric(t, sink.AllMetrics()[0], "codexray.source.status")
	states := map[string]string{}
	for i := 0; i < status.Gauge().DataPoints().Len(); i++ {
		attrs := status.Gauge().DataPoints().At(i).Attributes()
		src, _ := attrs.Get("source")
		st, _ := attrs.Get("state")
		states[src.Str()] = st.Str()
	}
	assert.Equal(t, map[string]string{registryName: stateRunning, "failing": stateFailed, "working": stateRunning, "off": stateDisabled}, states)
}

// statusHost is a component.Host that records status reports.
type statusHost struct {
	report func(*componentstatus.Event)
}

func (h *statusHost) GetExtensions() map[component.ID]component.Component { return nil }
func (h *statusHost) Report(ev *componentstatus.Event)                    { h.report(ev) }

// fixtureNode is the node part over testdata/node: a host with eth0 (up), enp0s3 (down), sda
// and the loop devices, whose interface addresses come from fixture data instead of the
// machine's own network.
func fixtureNode(t *testing.T) *nodeSource {
	t.Helper()
	t.Setenv(k8sNodeNameEnv, "node-a")
	cfg := NodeConfig{
		ProcRoot: "testdata/node/proc", SysRoot: "testdata/node/sys",
		MachineIDPaths: []string{"testdata/node/missing", "testdata/node/machine-id"},
	}
	n := newNodeSource(cfg, time.Now(), "0.1.0-test", nil)
	n.reader = nodestats.New(nodestats.Config{ProcRoot: cfg.ProcRoot, SysRoot: cfg.SysRoot}, func(names []string) (map[string][]string, error) {
		return map[string][]string{"eth0": {"10.0.0.5", "2001:db8::5"}}, nil
	})
	return n
}

// TestNodeGolden: node_info, node_agent_info, node_uptime_seconds, coroot's node resources
// (CPU by mode, cores, memory, whole disks, physical-like interfaces) and the node resource,
// with coroot's labels on, from a fixture host.
func TestNodeGolden(t *testing.T) {
	n := fixtureNode(t)
	cfg := metadata.DefaultMetricsBuilderConfig()
	cfg.ResourceAttributes.CorootMachineID.Enabled = true
	cfg.ResourceAttributes.CorootSystemUUID.Enabled = true
	mb := metadata.NewMetricsBuilder(cfg, receivertest.NewNopSettings(metadata.Type))
	n.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
	rb := mb.NewResourceBuilder()
	n.describeNode(rb)
	md := mb.Emit(metadata.WithResource(rb.Emit()))
	metricstest.Golden(t, md, "testdata/golden/node.txt")

	// The headline numbers, apart from the golden file: coroot-node-agent's units.
	got := metricValues(t, md)
	for key, want := range map[string]float64{
		"node.resources.cpu.usage{mode=user}":                   22.55, // USER_HZ 100
		"node.resources.cpu.logical_cores":                      4,
		"node.resources.disk.read_bytes{device=sda}":            9550688 * 512,
		"node.resources.disk.io_time{device=sda}":               3376.34,
		"node.net.received_bytes{interface=eth0}":               697816251,
		"node.net.interface_up{interface=eth0}":                 1,
		"node.net.interface_up{interface=enp0s3}":               0,
		"node.net.interface_ip{interface=eth0,ip=10.0.0.5}":     1,
		"node.agent_info{version=0.1.0-test}":                   1,
		"codexray.source.errors{reason=unreadable,source=node}": 0,
	} {
		assert.InDelta(t, want, got[key], 1e-6, key)
	}
	for key := range got {
		for _, absent := range []string{"device=sda1", "device=loop0", "interface=lo", "interface=docker0"} {
			assert.NotContains(t, key, absent, "coroot-node-agent reports whole disks and physical-like interfaces only")
		}
	}
}

// TestNodeCountersStartAtBoot: the node's counters count from boot, so their start timestamp
// is the boot time (now - uptime), not the receiver's start.
func TestNodeCountersStartAtBoot(t *testing.T) {
	n := fixtureNode(t)
	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	now := time.Now()
	n.recordNode(mb, pcommon.NewTimestampFromTime(now))
	md := mb.Emit()
	uptime := metricValues(t, md)["node.uptime"]
	require.Greater(t, uptime, 0.0)
	var sums int
	for _, p := range metricstest.Points(md) {
		if p.Type != pmetric.MetricTypeSum || !strings.HasPrefix(p.Name, "node.") {
			continue
		}
		sums++
		boot := now.Add(-time.Duration(uptime * float64(time.Second)))
		assert.WithinDuration(t, boot, p.Start.AsTime(), 2*time.Second, p.Key())
	}
	assert.Greater(t, sums, 10)
}

// TestNodeIdentityOnContainerResources: every container resource names its node — host.name,
// host.id (the machine id outside a cloud), k8s.node.name and, with coroot's labels on,
// machine_id and system_uuid.
func TestNodeIdentityOnContainerResources(t *testing.T) {
	n := fixtureNode(t)
	rb := metadata.NewResourceBuilder(metadata.DefaultResourceAttributesConfig())
	n.describeContainerNode(rb)
	assert.Equal(t, map[string]any{"host.name": "node-a.example", "host.id": "3f2a9b0c6d1e4f5a8b7c9d0e1f2a3b4c", "k8s.node.name": "node-a"},
		rb.Emit().Attributes().AsRaw(), "a container resource names its node, so equal container ids of two nodes stay apart")

	cfg := metadata.DefaultResourceAttributesConfig()
	cfg.CorootMachineID.Enabled, cfg.CorootSystemUUID.Enabled = true, true
	rb = metadata.NewResourceBuilder(cfg)
	n.describeContainerNode(rb)
	attrs := rb.Emit().Attributes().AsRaw()
	assert.Equal(t, "3f2a9b0c6d1e4f5a8b7c9d0e1f2a3b4c", attrs["machine_id"])
	assert.Equal(t, "4C4C4544-0042-3510-8056-B2C04F4E3732", attrs["system_uuid"])
}

// stoppingSource records the order of the shutdown steps.
type stoppingSource struct {
	fakeSource
	steps []string
}

func (s *stoppingSource) stopInput(context.Context) { s.steps = append(s.steps, "stopInput") }
func (s *stoppingSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	s.steps = append(s.steps, "collect")
	if len(s.steps) > 1 && s.steps[len(s.steps)-2] == "stopInput" {
		mb.RecordCodexrayLimitsDroppedDataPoint(now, 42, "final")
	}
}

func (s *stoppingSource) shutdown(context.Context) error {
	s.steps = append(s.steps, "shutdown")
	return nil
}

// TestShutdownCollectsOnceMoreAfterInputStops: what a source saw up to its stop (the log
// lines its checkpoints cover) reaches the pipeline before the receiver is gone.
func TestShutdownCollectsOnceMoreAfterInputStops(t *testing.T) {
	src := &stoppingSource{fakeSource: fakeSource{id: "stopping", on: true}}
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	onlyNode(t, cfg)
	cfg.CollectionInterval = time.Hour // only the first and the final collection
	sink := new(consumertest.MetricsSink)
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	r.(*codexrayReceiver).newSources = func(sourceEnv) []source { return []source{src} }
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))

	assert.Equal(t, []string{"collect", "stopInput", "collect", "shutdown"}, src.steps)
	require.Len(t, sink.AllMetrics(), 2)
	dropped := metricstest.Metric(t, sink.AllMetrics()[1], "codexray.limits.dropped")
	assert.Equal(t, int64(42), dropped.Sum().DataPoints().At(0).IntValue())
}

func TestInstanceCountersStartWithTheInstance(t *testing.T) {
	receiverStart := pcommon.NewTimestampFromTime(time.Unix(1000, 0))
	instanceStart := pcommon.NewTimestampFromTime(time.Unix(2000, 0))
	now := pcommon.NewTimestampFromTime(time.Unix(3000, 0))
	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type), metadata.WithStartTime(receiverStart))
	mb.RecordContainerResourcesCPUUsageDataPoint(now, 1.5)         // from the instance's cgroup
	mb.RecordContainerResourcesCPUDelayDataPoint(now, 0.5)         // accumulated per id by taskstats
	mb.RecordContainerNetTCPRetransmitsDataPoint(now, 3, "a", "b") // accumulated per id by the tracer
	mb.EmitForResource(withInstanceStart(instanceStart))
	md := mb.Emit()
	for name, want := range map[string]pcommon.Timestamp{
		"container.resources.cpu.usage": instanceStart,
		"container.resources.cpu.delay": receiverStart,
		"container.net.tcp.retransmits": receiverStart,
	} {
		assert.Equal(t, want, metricstest.Metric(t, md, name).Sum().DataPoints().At(0).StartTimestamp(), name)
	}
	raw, err := os.ReadFile("metadata.yaml")
	require.NoError(t, err)
	var md2 struct {
		Metrics map[string]struct {
			Sum *struct{} `yaml:"sum"`
		} `yaml:"metrics"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &md2))
	for name := range instanceCounters {
		m, ok := md2.Metrics[name]
		assert.True(t, ok && m.Sum != nil, "instanceCounters names %s, not a sum of metadata.yaml", name)
	}
}

// degradedSource runs without part of its input.
type degradedSource struct {
	fakeSource
	reason string
}

func (s *degradedSource) degradation() string { return s.reason }

func TestDegradedSourceIsReported(t *testing.T) {
	src := &degradedSource{fakeSource: fakeSource{id: "logs", on: true}, reason: "journald source not built in"}
	r := newReceiver(createDefaultConfig().(*Config), receivertest.NewNopSettings(metadata.Type), nil)
	r.states["logs"] = stateRunning
	assert.Equal(t, stateDegraded, r.sourceState(src))
	src.reason = ""
	assert.Equal(t, stateRunning, r.sourceState(src), "a source whose input came back is running again")
	r.states["logs"] = stateFailed
	src.reason = "still missing"
	assert.Equal(t, stateFailed, r.sourceState(src), "a failed source stays failed")
}
