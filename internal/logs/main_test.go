package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a Sink keeping copies of every message.
type recorder struct {
	mu   sync.Mutex
	msgs []Message
}

func (r *recorder) Message(m *Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, *m)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memStore is an in-memory CheckpointStore (what storage.Client gives the receiver).
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Get(_ context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return nil, nil
	}
	return append([]byte(nil), v...), nil
}

func (s *memStore) Set(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

// fakeLookup maps pids and runtime ids to containers.
type fakeLookup struct {
	mu        sync.Mutex
	byPID     map[uint32]*containers.Container
	byRuntime map[string]*containers.Container
	list      []*containers.Container
}

func (f *fakeLookup) Containers() []*containers.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list
}

func (f *fakeLookup) ContainerByPID(pid uint32) (*containers.Container, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byPID[pid]
	return c, ok
}

func (f *fakeLookup) ContainerByRuntimeID(id string) (*containers.Container, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byRuntime[id]
	return c, ok
}

// testConfig reads only what a test points it at, fast.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Docker.Enabled, cfg.CRI.Enabled, cfg.Journald.Enabled, cfg.Files.Enabled = false, false, false, false
	cfg.PollInterval = 10 * time.Millisecond
	cfg.DiscoveryInterval = 30 * time.Millisecond
	cfg.RotationGrace = 300 * time.Millisecond
	return cfg
}

func filesConfig(dir string) Config {
	cfg := testConfig()
	cfg.Files.Enabled = true
	cfg.Files.Include = []string{filepath.Join(dir, "*.log")}
	cfg.Files.AttributeWriters = false
	return cfg
}

func startReader(t *testing.T, cfg Config, lookup ContainerLookup, sink Sink, store CheckpointStore) *Reader {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(cfg, lookup, sink, nil)
	if err := r.Start(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Shutdown)
	// Files created from now on are "new": wait until the launch discovery has run.
	waitFor(t, 5*time.Second, "launch discovery", func() bool { return r.syncs.Load() > 0 })
	return r
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func numbered(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

// checkExactlyOnce asserts that the messages are "<prefix> <n>" for every n in [from, to), each
// exactly once.
func checkExactlyOnce(t *testing.T, msgs []Message, prefix string, from, to int) {
	t.Helper()
	seen := map[int]int{}
	for _, m := range msgs {
		rest, ok := strings.CutPrefix(m.Text, prefix+" ")
		if !ok {
			t.Errorf("unexpected message %q", m.Text)
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			t.Errorf("unexpected message %q", m.Text)
			continue
		}
		seen[n]++
	}
	var missing, twice []int
	for i := from; i < to; i++ {
		switch seen[i] {
		case 0:
			missing = append(missing, i)
		case 1:
		default:
			twice = append(twice, i)
		}
		delete(seen, i)
	}
	var extra []int
	for n := range seen {
		extra = append(extra, n)
	}
	sort.Ints(extra)
	if len(missing) > 0 || len(twice) > 0 || len(extra) > 0 {
		t.Fatalf("%d messages: missing %d %v, counted twice %d %v, out of range %v",
			len(msgs), len(missing), head(missing), len(twice), head(twice), head(extra))
	}
}

func head(s []int) []int {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// awaitCount waits until the recorder has n messages (or the timeout), then a little longer so
// that duplicates show; the caller checks the content, which explains a shortfall.
func awaitCount(rec *recorder, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for len(rec.snapshot()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
}
