package codexrayreceiver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
	"github.com/codexray/codexray-node-agent/internal/l7tracer"
	"github.com/codexray/codexray-node-agent/internal/tracer"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

var (
	_ source              = (*ebpfSource)(nil)
	_ containerRecorder   = (*ebpfSource)(nil)
	_ nodeRecorder        = (*ebpfSource)(nil)
	_ containerRetainer   = (*ebpfSource)(nil)
	_ containerHolder     = (*ebpfSource)(nil)
	_ degradationReporter = (*ebpfSource)(nil)
	_ stateKeeper         = (*ebpfSource)(nil)
	_ inputStopper        = (*ebpfSource)(nil)
)

// ebpfRegistry is what the eBPF source needs of the registry: ID lookups for the tracer, and
// process lifecycle events to keep it current.
type ebpfRegistry interface {
	tracer.Resolver
	OnProcessStart(pid uint32) (*containers.Container, bool)
	OnProcessExit(pid uint32)
}

// processQueueSize bounds process events waiting for the registry; beyond it they are dropped
// (and counted) so the kernel event reader never waits on /proc reads.
const processQueueSize = 4096

// ebpfSource reports the per-container TCP metrics and OOM kills of the eBPF tracer, and feeds
// process exec/exit events to the registry. Live byte counters and latency are pulled from the
// kernel once per collection, on the first record call of the tick.
type ebpfSource struct {
	cfg      tracer.Config
	l7cfg    l7tracer.Config
	logger   *zap.Logger
	registry ebpfRegistry
	state    *stateStore // nil: no state kept

	mu          sync.Mutex
	tracer      *tracer.Tracer
	l7          *l7tracer.Tracer // nil when ebpf.l7 is off or could not start
	l7Failure   string           // why the L7 capture could not start
	lastRefresh pcommon.Timestamp
	l7Stats     requeststats.ContainerStats // reused per container

	queue          chan tracer.ProcessEvent
	stop           chan struct{}
	worker         sync.WaitGroup
	processDropped atomic.Uint64
}

func newEBPFSource(env sourceEnv) source {
	return &ebpfSource{
		cfg:      env.cfg.EBPF.Config,
		l7cfg:    env.cfg.EBPF.L7,
		logger:   env.settings.Logger.With(zap.String("source", "ebpf")),
		registry: env.registry,
		state:    env.state,
	}
}

func (s *ebpfSource) name() string  { return "ebpf" }
func (s *ebpfSource) enabled() bool { return s.cfg.Enabled }

// start loads and attaches the BPF programs. It fails, and the other sources carry on, when the
// kernel lacks BTF, the ring buffer (< 5.8) or a tracepoint, or the agent lacks privileges.
func (s *ebpfSource) start(context.Context, component.Host) error {
	s.queue = make(chan tracer.ProcessEvent, processQueueSize)
	s.stop = make(chan struct{})
	t := tracer.New(tracer.Options{Config: s.cfg, Resolver: s.registry, Logger: s.logger, OnProcess: s.enqueueProcess})
	if s.state != nil {
		t.Restore(decodeRecords[tracer.SavedContainer](s.state, stateTCP, s.logger))
	}
	if err := t.Start(); err != nil {
		return err
	}
	s.worker.Add(1)
	go s.notifyProcesses()
	lt, failure := s.startL7(t)
	s.mu.Lock()
	s.tracer = t
	s.l7, s.l7Failure = lt, failure
	s.mu.Unlock()
	return nil
}

// startL7 starts the L7 capture on top of a started tracer. A kernel that cannot run it
// (older than 6.0, no BTF) leaves the TCP metrics running: the source is degraded.
func (s *ebpfSource) startL7(t *tracer.Tracer) (*l7tracer.Tracer, string) {
	if !s.l7cfg.Enabled {
		return nil, ""
	}
	lt := s.newL7(t)
	if err := lt.Start(t.Probe()); err != nil {
		s.logger.Warn("L7 capture unavailable: no request metrics", zap.Error(err))
		return nil, "L7 capture unavailable (" + err.Error() + "): no request metrics"
	}
	return lt, ""
}

// newL7 builds the L7 capture over t, continuing the request series of the previous run.
func (s *ebpfSource) newL7(t *tracer.Tracer) *l7tracer.Tracer {
	lt := l7tracer.New(l7tracer.Options{Config: s.l7cfg, Resolver: s.registry, Connections: t, Logger: s.logger})
	if s.state == nil {
		return lt
	}
	var fqdns []requeststats.SavedFQDN
	for _, f := range decodeRecords[[]requeststats.SavedFQDN](s.state, stateL7FQDN, s.logger) {
		fqdns = append(fqdns, f...)
	}
	if err := lt.Restore(decodeRecords[requeststats.SavedContainer](s.state, stateL7, s.logger), fqdns); err != nil {
		s.logger.Warn("saved L7 request series skipped; they start from zero", zap.Error(err))
	}
	return lt
}

