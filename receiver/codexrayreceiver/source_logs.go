package codexrayreceiver

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logs"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

var (
	_ source              = (*logsSource)(nil)
	_ containerRecorder   = (*logsSource)(nil)
	_ nodeRecorder        = (*logsSource)(nil)
	_ containerHolder     = (*logsSource)(nil)
	_ inputStopper        = (*logsSource)(nil)
	_ degradationReporter = (*logsSource)(nil)
	_ stateKeeper         = (*logsSource)(nil)
)

// logsSource reads the node's logs (docker json-file, CRI, journald, plain files) through
// internal/logs, counts messages per container, source, level and pattern
// (container_log_messages_total) and emits one codexray.log.pattern record per active pattern
// every logs.patterns_flush_interval.
type logsSource struct {
	cfg      logs.Config
	settings component.ID
	logger   *zap.Logger
	registry *containers.Registry
	node     *nodeSource
	emitLogs func(context.Context, plog.Logs) error
	// lastListed: see sourceEnv; nil when the source runs alone (tests).
	lastListed func(id containers.ID) (*containers.Container, bool)
	// corootLabels: coroot's container_id is on (the Prometheus output for Coroot).
	corootLabels bool

	flushMu sync.Mutex // one flush at a time: lb is not safe for concurrent use
	lb      *metadata.LogsBuilder

	mu       sync.Mutex
	startErr string // which log sources could not start; reported as the degradation
	patterns *logs.Patterns
	reader   *logs.Reader
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	state *stateStore // nil: no state kept
	// savedRevisions are the extractor revisions whose patterns the last checkpoint saved,
	// by stream key; used by saveState only.
	savedRevisions map[string]uint64
}

func newLogsSource(env sourceEnv) source {
	cfg := env.cfg.Logs
	cfg.OtherCgroups = env.cfg.Containers.IncludeOtherCgroups
	return &logsSource{
		cfg:        cfg,
		settings:   env.settings.ID,
		logger:     env.settings.Logger.With(zap.String("source", "logs")),
		registry:   env.registry,
		node:       env.node,
		emitLogs:   env.emitLogs,
		lastListed: env.lastListed,
		lb:         metadata.NewLogsBuilder(env.cfg.logsBuilderConfig(), env.settings),
		state:      env.state,

		corootLabels: env.cfg.ResourceAttributes.CorootContainerID.Enabled,
	}
}

func (s *logsSource) name() string  { return "logs" }
func (s *logsSource) enabled() bool { return s.cfg.Enabled }

