package codexrayreceiver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// memStorage is an in-memory storage extension, standing in for file_storage.
type memStorage struct {
	component.StartFunc
	component.ShutdownFunc
	client *memClient
}

func (m *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return m.client, nil
}

// memClient is a storage client whose batches are atomic, like file_storage's transactions.
type memClient struct {
	mu           sync.Mutex
	kv           map[string][]byte
	batches      int
	bytesWritten int   // values of the Set operations
	fail         error // returned by Batch when set
}

func newMemClient() *memClient { return &memClient{kv: map[string][]byte{}} }

func (c *memClient) Get(_ context.Context, k string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kv[k], nil
}

func (c *memClient) Set(_ context.Context, k string, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kv[k] = append([]byte(nil), v...)
	return nil
}

func (c *memClient) Delete(_ context.Context, k string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.kv, k)
	return nil
}

func (c *memClient) Batch(_ context.Context, ops ...*storage.Operation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.batches++
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			op.Value = c.kv[op.Key]
		case storage.Set:
			c.kv[op.Key] = append([]byte(nil), op.Value...)
			c.bytesWritten += len(op.Value)
		case storage.Delete:
			delete(c.kv, op.Key)
		}
	}
	return nil
}

func (c *memClient) Close(context.Context) error { return nil }

// clone is what a killed agent leaves in storage: the last whole batch.
func (c *memClient) clone() *memClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := newMemClient()
	for k, v := range c.kv {
		n.kv[k] = append([]byte(nil), v...)
	}
	return n
}

type storageHost struct {
	exts map[component.ID]component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component { return h.exts }

func hostWith(client *memClient) storageHost {
	return storageHost{exts: map[component.ID]component.Component{component.MustNewID("file_storage"): &memStorage{client: client}}}
}

// logsReceiver is a receiver whose only source reads the *.log files of dir, keeping its state
// in file_storage.
func logsReceiver(t *testing.T, dir string, configure func(*Config)) (*codexrayReceiver, *consumertest.MetricsSink) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	onlyNode(t, cfg)
	cfg.Logs.Enabled = true
	filesOnly(t, &cfg.Logs, dir)
	cfg.Storage = "file_storage"
	cfg.CollectionInterval = 50 * time.Millisecond // below the validated minimum: tests only
	if configure != nil {
		configure(cfg)
	}
	sink := new(consumertest.MetricsSink)
	r := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), nil)
	r.setMetricsConsumer(sink)
	return r, sink
}

// logCount is the sum of container.log.messages in the sink's last collection, and its
// series' start times.
func logCount(sink *consumertest.MetricsSink) (float64, []pcommon.Timestamp) {
	all := sink.AllMetrics()
	if len(all) == 0 {
		return 0, nil
	}
	var n float64
	var starts []pcommon.Timestamp
	for _, p := range metricstest.Points(all[len(all)-1]) {
		if p.Name == "container.log.messages" {
			n += p.Value
			starts = append(starts, p.Start)
		}
	}
	return n, starts
}

func TestMissingStorageExtensionFailsStart(t *testing.T) {
	for _, option := range []string{"storage", "logs.storage"} {
		t.Run(option, func(t *testing.T) {
			r, _ := logsReceiver(t, t.TempDir(), func(c *Config) {
				c.Storage = ""
				if option == "storage" {
					c.Storage = "file_storage/missing"
				} else {
					c.Logs.Storage = "file_storage/missing"
				}
			})
			err := r.Start(context.Background(), componenttest.NewNopHost())
			require.Error(t, err)
			assert.Equal(t, option+`: extension "file_storage/missing" is not configured in service.extensions`, err.Error())
			require.NoError(t, r.Shutdown(context.Background()))
		})
	}
}

// A restarted receiver continues its counters under their start times: the message counts of
// the first run, plus the lines written while it was down, plus those after; each line once.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	client := newMemClient()

	first, sink1 := logsReceiver(t, dir, nil)
	require.NoError(t, first.Start(context.Background(), hostWith(client)))
	time.Sleep(50 * time.Millisecond) // past the launch discovery: the file is new
	appendTo(t, path, "WARN cache miss for key 101", "WARN cache miss for key 102", "WARN cache miss for key 103")
	require.Eventually(t, func() bool { n, _ := logCount(sink1); return n == 3 }, 5*time.Second, 10*time.Millisecond)
	_, starts := logCount(sink1)
	require.NoError(t, first.Shutdown(context.Background()))

	appendTo(t, path, "WARN cache miss for key 104", "WARN cache miss for key 105")
	second, sink2 := logsReceiver(t, dir, nil)
	require.NoError(t, second.Start(context.Background(), hostWith(client)))
	appendTo(t, path, "WARN cache miss for key 106")
	require.Eventually(t, func() bool { n, _ := logCount(sink2); return n == 6 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, second.Shutdown(context.Background()))
	n, after := logCount(sink2)
	assert.Equal(t, 6.0, n)
	require.Len(t, starts, 1)
	assert.Equal(t, starts, after, "the series continues under the first run's start time, under the same pattern")
}

