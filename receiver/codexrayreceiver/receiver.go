package codexrayreceiver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// Source states, the values of codexray_source_status{state}.
const (
	stateRunning  = "running"
	stateDegraded = "degraded"
	stateFailed   = "failed"
	stateDisabled = "disabled"
)

// codexrayReceiver is the one instance shared by the metrics and logs pipelines of a config.
type codexrayReceiver struct {
	cfg      *Config
	settings receiver.Settings
	logger   *zap.Logger
	onStop   func()

	mu              sync.Mutex
	metricsConsumer consumer.Metrics
	logsConsumer    consumer.Logs

	startOnce    sync.Once
	shutdownOnce sync.Once
	startErr     error
	cancel       context.CancelFunc
	wg           sync.WaitGroup

	// newSources builds the sources (newSources in source.go); tests replace it.
	newSources func(env sourceEnv) []source

	// The registry and the node description are the receiver's own: every source uses them.
	registry *containers.Registry
	// listing is what collection asks of the registry (the registry itself; tests list their
	// own containers), retention ends the series of gone containers (retention.go).
	listing          containerListing
	retention        *retention
	state            *stateStore // nil without a storage extension
	containerMetrics *containerMetrics
	node             *nodeSource
	sources          []source
	states           map[string]string // source name (and registryName) -> state, written by start only
	// degraded is the last degradation reason logged per source; used by collect only.
	degraded map[string]string

	mb *metadata.MetricsBuilder
}

func newReceiver(cfg *Config, set receiver.Settings, onStop func()) *codexrayReceiver {
	return &codexrayReceiver{
		cfg: cfg, settings: set, logger: set.Logger, onStop: onStop, newSources: newSources,
		states: map[string]string{}, degraded: map[string]string{},
	}
}

func (r *codexrayReceiver) setMetricsConsumer(c consumer.Metrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metricsConsumer = c
}

func (r *codexrayReceiver) setLogsConsumer(c consumer.Logs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logsConsumer = c
}

// Start is called once per pipeline the receiver is in; only the first call does anything.
func (r *codexrayReceiver) Start(ctx context.Context, host component.Host) error {
	r.startOnce.Do(func() { r.startErr = r.start(ctx, host) })
	return r.startErr
}

func (r *codexrayReceiver) start(ctx context.Context, host component.Host) error {
	if r.cfg.storageExtension() != "" {
		state, err := openStateStore(ctx, host, r.cfg, r.settings.ID, r.logger)
		if err != nil {
			return err
		}
		r.state = state
	}
	// Sources outlive Start's context: they get their own, cancelled by Shutdown.
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	start := time.Now()
	r.mb = metadata.NewMetricsBuilder(r.cfg.MetricsBuilderConfig, r.settings, metadata.WithStartTime(pcommon.NewTimestampFromTime(start)))
	r.node = newNodeSource(r.cfg.Node, start, r.settings.BuildInfo.Version, r.logger)
	cfg := r.cfg.withProcRoots()
	var failed []error

	// The registry first: every source attributes what it observes through it. One that cannot
	// start (no cgroup hierarchy) stays empty, its lookups miss, and the sources still run with
	// node-level data only.
	r.registry = &containers.Registry{}
	registryLogger := r.logger.With(zap.String("source", registryName))
	r.containerMetrics = newContainerMetrics(cfg.Cgroups, r.registry, registryLogger)
	if err := r.cfg.procfsWithProcesses(registryName); err != nil {
		failed = append(failed, r.startFailed(registryName, err))
	} else if err := r.registry.Start(cfg.Containers, cfg.Cgroups, registryLogger); err != nil {
		failed = append(failed, r.startFailed(registryName, err))
	} else {
		r.states[registryName] = stateRunning
	}

	r.listing = r.registry
	r.retention = newRetention(cfg.Containers.Retention)
	env := sourceEnv{
		cfg: cfg, settings: r.settings, registry: r.registry, node: r.node, emitLogs: r.emitLogs, state: r.state,
		lastListed: r.retention.lastListed,
	}
	r.sources = r.newSources(env)
	for _, s := range r.sources {
		if !s.enabled() {
			r.states[s.name()] = stateDisabled
			continue
		}
		if err := r.cfg.procfsWithProcesses(s.name()); err != nil {
			failed = append(failed, r.startFailed(s.name(), err))
			continue
		}
		if err := s.start(runCtx, host); err != nil {
			failed = append(failed, r.startFailed(s.name(), err))
			continue
		}
		r.states[s.name()] = stateRunning
	}
	r.node.attach(r.runningSources())
	if len(failed) > 0 {
		componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(errors.Join(failed...)))
	}

	r.wg.Add(1)
	go r.collectLoop(runCtx)
	return nil
}