// start restores the previous run's streams (when the receiver keeps state), then starts the
// log sources, which resume from the saved positions. A log source that cannot run (journald
// without cgo, say) is logged once; the others carry on and the logs source counts as running.
func (s *logsSource) start(ctx context.Context, _ component.Host) error {
	var store logs.CheckpointStore
	patterns := logs.NewPatterns(s.cfg.Patterns, s.cfg.Multiline)
	if s.state != nil {
		store = s.state
		patterns.Restore(s.restoredStreams())
	}
	reader := logs.NewReader(s.cfg, s.registry, patterns, s.logger)
	if err := reader.Start(ctx, store); err != nil {
		s.logger.Warn("some log sources cannot run; the others carry on", zap.Error(err))
		s.startErr = err.Error()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.patterns, s.reader, s.cancel = patterns, reader, cancel
	s.mu.Unlock()
	s.wg.Add(1)
	go s.flushLoop(runCtx)
	return nil
}

// streamKey is a stream's record key below stateLogStreams and stateLogPatterns.
func streamKey(container containers.ID, source string) string {
	return string(container) + "\x00" + source
}

// restoredStreams decodes the saved streams, each with its patterns' identities.
func (s *logsSource) restoredStreams() []logs.StreamState {
	streams := s.state.records(stateLogStreams)
	patterns := s.state.records(stateLogPatterns)
	out := make([]logs.StreamState, 0, len(streams))
	bad := 0
	for key, b := range streams {
		var st logs.StreamState
		if err := json.Unmarshal(b, &st); err != nil || streamKey(st.Container, st.Source) != key {
			bad++
			continue
		}
		if pb, ok := patterns[key]; ok {
			var ps logs.ExtractorState
			if err := json.Unmarshal(pb, &ps); err == nil {
				st.Patterns = &ps
			} else {
				bad++
			}
		}
		out = append(out, st)
	}
	if bad > 0 {
		s.logger.Warn("saved log streams that do not decode were dropped", zap.Int("records", bad))
	}
	return out
}

// saveState saves every stream with the log positions it was counted up to: the readers
// pause while the streams are copied and the positions taken, so both describe the same
// lines. A stream's patterns are saved again only when they changed.
func (s *logsSource) saveState(cp *checkpoint) {
	s.mu.Lock()
	patterns, reader := s.patterns, s.reader
	s.mu.Unlock()
	if patterns == nil || reader == nil {
		return
	}
	var streams []logs.StreamState
	reader.Checkpoint(func() {
		streams = patterns.Snapshot(func(container containers.ID, source string, revision uint64) bool {
			saved, ok := s.savedRevisions[streamKey(container, source)]
			return cp.full || !ok || saved != revision
		})
		s.state.takeStaged(cp)
	})
	revisions := make(map[string]uint64, len(streams))
	for i := range streams {
		st := &streams[i]
		key := streamKey(st.Container, st.Source)
		cp.put(stateLogStreams+key, st)
		if st.Patterns != nil {
			cp.put(stateLogPatterns+key, st.Patterns)
		} else {
			cp.keep(stateLogPatterns + key)
		}
		revisions[key] = st.Revision
	}
	s.savedRevisions = revisions
}

// stopInput stops the readers (saving checkpoints) and emits the last pattern records. The
// message counts stay readable for the receiver's final collection. Safe twice.
func (s *logsSource) stopInput(ctx context.Context) {
	s.mu.Lock()
	reader, cancel := s.reader, s.cancel
	s.cancel = nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	s.wg.Wait()
	reader.Shutdown()
	s.currentPatterns().FlushJoiners()
	s.flush(ctx, time.Now())
}

// shutdown stops the input if the receiver has not. Safe when start failed or never ran, and
// twice.
func (s *logsSource) shutdown(ctx context.Context) error {
	s.stopInput(ctx)
	s.mu.Lock()
	s.reader = nil
	s.mu.Unlock()
	return nil
}

func (s *logsSource) flushLoop(ctx context.Context) {
	defer s.wg.Done()
	ticker := time.NewTicker(s.cfg.PatternsFlushInterval)
	defer ticker.Stop()
	// The multi-line joiners' clock: a message waiting for a continuation line is counted
	// once the joiner timeout has passed.
	joinerClock := time.NewTicker(time.Second)
	defer joinerClock.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-joinerClock.C:
			s.currentPatterns().Tick(now)
		case now := <-ticker.C:
			s.flush(ctx, now)
			s.currentPatterns().Expire(now.Add(-s.cfg.StreamExpiry))
		}
	}
}

func (s *logsSource) currentPatterns() *logs.Patterns {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.patterns
}

// flush emits one codexray.log.pattern record per pattern that matched messages since the last
// flush, grouped in one resource per container. The records of a container the registry has
// not described yet wait for a later flush: a record goes out under the identity the registry
// gives, never under less.
func (s *logsSource) flush(ctx context.Context, now time.Time) {
	s.flushRecords(ctx, now, func(id containers.ID) bool {
		_, ok := s.identity(id)
		return !ok
	})
}

