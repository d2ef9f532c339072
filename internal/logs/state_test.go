package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/logpatterns"
)

func (s *memStore) clone() *memStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := newMemStore()
	for k, v := range s.m {
		c.m[k] = append([]byte(nil), v...)
	}
	return c
}

// totalCount sums every container_log_messages_total series of p.
func totalCount(p *Patterns) uint64 {
	var n uint64
	for _, c := range p.Containers() {
		p.Counts(c.ID, func(c MessageCount) { n += c.Count })
	}
	return n
}

// A restarted reader continues the counts of the checkpoint it resumes from: the counts a
// Checkpoint snapshot read and the positions it saved describe the same lines, so a restart
// counts every message exactly once. "stopped": the reader shut down (its final positions are
// saved then). "killed": the run dies right after a checkpoint taken while lines were being
// written and read (what it read after the checkpoint is lost with it, and read again). Every
// 50th message is a three-line stack trace, so messages wait in the multi-line joiner at the
// checkpoint too.
func TestCheckpointedCountsResumeExactly(t *testing.T) {
	for _, killed := range []bool{false, true} {
		t.Run(map[bool]string{false: "stopped", true: "killed"}[killed], func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			const messages = 20000
			var lines []string
			for i := range messages {
				if i%50 == 0 {
					lines = append(lines, fmt.Sprintf("ERROR request %d failed", i), "\tat com.example.App.handle(App.java:42)", "\tat com.example.App.main(App.java:10)")
					continue
				}
				lines = append(lines, fmt.Sprintf("INFO request %d served", i))
			}
			appendLines(t, path, lines[:100]...) // there before the first start: read from its start
			store := newMemStore()
			_ = store.Set(t.Context(), startedKey, []byte{1})
			cfg := filesConfig(dir)
			cfg.Multiline = MultilineConfig{Enabled: true, JoinerConfig: logpatterns.DefaultJoinerConfig()}

			p1 := NewPatterns(cfg.Patterns, cfg.Multiline)
			r1 := startReader(t, cfg, nil, p1, store)
			written := make(chan struct{})
			go func() {
				defer close(written)
				for i := 100; i < len(lines); i += 500 {
					appendLines(t, path, lines[i:min(i+500, len(lines))]...)
					time.Sleep(5 * time.Millisecond)
				}
			}()
			var saved *memStore
			var streams []StreamState
			checkpoint := func() {
				r1.Checkpoint(func() {
					saved = store.clone()
					streams = p1.Snapshot(nil)
				})
			}
			if killed {
				waitFor(t, 10*time.Second, "a third of the lines read", func() bool { return totalCount(p1) > messages/3 })
				checkpoint()
				if n := totalCount(p1); n == 0 || n >= messages {
					t.Fatalf("checkpoint with %d of %d messages counted: not mid-stream", n, messages)
				}
				waitFor(t, 10*time.Second, "more lines read after the checkpoint", func() bool {
					return totalCount(p1) > messages/2
				})
				r1.Shutdown() // its later positions and counts are lost with the run
			} else {
				waitFor(t, 10*time.Second, "half the lines read", func() bool { return totalCount(p1) > messages/2 })
				r1.Shutdown()
				checkpoint()
			}
			var before uint64
			for _, s := range streams {
				for _, c := range s.Counts {
					before += c.Count
				}
			}

			p2 := NewPatterns(cfg.Patterns, cfg.Multiline)
			p2.Restore(streams)
			if got := totalCount(p2); got != before {
				t.Fatalf("restored %d messages, the checkpoint had %d", got, before)
			}
			if got := p2.Containers(); len(got) != 1 || got[0].File != path {
				t.Fatalf("restored streams %+v: the log file they were read from is lost", got)
			}
			r2 := startReader(t, cfg, nil, p2, saved)
			<-written
			waitFor(t, 10*time.Second, "every line read", func() bool { return totalCount(p2) >= messages-1 })
			time.Sleep(50 * time.Millisecond)
			r2.Shutdown()
			p2.FlushJoiners()
			if got := totalCount(p2); got != messages {
				t.Fatalf("counted %d messages, %d were written (checkpoint at %d)", got, messages, before)
			}
			// One start time per series, the first run's.
			for _, s := range streams {
				p2.Counts(s.Container, func(c MessageCount) {
					if !c.Start.Equal(s.Start) {
						t.Fatalf("series %s/%s starts at %s after the restart, at %s before", c.Source, c.PatternHash, c.Start, s.Start)
					}
				})
			}
			_ = os.Remove(path)
		})
	}
}

// Binary lines are counted and skipped: none becomes a message or joins one.
func TestBinaryLinesAreCountedNotMerged(t *testing.T) {
	dir := t.TempDir()
	cfg := filesConfig(dir)
	cfg.Multiline = MultilineConfig{Enabled: true, JoinerConfig: logpatterns.DefaultJoinerConfig()}
	p := NewPatterns(cfg.Patterns, cfg.Multiline)
	r := startReader(t, cfg, nil, p, nil)
	var lines []string
	for i := range 300 {
		b := make([]byte, 120)
		for k := range b {
			b[k] = byte((i*131 + k*k*7 + k) % 256)
			if b[k] == '\n' {
				b[k] = 0x01
			}
		}
		b[0] = " \t\x01"[i%3] // a space, a tab or a control character first: it used to be a continuation
		lines = append(lines, "ERROR text line "+fmt.Sprint(i), string(b))
	}
	appendLines(t, filepath.Join(dir, "bin.log"), lines...)
	waitFor(t, 5*time.Second, "300 binary lines", func() bool { return r.Stats().BinaryLines.Load() == 300 })
	r.Shutdown()
	p.FlushJoiners()
	if got := totalCount(p); got != 300 {
		t.Fatalf("%d messages, want the 300 text lines each on its own", got)
	}
}

// An unchanged stream saves the same bytes every time: the receiver skips writing records
// whose bytes did not change.
func TestSnapshotIsStable(t *testing.T) {
	p := NewPatterns(logpatterns.DefaultConfig(), MultilineConfig{})
	for i := range 500 {
		p.Message(&Message{Container: "/docker/a", Source: SourceStdoutStderr, Text: fmt.Sprintf("event%d took %d ms", i%40, i)})
	}
	first, _ := json.Marshal(p.Snapshot(nil))
	for range 20 {
		if again, _ := json.Marshal(p.Snapshot(nil)); !bytes.Equal(again, first) {
			t.Fatal("two snapshots of unchanged streams differ")
		}
	}
}

// A restored stream keeps each series' sample label (a changed label would start a new
// series), and new patterns after the restore get theirs.
func TestRestoredSamplesStay(t *testing.T) {
	const web = "/docker/web"
	p := NewPatterns(logpatterns.DefaultConfig(), MultilineConfig{})
	for i := range 3 {
		p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: fmt.Sprintf("ERROR connection to 10.0.0.%d:5432 refused", i)})
	}
	b, err := json.Marshal(p.Snapshot(nil))
	if err != nil {
		t.Fatal(err)
	}
	var states []StreamState
	if err := json.Unmarshal(b, &states); err != nil {
		t.Fatal(err)
	}
	r := NewPatterns(logpatterns.DefaultConfig(), MultilineConfig{})
	r.Restore(states)
	r.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: "WARN disk 91% full"})
	got := map[string]string{}
	r.Counts(web, func(c MessageCount) { got[c.Level.String()] = fmt.Sprintf("%d %s", c.Count, c.Sample) })
	want := map[string]string{"error": "3 ERROR connection to 10.0.0.0:5432 refused", "warning": "1 WARN disk 91% full"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a restore: %v, want %v", got, want)
	}
}
