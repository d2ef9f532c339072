package codexrayreceiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
)

// The receiver's state across restarts. With a storage extension (the `storage` option), the
// cumulative state of every source (log message counts, pattern identities, TCP and OOM
// counters, L7 request series, delay totals, each with its start time) and the log read
// positions are saved together, in one storage batch, at every checkpoint; a restarted agent
// restores them before its sources start and continues every counter under its old start time.
//
// A checkpoint is taken at every collection, after the collection is recorded and before it is
// pushed, and at shutdown after the last collection. The log positions and the log counts it
// saves describe the same lines (logs.Reader.Checkpoint pauses the readers for it), and every
// other counter saved is at least what the collection recorded. Hence:
//   - a value pushed or scraped is never above the saved one, so a restarted agent's counters
//     never go below what a backend already saw;
//   - after SIGTERM, nothing is lost or counted twice: the last collection and the last
//     checkpoint cover everything read;
//   - after SIGKILL, log lines read after the last checkpoint are read again from its positions
//     and counted then, exactly once; what the other sources observed after it (TCP events,
//     OOM kills, delays of processes that exited meanwhile) is lost, at most one
//     collection_interval of it, like everything that happens while the agent is down.

// stateIndexKey lists the record keys saved by the last checkpoint: storage clients cannot
// list their keys, and a restart must find every record.
const stateIndexKey = "state/index"

// Record key prefixes, one per kind of state.
const (
	stateLogStreams  = "state/logs/"
	stateLogPatterns = "state/patterns/"
	stateTCP         = "state/tcp/"
	stateL7          = "state/l7/"
	stateL7FQDN      = "state/l7-fqdn" // the node's ip→fqdn pairs, one record
	stateDelays      = "state/delays/"
)

// stateClientName is the name of the receiver's storage client. It is "logs" because the log
// read positions were its first content: keeping the name keeps the positions of earlier runs.
const stateClientName = "logs"

// stateKeeper is implemented by sources whose cumulative state outlives the agent's restarts.
// Each restores its records from sourceEnv.state when it starts.
type stateKeeper interface {
	// saveState adds the source's state at this moment to the checkpoint.
	saveState(cp *checkpoint)
}

// stateStore is the receiver's storage client. It is also the logs readers' CheckpointStore:
// the positions they save are staged and written with the next checkpoint's batch.
type stateStore struct {
	client storage.Client
	logger *zap.Logger

	mu sync.Mutex
	// staged are the log positions saved since the last checkpoint (nil value: delete).
	staged map[string][]byte
	// loaded holds the previous run's records until the sources took theirs (records).
	loaded map[string][]byte
	// written is the hash of every record in storage, by key.
	written map[string]uint64
	// full: the last batch failed (or none was written yet), so the next checkpoint must
	// write what keepers would otherwise skip as unchanged.
	full bool
}

// openStateStore opens the storage client of the extension named by the receiver's storage
// option. A missing extension is a configuration mistake: it fails the receiver's Start with
// the option's name, rather than leave the agent running without the state it was told to keep.
func openStateStore(ctx context.Context, host component.Host, cfg *Config, self component.ID, logger *zap.Logger) (*stateStore, error) {
	option, name := "storage", cfg.Storage
	if name == "" {
		option, name = "logs.storage", cfg.Logs.Storage
	}
	var id component.ID
	if err := id.UnmarshalText([]byte(name)); err != nil {
		return nil, fmt.Errorf("%s %q: %w", option, name, err)
	}
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("%s: extension %q is not configured in service.extensions", option, name)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("%s: extension %q is not a storage extension", option, name)
	}
	client, err := se.GetClient(ctx, component.KindReceiver, self, stateClientName)
	if err != nil {
		return nil, fmt.Errorf("%s: opening a client of %q: %w", option, name, err)
	}
	s := &stateStore{client: client, logger: logger, staged: map[string][]byte{}, written: map[string]uint64{}, full: true}
	if err := s.load(ctx); err != nil {
		logger.Warn("the saved state cannot be read; counters start from zero", zap.Error(err))
		s.loaded = nil
	}
	return s, nil
}

// load reads every record the index names, in one batch.
func (s *stateStore) load(ctx context.Context) error {
	b, err := s.client.Get(ctx, stateIndexKey)
	if err != nil || b == nil {
		return err
	}
	var keys []string
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("state index: %w", err)
	}
	ops := make([]*storage.Operation, len(keys))
	for i, k := range keys {
		ops[i] = storage.GetOperation(k)
	}
	if err := s.client.Batch(ctx, ops...); err != nil {
		return err
	}
	s.loaded = make(map[string][]byte, len(ops))
	for _, op := range ops {
		if op.Value != nil {
			s.loaded[op.Key] = op.Value
			s.written[op.Key] = xxhash.Sum64(op.Value)
		}
	}
	return nil
}