// flushRecords emits the records of the containers hold does not hold; those of a container
// without an identity are dropped.
func (s *logsSource) flushRecords(ctx context.Context, now time.Time, hold func(containers.ID) bool) {
	patterns := s.currentPatterns()
	if patterns == nil {
		return
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	ts := pcommon.NewTimestampFromTime(now)
	var current containers.ID
	var currentC *containers.Container // the identity found when current's records began
	first, known := true, false
	// The identity is looked up once per container: between two lookups the registry or the
	// retention may forget it.
	emitFor := func(id containers.ID, c *containers.Container) {
		rb := s.lb.NewResourceBuilder()
		if id == logs.NodeID {
			s.node.describeNode(rb)
		} else {
			describeContainer(rb, c, corootNamesOf(c, now))
			s.node.describeContainerNode(rb)
		}
		s.lb.EmitForResource(metadata.WithLogsResource(rb.Emit()))
	}
	patterns.FlushPatterns(func(id containers.ID) bool { return id != logs.NodeID && hold(id) }, func(r logs.PatternRecord) {
		if first || r.Container != current {
			if !first && known {
				emitFor(current, currentC)
			}
			currentC, known = s.identity(r.Container)
			known = (known && currentC != nil) || r.Container == logs.NodeID
			first, current = false, r.Container
		}
		if known {
			s.lb.RecordCodexrayLogPatternEvent(ts, severityOf(r.Level), r.Sample, r.Hash, r.Template,
				r.Level.String(), r.Source, int64(r.Count))
		}
	})
	if !first && known {
		emitFor(current, currentC)
	}
	records := s.lb.Emit()
	if s.emitLogs == nil {
		return
	}
	if err := s.emitLogs(ctx, records); err != nil && !errors.Is(err, context.Canceled) {
		s.logger.Warn("pushing log pattern records failed", zap.Error(err))
	}
}

// identity is the container id's records go out under: the registry's, or the one it last
// listed the container with (a container past its retention whose last lines are flushed).
func (s *logsSource) identity(id containers.ID) (*containers.Container, bool) {
	if c, ok := s.registry.ContainerByID(id); ok {
		return c, true
	}
	if s.lastListed != nil {
		return s.lastListed(id)
	}
	return nil, false
}

// degradation says which log sources could not start (journald without cgo, say).
func (s *logsSource) degradation() string { return s.startErr }

// heldContainers lists the containers with log streams, each with the log file its output was
// last read from.
func (s *logsSource) heldContainers() []heldContainer {
	patterns := s.currentPatterns()
	if patterns == nil {
		return nil
	}
	var out []heldContainer
	for _, c := range patterns.Containers() {
		if c.ID != logs.NodeID {
			out = append(out, heldContainer{id: c.ID, logFile: c.File})
		}
	}
	return out
}

// forgetContainers drops the streams of containers gone for good, after flushing the records
// of their last lines.
func (s *logsSource) forgetContainers(ctx context.Context, ids []containers.ID) {
	patterns := s.currentPatterns()
	if patterns == nil {
		return
	}
	gone := make(map[containers.ID]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	s.flushRecords(ctx, time.Now(), func(id containers.ID) bool { return !gone[id] })
	patterns.Forget(ids)
}

func severityOf(l logs.Level) plog.SeverityNumber {
	switch l {
	case logs.LevelDebug:
		return plog.SeverityNumberDebug
	case logs.LevelInfo:
		return plog.SeverityNumberInfo
	case logs.LevelWarning:
		return plog.SeverityNumberWarn
	case logs.LevelError:
		return plog.SeverityNumberError
	case logs.LevelCritical:
		return plog.SeverityNumberFatal
	default:
		return plog.SeverityNumberUnspecified
	}
}

// recordContainer records container_log_messages_total of one container.
func (s *logsSource) recordContainer(mb *metadata.MetricsBuilder, now pcommon.Timestamp, c *containers.Container) {
	if patterns := s.currentPatterns(); patterns != nil {
		recordMessageCounts(mb, now, patterns, c.ID)
	}
}

// recordMessageCounts records container_log_messages_total of one container, each series from
// its stream's start (startOf).
func recordMessageCounts(mb *metadata.MetricsBuilder, now pcommon.Timestamp, patterns *logs.Patterns, id containers.ID) {
	patterns.Counts(id, func(c logs.MessageCount) {
		mb.RecordContainerLogMessagesDataPointWithStart(startOf(c.Start, now), now, int64(c.Count),
			c.Source, c.Level.String(), c.PatternHash, c.Sample)
	})
}

// recordNode records the messages of host logs no container wrote (on the node resource) and
// what the log limits dropped.
func (s *logsSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	s.mu.Lock()
	patterns, reader := s.patterns, s.reader
	s.mu.Unlock()
	if patterns == nil || reader == nil {
		return
	}
	if !s.corootLabels {
		// Coroot reads container_log_messages_total per container_id: node-level lines would
		// be container series without one (their pattern records still go out).
		recordMessageCounts(mb, now, patterns, logs.NodeID)
	}
	st := reader.Stats()
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(st.Truncated.Load()), "log_line_length")
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(st.FilesSkipped.Load()), "log_open_files")
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(patterns.Overflowed()), "log_patterns")
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(st.ParseErrors.Load()), "log_malformed_lines")
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(patterns.MultilineDropped()), "log_multiline_lines")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.BinaryLines.Load()), "logs", "binary_line")
}
