package lifecycle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver"
)

// batch is one collection of the agent, as the metrics pipeline received it.
type batch struct {
	// at is the collection time (the data points' timestamp); received is when the sink got
	// the batch: every cgroup file behind it was read between the two.
	at, received time.Time
	containers   map[string]*containerPoints // by codexray.container.id
	node         map[string]float64          // node-level points, keyed "metric{attr=value,...}"
}

// containerPoints are one container's data points in one batch.
type containerPoints struct {
	// values sums the points of each metric over their attributes (log levels, destinations).
	values map[string]float64
	// starts is the start timestamp of each cumulative metric (the latest among its points).
	starts map[string]time.Time
	// attrs lists "key=value" attribute sets seen per metric (destinations, log sources).
	attrs map[string][]string
}

func (c *containerPoints) has(metric string) bool {
	_, ok := c.values[metric]
	return c != nil && ok
}

// agent is the codexray receiver running in this test process, built by its factory exactly as
// the collector builds it, with a sink in place of the pipeline.
type agent struct {
	interval time.Duration
	cfg      *codexrayreceiver.Config
	logPath  string

	mu      sync.Mutex
	batches []*batch
	wake    chan struct{} // closed and replaced on every batch
	rcv     receiver.Metrics
}

// startAgent starts the receiver with its default configuration plus what the test needs: a
// short collection interval, the testbed containerd's CRI socket, a log discovery interval as
// short as the collection interval, and no cloud metadata (this VM's DMI could name a provider,
// and tests never dial a real metadata endpoint).
func startAgent(t *testing.T, interval time.Duration) *agent {
	t.Helper()
	f := codexrayreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*codexrayreceiver.Config)
	cfg.CollectionInterval = interval
	cfg.Containers.CRISockets = append([]string{testutil.ContainerdSocket}, cfg.Containers.CRISockets...)
	cfg.Logs.DiscoveryInterval = interval
	cfg.Cloud.Enabled = false
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := &agent{interval: interval, cfg: cfg, wake: make(chan struct{})}

	a.logPath = filepath.Join(t.TempDir(), "agent.log")
	zcfg := zap.NewDevelopmentConfig()
	zcfg.OutputPaths = []string{a.logPath}
	zcfg.ErrorOutputPaths = []string{a.logPath}
	logger, err := zcfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	set := receivertest.NewNopSettings(component.MustNewType("codexray"))
	set.Logger = logger
	sink, err := consumer.NewMetrics(a.consume)
	if err != nil {
		t.Fatal(err)
	}
	a.rcv, err = f.CreateMetrics(context.Background(), set, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.rcv.Shutdown(context.Background()); err != nil {
			t.Errorf("agent shutdown: %v", err)
		}
		_ = logger.Sync()
		if t.Failed() {
			a.dumpLog(t)
		}
	})
	return a
}

func (a *agent) dumpLog(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(a.logPath)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	t.Logf("last lines of the agent's log (%s):\n%s", a.logPath, strings.Join(lines, "\n"))
}

// consume decodes one collection into a batch.
func (a *agent) consume(_ context.Context, md pmetric.Metrics) error {
	b := &batch{received: time.Now(), containers: map[string]*containerPoints{}, node: map[string]float64{}}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		idv, isContainer := rm.Resource().Attributes().Get("codexray.container.id")
		var cp *containerPoints
		if isContainer {
			cp = &containerPoints{values: map[string]float64{}, starts: map[string]time.Time{}, attrs: map[string][]string{}}
			b.containers[idv.Str()] = cp
		}
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				forEachPoint(m, func(p pmetric.NumberDataPoint) {
					if t := p.Timestamp().AsTime(); b.at.IsZero() || t.Before(b.at) {
						b.at = t
					}
					v := p.DoubleValue()
					if p.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(p.IntValue())
					}
					attrs := attrString(p.Attributes())
					if cp == nil {
						b.node[m.Name()+"{"+attrs+"}"] = v
						return
					}
					cp.values[m.Name()] += v
					if attrs != "" {
						cp.attrs[m.Name()] = append(cp.attrs[m.Name()], attrs)
					}
					if s := p.StartTimestamp(); s != 0 && s.AsTime().After(cp.starts[m.Name()]) {
						cp.starts[m.Name()] = s.AsTime()
					}
				})
			}
		}
	}
	a.mu.Lock()
	a.batches = append(a.batches, b)
	close(a.wake)
	a.wake = make(chan struct{})
	a.mu.Unlock()
	return nil
}

func forEachPoint(m pmetric.Metric, fn func(pmetric.NumberDataPoint)) {
	var dps pmetric.NumberDataPointSlice
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		dps = m.Gauge().DataPoints()
	case pmetric.MetricTypeSum:
		dps = m.Sum().DataPoints()
	default:
		return
	}
	for i := 0; i < dps.Len(); i++ {
		fn(dps.At(i))
	}
}

func attrString(m pcommon.Map) string {
	var parts []string
	m.Range(func(k string, v pcommon.Value) bool {
		parts = append(parts, k+"="+v.AsString())
		return true
	})
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// batchesAfter returns the batches collected after t, waiting until there are at least n of
// them (or until ctx ends, returning what there is).
func (a *agent) batchesAfter(ctx context.Context, t time.Time, n int) []*batch {
	for {
		a.mu.Lock()
		var out []*batch
		for _, b := range a.batches {
			if b.at.After(t) {
				out = append(out, b)
			}
		}
		wake := a.wake
		a.mu.Unlock()
		if len(out) >= n {
			return out
		}
		select {
		case <-ctx.Done():
			return out
		case <-wake:
		}
	}
}

// latest returns the newest batch, waiting for one collected after t.
func (a *agent) latest(ctx context.Context, t time.Time) *batch {
	bs := a.batchesAfter(ctx, t, 1)
	if len(bs) == 0 {
		return nil
	}
	return bs[len(bs)-1]
}

// waitFor polls the batches collected after t until cond holds for one of them; it returns
// that batch, or nil when the timeout passed.
func (a *agent) waitFor(t time.Time, timeout time.Duration, cond func(*batch) bool) *batch {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	seen := 0
	for {
		bs := a.batchesAfter(ctx, t, seen+1)
		for _, b := range bs[min(seen, len(bs)):] {
			if cond(b) {
				return b
			}
		}
		seen = len(bs)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// sourceStates reports the codexray_source_status state of each source in a batch.
func (b *batch) sourceStates() map[string]string {
	out := map[string]string{}
	for k, v := range b.node {
		if v != 1 || !strings.HasPrefix(k, "codexray.source.status{") {
			continue
		}
		var src, state string
		for _, kv := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(k, "codexray.source.status{"), "}"), ",") {
			key, val, _ := strings.Cut(kv, "=")
			switch key {
			case "source":
				src = val
			case "state":
				state = val
			}
		}
		out[src] = state
	}
	return out
}

func (b *batch) String() string {
	return fmt.Sprintf("collection at %s", b.at.Format("15:04:05.000"))
}