func (s *ebpfSource) enqueueProcess(e tracer.ProcessEvent) {
	if e.Type == ebpf.EventProcessFork {
		return // the child is in its parent's cgroup until it execs or the registry rescans
	}
	select {
	case s.queue <- e:
	default:
		s.processDropped.Add(1)
	}
}

func (s *ebpfSource) notifyProcesses() {
	defer s.worker.Done()
	for {
		select {
		case <-s.stop:
			return
		case e := <-s.queue:
			switch e.Type {
			case ebpf.EventProcessExec:
				s.registry.OnProcessStart(e.PID)
			case ebpf.EventProcessExit:
				s.registry.OnProcessExit(e.PID)
			}
		}
	}
}

func (s *ebpfSource) shutdown(context.Context) error {
	s.mu.Lock()
	t, lt := s.tracer, s.l7
	s.tracer, s.l7 = nil, nil
	s.mu.Unlock()
	if t == nil {
		return nil
	}
	var err error
	if lt != nil {
		err = lt.Close() // before the tracer: it reads the tracer's connections
	}
	err = errors.Join(err, t.Close()) // no more process events after this
	close(s.stop)
	s.worker.Wait()
	return err
}

// drainTimeout bounds how long the last collection at shutdown waits for the events already in
// the kernel's ring buffer.
const drainTimeout = time.Second

// stopInput applies the events the kernel wrote before the stop: the last collection then
// counts the connects made just before it.
func (s *ebpfSource) stopInput(context.Context) {
	s.mu.Lock()
	t, lt := s.tracer, s.l7
	s.mu.Unlock()
	if t != nil {
		t.Drain(drainTimeout)
	}
	if lt != nil {
		lt.Drain(drainTimeout) // after the tracer's: outbound requests need its connects
	}
}

// saveState saves every container's TCP and OOM counters and L7 request series, and the
// node's ip→fqdn pairs (the "fqdn:port" destinations of those series).
func (s *ebpfSource) saveState(cp *checkpoint) {
	s.mu.Lock()
	t, lt := s.tracer, s.l7
	s.mu.Unlock()
	if t == nil {
		return
	}
	for _, c := range t.Save() {
		cp.put(stateTCP+string(c.ID), c)
	}
	if lt == nil {
		return
	}
	series, fqdns := lt.Save()
	for _, c := range series {
		cp.put(stateL7+c.ID, c)
	}
	if len(fqdns) > 0 {
		cp.put(stateL7FQDN, fqdns)
	}
}

// refreshLocked pulls live counters once per collection tick.
func (s *ebpfSource) refreshLocked(now pcommon.Timestamp) {
	if now == s.lastRefresh {
		return
	}
	s.lastRefresh = now
	if err := s.tracer.Refresh(); err != nil {
		s.logger.Debug("reading live connection counters failed", zap.Error(err))
	}
	if s.l7 != nil {
		s.l7.Collect(now.AsTime())
	}
}

func (s *ebpfSource) recordContainer(mb *metadata.MetricsBuilder, now pcommon.Timestamp, c *containers.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer == nil {
		return
	}
	s.refreshLocked(now)
	var st tracer.ContainerStats
	if s.tracer.ContainerStats(c.ID, &st) {
		recordTCP(mb, now, &st)
	}
	if s.l7 != nil {
		if s.l7.ContainerStats(c.ID, &s.l7Stats) {
			recordL7(mb, now, &s.l7Stats)
		}
	}
}

// recordTCP writes one container's tracer state, each sum with its entry's start (startOf).
func recordTCP(mb *metadata.MetricsBuilder, now pcommon.Timestamp, st *tracer.ContainerStats) {
	for i := range st.Destinations {
		d := &st.Destinations[i]
		start := startOf(d.Start, now)
		if d.SuccessfulConnects > 0 || d.ActiveConnections > 0 {
			mb.RecordContainerNetTCPSuccessfulConnectsDataPointWithStart(start, now, int64(d.SuccessfulConnects), d.Destination, d.ActualDestination)
			mb.RecordContainerNetTCPConnectionTimeDataPointWithStart(start, now, d.ConnectionTime.Seconds(), d.Destination, d.ActualDestination)
			mb.RecordContainerNetTCPActiveConnectionsDataPoint(now, d.ActiveConnections, d.Destination, d.ActualDestination)
			mb.RecordContainerNetTCPBytesSentDataPointWithStart(start, now, int64(d.BytesSent), d.Destination, d.ActualDestination)
			mb.RecordContainerNetTCPBytesReceivedDataPointWithStart(start, now, int64(d.BytesReceived), d.Destination, d.ActualDestination)
		}
		if d.Retransmits > 0 {
			mb.RecordContainerNetTCPRetransmitsDataPointWithStart(start, now, int64(d.Retransmits), d.Destination, d.ActualDestination)
		}
		if d.FailedConnects > 0 {
			mb.RecordContainerNetTCPFailedConnectsDataPointWithStart(start, now, int64(d.FailedConnects), d.Destination)
		}
	}
	for _, l := range st.Listens {
		if l.Open {
			mb.RecordContainerNetTCPListenInfoDataPoint(now, 1, l.Address, l.Proxy)
		}
		if l.InboundConnections > 0 {
			mb.RecordContainerNetTCPInboundConnectsDataPointWithStart(startOf(l.Start, now), now, int64(l.InboundConnections), l.Address)
		}
	}
	for _, l := range st.Latency {
		mb.RecordContainerNetLatencyDataPoint(now, l.RTT.Seconds(), l.DestinationIP)
	}
	recordOOMKills(mb, now, st)
}