// startFailed records that source name could not start. Degrade, never crash: the others carry
// on.
func (r *codexrayReceiver) startFailed(name string, err error) error {
	r.states[name] = stateFailed
	r.logger.Warn("source could not start; the others carry on", zap.String("source", name), zap.Error(err))
	return fmt.Errorf("%s: %w", name, err)
}

// Shutdown stops every goroutine; it is safe without Start and safe to call twice.
func (r *codexrayReceiver) Shutdown(ctx context.Context) error {
	var err error
	r.shutdownOnce.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
		running := r.runningSources()
		for _, s := range running {
			if is, ok := s.(inputStopper); ok {
				is.stopInput(ctx)
			}
		}
		if r.mb != nil {
			// One last collection and checkpoint, so what was observed since the last tick is
			// not lost: push exporters get it, and the state a restart continues from covers
			// it. Receivers shut down before the rest of the pipeline, so the push still
			// reaches the exporters.
			r.tick(ctx)
		}
		for i := len(running) - 1; i >= 0; i-- {
			if serr := running[i].shutdown(ctx); serr != nil {
				err = errors.Join(err, fmt.Errorf("%s: %w", running[i].name(), serr))
			}
		}
		if r.registry != nil {
			if rerr := r.registry.Close(); rerr != nil {
				err = errors.Join(err, fmt.Errorf("%s: %w", registryName, rerr))
			}
		}
		if r.state != nil {
			if serr := r.state.close(ctx); serr != nil {
				err = errors.Join(err, fmt.Errorf("storage: %w", serr))
			}
		}
		if r.onStop != nil {
			r.onStop()
		}
	})
	return err
}

func (r *codexrayReceiver) collectLoop(ctx context.Context) {
	defer r.wg.Done()
	ticker := time.NewTicker(r.cfg.CollectionInterval)
	defer ticker.Stop()
	// A first collection right away: the user of `make run` sees metrics without waiting.
	r.tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			r.tick(ctx)
		}
	}
}

// tick collects, checkpoints the state (when a storage extension keeps it), then pushes the
// collection: what a backend receives is never more than what a restart continues from.
func (r *codexrayReceiver) tick(ctx context.Context) {
	r.mu.Lock()
	next := r.metricsConsumer
	r.mu.Unlock()
	var md pmetric.Metrics
	if next != nil {
		md = r.collect(ctx, time.Now())
	} else {
		// In a logs pipeline only: the series are not collected, but the sources' state still
		// ends with the retention, and the registry still learns the containers it never saw.
		r.retention.apply(ctx, time.Now(), r.listing.Containers(), r.runningSources(), r.listing)
	}
	if r.state != nil {
		r.saveState(ctx)
	}
	if next == nil || md.ResourceMetrics().Len() == 0 {
		return
	}
	if err := next.ConsumeMetrics(ctx, md); err != nil && ctx.Err() == nil {
		r.logger.Warn("pushing metrics failed", zap.Error(err))
	}
}

// saveState writes one checkpoint of every running source that keeps state.
func (r *codexrayReceiver) saveState(ctx context.Context) {
	var keepers []stateKeeper
	for _, s := range r.runningSources() {
		if k, ok := s.(stateKeeper); ok {
			keepers = append(keepers, k)
		}
	}
	if err := r.state.save(ctx, keepers); err != nil && ctx.Err() == nil {
		r.logger.Warn("saving the state failed; the next collection tries again", zap.Error(err))
	}
}

// collect builds one pmetric.Metrics: a resource per container, then the node resource.
func (r *codexrayReceiver) collect(ctx context.Context, t time.Time) pmetric.Metrics {
	now := pcommon.NewTimestampFromTime(t)
	mb := r.mb
	running := r.runningSources()

	registryRunning := r.states[registryName] == stateRunning
	listed := r.listing.Containers()
	retained := r.retention.apply(ctx, t, listed, running, r.listing)
	corootOn := r.cfg.ResourceAttributes.CorootContainerID.Enabled
	var names []corootNames
	var skip []bool
	if corootOn {
		// Listed and retained containers share coroot's names: one container_id is one series.
		all := slices.Clone(listed)
		for _, rc := range retained {
			all = append(all, rc.c)
		}
		names, skip = assignCorootNames(all, t)
	}
	corootOf := func(i int) (corootNames, bool) {
		if !corootOn {
			return corootNames{}, true
		}
		return names[i], !skip[i]
	}
	reported := 0
	for i, c := range listed {
		coroot, report := corootOf(i)
		if !report {
			continue
		}
		reported++
		if registryRunning {
			r.containerMetrics.recordContainer(mb, now, c)
		}
		for _, s := range running {
			if cr, ok := s.(containerRecorder); ok {
				cr.recordContainer(mb, now, c)
			}
		}
		r.emitContainer(mb, c, coroot)
	}
	for j, rc := range retained {
		coroot, report := corootOf(len(listed) + j)
		if !report {
			continue
		}
		reported++
		rc.by.recordRetained(mb, now, rc.c.ID)
		r.emitContainer(mb, rc.c, coroot)
	}

	r.node.recordNode(mb, now)
	mb.RecordCodexrayContainersTrackedDataPoint(now, int64(reported))
	mb.RecordCodexraySourceStatusDataPoint(now, 1, registryName, r.states[registryName])
	if registryRunning {
		r.containerMetrics.recordNode(mb, now)
	}
	for _, s := range r.sources {
		mb.RecordCodexraySourceStatusDataPoint(now, 1, s.name(), r.sourceState(s))
	}
	for _, s := range running {
		if nr, ok := s.(nodeRecorder); ok {
			nr.recordNode(mb, now)
		}
	}
	rb := mb.NewResourceBuilder()
	r.node.describeNode(rb)
	return mb.Emit(metadata.WithResource(rb.Emit()))
}