// A receiver killed mid-stream leaves the last checkpoint: the next run reads again from its
// positions and continues its counts, so every line counts exactly once, and no collection
// of the killed run exported more than the checkpoint the next run continues from.
func TestStateAfterKill(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	client := newMemClient()
	const lines = 20000

	first, sink1 := logsReceiver(t, dir, nil)
	require.NoError(t, first.Start(context.Background(), hostWith(client)))
	time.Sleep(50 * time.Millisecond)
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; i < lines; i += 200 {
			batch := make([]string, 0, 200)
			for j := i; j < i+200; j++ {
				batch = append(batch, fmt.Sprintf("INFO request %d served", j))
			}
			appendTo(t, path, batch...)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	require.Eventually(t, func() bool { n, _ := logCount(sink1); return n > lines/4 }, 10*time.Second, 5*time.Millisecond)
	killed := client.clone() // the kill: what the run did after this is lost
	exported, _ := logCount(sink1)
	require.NoError(t, first.Shutdown(context.Background()))

	second, sink2 := logsReceiver(t, dir, nil)
	require.NoError(t, second.Start(context.Background(), hostWith(killed)))
	require.Eventually(t, func() bool {
		n, _ := logCount(sink2)
		return n > 0
	}, 5*time.Second, 5*time.Millisecond)
	resumed, _ := logCount(sink2)
	assert.GreaterOrEqual(t, resumed, exported, "the restarted counter went below a value already exported")
	<-written
	require.Eventually(t, func() bool { n, _ := logCount(sink2); return n == lines }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, second.Shutdown(context.Background()))
	n, _ := logCount(sink2)
	assert.Equal(t, float64(lines), n)
}

// fakeKeeper saves a fixed set of records and, like the logs source, the staged positions.
type fakeKeeper struct {
	records map[string]string
	store   *stateStore
}

func (k *fakeKeeper) saveState(cp *checkpoint) {
	for key, v := range k.records {
		cp.put(key, v)
	}
	k.store.takeStaged(cp)
}

// Records no keeper saves any more (state expired with its container) are deleted, unchanged
// ones are not written again, and a failed batch is written whole at the next checkpoint.
func TestStateStoreWritesChangesOnly(t *testing.T) {
	ctx := context.Background()
	client := newMemClient()
	s := &stateStore{client: client, logger: zap.NewNop(), staged: map[string][]byte{}, written: map[string]uint64{}, full: true}
	k := &fakeKeeper{records: map[string]string{stateTCP + "a": "1", stateTCP + "b": "2"}, store: s}
	require.NoError(t, s.save(ctx, []stateKeeper{k}))
	assert.Equal(t, map[string]string{stateTCP + "a": `"1"`, stateTCP + "b": `"2"`, stateIndexKey: `["state/tcp/a","state/tcp/b"]`}, kvStrings(client))

	// b's container is gone: its record goes; a is unchanged, and the positions staged by the
	// log readers go in the same batch.
	delete(k.records, stateTCP+"b")
	require.NoError(t, s.Set(ctx, "logs/file:/x", []byte("7")))
	require.NoError(t, s.save(ctx, []stateKeeper{k}))
	assert.Equal(t, map[string]string{stateTCP + "a": `"1"`, "logs/file:/x": "7", stateIndexKey: `["state/tcp/a"]`}, kvStrings(client))

	batches := client.batches
	require.NoError(t, s.save(ctx, []stateKeeper{k}))
	assert.Equal(t, batches, client.batches, "nothing changed: nothing written")

	// A failed batch: its positions are staged again and the next one writes them.
	client.fail = errors.New("disk full")
	require.NoError(t, s.Set(ctx, "logs/file:/y", []byte("8")))
	k.records[stateTCP+"a"] = "3"
	require.ErrorContains(t, s.save(ctx, []stateKeeper{k}), "disk full")
	client.fail = nil
	require.NoError(t, s.save(ctx, []stateKeeper{k}))
	assert.Equal(t, map[string]string{stateTCP + "a": `"3"`, "logs/file:/x": "7", "logs/file:/y": "8", stateIndexKey: `["state/tcp/a"]`}, kvStrings(client))

	// A restart finds every record through the index.
	r := &stateStore{client: client, logger: zap.NewNop(), staged: map[string][]byte{}, written: map[string]uint64{}}
	require.NoError(t, r.load(ctx))
	assert.Equal(t, map[string][]byte{"a": []byte(`"3"`)}, r.records(stateTCP))
	assert.Empty(t, r.records(stateTCP), "records are handed out once")
}

func kvStrings(c *memClient) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for k, v := range c.kv {
		out[k] = string(v)
	}
	return out
}