// records returns the previous run's records under prefix, by key without the prefix, and
// forgets them.
func (s *stateStore) records(prefix string) map[string][]byte {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range s.loaded {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[rest] = v
			delete(s.loaded, k)
		}
	}
	return out
}

// Get reads a log position: a staged one first.
func (s *stateStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	v, ok := s.staged[key]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	return s.client.Get(ctx, key)
}

// Set stages a log position for the next checkpoint.
func (s *stateStore) Set(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged[key] = append([]byte(nil), value...)
	return nil
}

// Delete stages the removal of a log position for the next checkpoint.
func (s *stateStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged[key] = nil
	return nil
}

// takeStaged hands the staged positions to a checkpoint. The logs source calls it while the
// readers are paused, so the positions are those of the counts it saves.
func (s *stateStore) takeStaged(cp *checkpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.staged {
		if v == nil {
			cp.raw = append(cp.raw, storage.DeleteOperation(k))
		} else {
			cp.raw = append(cp.raw, storage.SetOperation(k, v))
		}
	}
	clear(s.staged)
}

// checkpoint collects what the keepers save at one moment.
type checkpoint struct {
	// full asks keepers to save what they would skip as unchanged since their last save.
	full    bool
	records map[string][]byte // nil value: kept, unchanged since the last write
	raw     []*storage.Operation
	errs    []error
}

// put saves v (JSON) under key.
func (cp *checkpoint) put(key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		cp.errs = append(cp.errs, fmt.Errorf("encoding %s: %w", key, err))
		return
	}
	cp.records[key] = b
}

// keep marks the record under key as still wanted and unchanged.
func (cp *checkpoint) keep(key string) {
	if _, ok := cp.records[key]; !ok {
		cp.records[key] = nil
	}
}

// save takes a checkpoint of every keeper and writes it in one batch: the staged log
// positions, the records that changed, the removal of records no keeper wants any more (gone
// containers whose state expired), and the index when the set of records changed.
func (s *stateStore) save(ctx context.Context, keepers []stateKeeper) error {
	s.mu.Lock()
	cp := &checkpoint{full: s.full, records: map[string][]byte{}}
	s.mu.Unlock()
	for _, k := range keepers {
		k.saveState(cp)
	}
	ops := cp.raw
	written := make(map[string]uint64, len(cp.records))
	for key, v := range cp.records {
		if v == nil {
			if h, ok := s.written[key]; ok {
				written[key] = h
			}
			continue
		}
		h := xxhash.Sum64(v)
		written[key] = h
		if old, ok := s.written[key]; !ok || old != h {
			ops = append(ops, storage.SetOperation(key, v))
		}
	}
	for key := range s.written {
		if _, ok := written[key]; !ok {
			ops = append(ops, storage.DeleteOperation(key))
		}
	}
	if len(written) != len(s.written) || len(ops) > len(cp.raw) {
		keys := make([]string, 0, len(written))
		for k := range written {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		index, _ := json.Marshal(keys)
		ops = append(ops, storage.SetOperation(stateIndexKey, index))
	}
	err := errors.Join(cp.errs...)
	if len(ops) > 0 {
		if berr := s.client.Batch(ctx, ops...); berr != nil {
			s.restage(cp.raw)
			s.mu.Lock()
			s.full = true
			s.mu.Unlock()
			return errors.Join(err, fmt.Errorf("writing the checkpoint: %w", berr))
		}
	}
	s.written = written
	s.mu.Lock()
	s.full = false
	s.mu.Unlock()
	return err
}

// restage puts back the positions of a batch that failed, unless newer ones were staged
// since.
func (s *stateStore) restage(ops []*storage.Operation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		if _, newer := s.staged[op.Key]; newer {
			continue
		}
		if op.Type == storage.Delete {
			s.staged[op.Key] = nil
		} else {
			s.staged[op.Key] = op.Value
		}
	}
}

func (s *stateStore) close(ctx context.Context) error {
	return s.client.Close(ctx)
}

// decodeRecords decodes every record of a prefix into T, skipping (and logging once) those
// that do not decode: a state written by another version must not stop the agent.
func decodeRecords[T any](s *stateStore, prefix string, logger *zap.Logger) []T {
	recs := s.records(prefix)
	out := make([]T, 0, len(recs))
	bad := 0
	for _, b := range recs {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			bad++
			continue
		}
		out = append(out, v)
	}
	if bad > 0 {
		logger.Warn("saved state records that do not decode were dropped", zap.String("kind", prefix), zap.Int("records", bad))
	}
	return out
}