// containerListing is what collection asks of the registry (*containers.Registry).
type containerListing interface {
	// Containers lists the live containers and those gone within the retention.
	Containers() []*containers.Container
	DescribeGone(id containers.ID, logFile string)
}

// emitContainer ends the resource of one container: its identity, on this node.
func (r *codexrayReceiver) emitContainer(mb *metadata.MetricsBuilder, c *containers.Container, coroot corootNames) {
	rb := mb.NewResourceBuilder()
	describeContainer(rb, c, coroot)
	r.node.describeContainerNode(rb)
	mb.EmitForResource(metadata.WithResource(rb.Emit()), withInstanceStart(pcommon.NewTimestampFromTime(c.FirstSeen)))
}

// sourceState is the state reported for a source; a running source that reports a
// degradation is "degraded", and each new reason is logged once.
func (r *codexrayReceiver) sourceState(s source) string {
	state := r.states[s.name()]
	dr, ok := s.(degradationReporter)
	if state != stateRunning || !ok {
		return state
	}
	reason := dr.degradation()
	if reason != r.degraded[s.name()] {
		r.degraded[s.name()] = reason
		if reason != "" {
			r.logger.Warn("source runs degraded", zap.String("source", s.name()), zap.String("reason", reason))
		} else {
			r.logger.Info("source no longer degraded", zap.String("source", s.name()))
		}
	}
	if reason != "" {
		return stateDegraded
	}
	return state
}

func (r *codexrayReceiver) runningSources() []source {
	running := make([]source, 0, len(r.sources))
	for _, s := range r.sources {
		if r.states[s.name()] == stateRunning {
			running = append(running, s)
		}
	}
	return running
}

// instanceCounters are the sums read from a container instance's cgroup: a restarted container
// (a new cgroup behind the same id) counts them from zero again, so they start at the
// instance's FirstSeen. The container's other sums accumulate per id in the agent and carry
// their own starts (startOf).
var instanceCounters = map[string]bool{
	"container.resources.cpu.usage":               true,
	"container.resources.cpu.throttled":           true,
	"container.resources.disk.reads":              true,
	"container.resources.disk.writes":             true,
	"container.resources.disk.read_bytes":         true,
	"container.resources.disk.written_bytes":      true,
	"container.resources.cpu.pressure.waiting":    true,
	"container.resources.memory.pressure.waiting": true,
	"container.resources.io.pressure.waiting":     true,
}

// withInstanceStart sets the start time of the instance counters of one container resource.
func withInstanceStart(start pcommon.Timestamp) metadata.ResourceMetricsOption {
	return func(rm pmetric.ResourceMetrics) {
		sms := rm.ScopeMetrics()
		for i := 0; i < sms.Len(); i++ {
			ms := sms.At(i).Metrics()
			for j := 0; j < ms.Len(); j++ {
				m := ms.At(j)
				if m.Type() != pmetric.MetricTypeSum || !instanceCounters[m.Name()] {
					continue
				}
				dps := m.Sum().DataPoints()
				for k := 0; k < dps.Len(); k++ {
					dps.At(k).SetStartTimestamp(start)
				}
			}
		}
	}
}

// emitLogs hands log records to the logs pipeline, if the receiver is in one.
func (r *codexrayReceiver) emitLogs(ctx context.Context, logs plog.Logs) error {
	r.mu.Lock()
	next := r.logsConsumer
	r.mu.Unlock()
	if next == nil || logs.LogRecordCount() == 0 {
		return nil
	}
	return next.ConsumeLogs(ctx, logs)
}
