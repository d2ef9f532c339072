package codexrayreceiver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// newFixtureContainersSource runs the containers source over the pure cgroup v2 fixture host
// in testdata/cgroupfs/v2 (no container runtime).
func newFixtureContainersSource(t *testing.T) (*containersSource, *containers.Registry) {
	t.Helper()
	root, err := filepath.Abs("../../testdata")
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Cgroups.Root = filepath.Join(root, "cgroupfs", "v2")
	cfg.Cgroups.ProcRoot = filepath.Join(root, "proc", "v2")
	cfg.Containers.DockerSocket = ""
	cfg.Containers.CRISockets = nil
	cfg.Containers.ScanInterval = time.Hour
	reg := &containers.Registry{}
	src := newContainersSource(sourceEnv{cfg: cfg, settings: receivertest.NewNopSettings(metadata.Type), registry: reg}).(*containersSource)
	require.Equal(t, "containers", src.name())
	require.True(t, src.enabled())
	require.NoError(t, src.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, src.shutdown(context.Background())) })
	reg.Scan()
	return src, reg
}

// metricValues flattens one resource's metrics to "name{attr=value}" → value.
func metricValues(t *testing.T, md pmetric.Metrics) map[string]float64 {
	t.Helper()
	require.Equal(t, 1, md.ResourceMetrics().Len())
	out := map[string]float64{}
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := 0; i < ms.Len(); i++ {
		m := ms.At(i)
		var dps pmetric.NumberDataPointSlice
		switch m.Type() {
		case pmetric.MetricTypeGauge:
			dps = m.Gauge().DataPoints()
		case pmetric.MetricTypeSum:
			dps = m.Sum().DataPoints()
		default:
			t.Fatalf("unexpected metric type %v", m.Type())
		}
		for j := 0; j < dps.Len(); j++ {
			dp := dps.At(j)
			key := m.Name()
			dp.Attributes().Range(func(k string, v pcommon.Value) bool {
				key += "{" + k + "=" + v.AsString() + "}"
				return true
			})
			if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
				out[key] = float64(dp.IntValue())
			} else {
				out[key] = dp.DoubleValue()
			}
		}
	}
	return out
}

func TestContainersSourceRecordsResources(t *testing.T) {
	src, reg := newFixtureContainersSource(t)
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
		"container.resources.memory.rss":                         1 << 20,
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

func TestContainersSourceNoLimitsNoSeries(t *testing.T) {
	src, reg := newFixtureContainersSource(t)
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

func TestContainersSourceShutdownWithoutStart(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	src := newContainersSource(sourceEnv{cfg: cfg, settings: receivertest.NewNopSettings(metadata.Type), registry: &containers.Registry{}})
	require.NoError(t, src.shutdown(context.Background()))
}

func TestContainersSourceFailsOnMissingCgroups(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Cgroups.Root = t.TempDir()
	src := newContainersSource(sourceEnv{cfg: cfg, settings: receivertest.NewNopSettings(metadata.Type), registry: &containers.Registry{}})
	require.Error(t, src.start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, src.shutdown(context.Background()))
}
