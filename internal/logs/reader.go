package logs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

const startedKey = "logs/started"

// Reader runs the enabled log sources and hands their messages to a Sink.
type Reader struct {
	cfg    Config
	lookup ContainerLookup
	sink   Sink
	logger *zap.Logger
	stats  Stats
	procfs string

	syncs atomic.Uint64

	// loops are the running sources Checkpoint pauses; set by Start.
	loops        []*sourceLoop
	checkpointMu sync.Mutex

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// journaldFromHead and journaldFiles let tests read fixture journals.
	journaldFromHead bool
	journaldFiles    []string
}

// NewReader prepares the sources of cfg. lookup attributes messages to the registry's
// containers (nil: fallback ids only); sink receives every message.
func NewReader(cfg Config, lookup ContainerLookup, sink Sink, logger *zap.Logger) *Reader {
	if lookup == nil {
		lookup = noLookup{}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Reader{cfg: cfg, lookup: lookup, sink: sink, logger: logger, procfs: procfs.Root(cfg.Files.ProcRoot)}
}

// Stats returns the sources' self-metrics.
func (r *Reader) Stats() *Stats { return &r.stats }

// Start starts every enabled source in its own goroutine and returns at once. store (nil: none)
// keeps read positions across restarts. A source that cannot start is reported in the returned
// error; the others run anyway, so a non-nil error is not fatal.
func (r *Reader) Start(ctx context.Context, store CheckpointStore) error {
	if r.cancel != nil {
		return errors.New("logs: reader already started")
	}
	if !r.cfg.Enabled {
		r.cancel = func() {}
		return nil
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel

	// A store that has seen this agent before means files without a checkpoint appeared while
	// it was down: read them from their first line rather than from their end.
	fromStartAtLaunch := false
	if store != nil {
		if b, err := store.Get(ctx, startedKey); err == nil && b != nil {
			fromStartAtLaunch = true
		}
		if err := store.Set(ctx, startedKey, []byte{1}); err != nil {
			r.logger.Warn("log checkpoints unavailable", zap.Error(err))
		}
	}
	filter, err := newNameFilter(r.cfg.Include, r.cfg.Exclude)
	if err != nil {
		cancel()
		r.cancel = nil
		return err
	}
	budget := &openFiles{limit: int64(r.cfg.MaxOpenFiles)}
	cfg := &r.cfg

	var watchers []*fileWatcher
	if cfg.Docker.Enabled {
		watchers = append(watchers, newFileWatcher("docker", cfg, func() []fileTarget {
			return discoverDocker(cfg, r.lookup, filter)
		}, r.sink, &r.stats, budget, store, fromStartAtLaunch, r.logger, &r.syncs))
	}
	if cfg.CRI.Enabled {
		watchers = append(watchers, newFileWatcher("cri", cfg, func() []fileTarget {
			return discoverCRI(cfg, r.lookup, filter)
		}, r.sink, &r.stats, budget, store, fromStartAtLaunch, r.logger, &r.syncs))
	}
	if cfg.Files.Enabled {
		d := &fileSourceDiscovery{
			cfg: cfg, lookup: r.lookup, filter: filter, procfs: r.procfs,
			writers: map[string]writerInfo{}, scanEvery: 12,
		}
		watchers = append(watchers, newFileWatcher("files", cfg, d.discover, r.sink, &r.stats, budget, store, fromStartAtLaunch, r.logger, &r.syncs))
	}
	for _, w := range watchers {
		r.loops = append(r.loops, &w.sourceLoop)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			w.run(runCtx)
		}()
	}

	var errs []error
	if cfg.Journald.Enabled {
		j := &journaldSource{
			cfg: cfg, lookup: r.lookup, filter: filter, sink: r.sink, stats: &r.stats,
			store: store, logger: r.logger, fromHead: r.journaldFromHead, files: r.journaldFiles,
		}
		if err := j.open(ctx); err != nil {
			errs = append(errs, fmt.Errorf("logs.journald: %w", err))
		} else {
			j.sourceLoop = newSourceLoop()
			r.loops = append(r.loops, &j.sourceLoop)
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				j.run(runCtx)
			}()
		}
	}
	return errors.Join(errs...)
}

// Shutdown stops every source, saving checkpoints first. Safe without Start and twice.
func (r *Reader) Shutdown() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}