func recordOOMKills(mb *metadata.MetricsBuilder, now pcommon.Timestamp, st *tracer.ContainerStats) {
	if st.OOMKills > 0 {
		mb.RecordContainerOomKillsDataPointWithStart(startOf(st.OOMKillsStart, now), now, int64(st.OOMKills))
	}
}

// recordNode reports the tracer's self-metrics.
func (s *ebpfSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer == nil {
		return
	}
	s.refreshLocked(now) // expiry runs even on a node without containers
	st := s.tracer.Stats()
	mb.RecordCodexrayEbpfEventsLostDataPoint(now, int64(st.EventsLost))
	mb.RecordCodexrayEbpfEventsProcessedDataPoint(now, int64(st.EventsProcessed))
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(st.DroppedByLimit), "tcp_destinations")
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(s.processDropped.Load()), "ebpf_process_events")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.DecodeErrors), "ebpf", "decode_error")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.Unattributed), "ebpf", "unattributed")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.NATErrors), "ebpf", "nat_lookup")
	// Connections whose close event never arrived: the kernel side forgot them (and no late
	// close came within minutes) or a new connection took their socket address.
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.ClosesLost), "ebpf", "close_lost")
	// Reading the sockets open at start: processes that exited meanwhile, /proc entries that
	// could not be read, socket table lines that did not parse.
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.SeedVanished), "ebpf", "seed_vanished_process")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.SeedUnreadable), "ebpf", "seed_unreadable")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.SeedMalformed), "ebpf", "seed_malformed_line")
	// Network namespaces whose addresses could not be read: their wildcard listens keep the
	// last addresses read, or stay wildcards.
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.NetNSUnreadable), "ebpf", "netns_unreadable")
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(st.NamespaceAddrsDropped), "netns_addresses")
	if s.l7 != nil {
		recordL7Node(mb, now, s.l7)
	}
}

// degradation names the optional tracepoints the kernel lacks (TCP bytes and latency stay empty
// without them, below Linux 6.0).
func (s *ebpfSource) degradation() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer == nil {
		return ""
	}
	if missing := s.tracer.MissingTracepoints(); len(missing) > 0 {
		return "kernel lacks tracepoints " + strings.Join(missing, ", ") + ": TCP byte counters and latency stay empty"
	}
	return s.l7Failure
}

// heldContainers lists the containers the tracer holds TCP or OOM state for, and those with L7
// request series.
func (s *ebpfSource) heldContainers() []heldContainer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer == nil {
		return nil
	}
	ids := s.tracer.ContainerIDs()
	if s.l7 != nil {
		ids = append(ids, s.l7.ContainerIDs()...)
	}
	return heldIDs(ids)
}

// forgetContainers drops the TCP state and L7 series of containers gone for good; a recent OOM
// kill count stays (tracer.Forget).
func (s *ebpfSource) forgetContainers(_ context.Context, ids []containers.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer != nil {
		s.tracer.Forget(ids)
	}
	if s.l7 != nil {
		s.l7.Forget(ids)
	}
}

// retainedContainers lists the containers whose OOM kill count is within oom_kill_retention of
// their last kill: an OOM-killed container is usually gone, and its kill must stay visible.
func (s *ebpfSource) retainedContainers() []containers.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer == nil {
		return nil
	}
	return s.tracer.OOMKillsRetained()
}

// recordRetained records a gone container's OOM kill count, and nothing else of it.
func (s *ebpfSource) recordRetained(mb *metadata.MetricsBuilder, now pcommon.Timestamp, id containers.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracer == nil {
		return
	}
	var st tracer.ContainerStats
	if s.tracer.ContainerStats(id, &st) {
		recordOOMKills(mb, now, &st)
	}
}
