package logs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

func TestFilesAtLaunchFromEndLaterFromStart(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.log")
	appendLines(t, old, numbered("before", 0, 3)...)
	rec := &recorder{}
	r := startReader(t, filesConfig(dir), nil, rec, nil)
	waitFor(t, 5*time.Second, "old.log followed", func() bool { return r.Stats().FilesOpened.Load() == 1 })

	appendLines(t, old, numbered("after", 0, 2)...)
	late := filepath.Join(dir, "late.log")
	appendLines(t, late, numbered("late", 0, 3)...)
	waitFor(t, 5*time.Second, "5 messages", func() bool { return len(rec.snapshot()) >= 5 })
	time.Sleep(50 * time.Millisecond)

	var afterMsgs, lateMsgs []Message
	for _, m := range rec.snapshot() {
		switch m.Source {
		case old:
			afterMsgs = append(afterMsgs, m)
		case late:
			lateMsgs = append(lateMsgs, m)
		default:
			t.Fatalf("message from %q", m.Source)
		}
		if m.Container != NodeID {
			t.Fatalf("host file attributed to %q", m.Container)
		}
	}
	checkExactlyOnce(t, afterMsgs, "after", 0, 2)
	checkExactlyOnce(t, lateMsgs, "late", 0, 3)
}

// steadyWriter writes numbered lines to f, rotating every `every` lines with rotate, which runs
// while no write is in flight (as logrotate's copytruncate or a reopen signal would race, but
// deterministically) and may replace the file the writer writes to.
func steadyWriter(t *testing.T, f *os.File, prefix string, n, every int, rotate func(f **os.File)) {
	t.Helper()
	defer func() { f.Close() }()
	lines := numbered(prefix, 0, n)
	for i, l := range lines {
		if i > 0 && i%every == 0 {
			rotate(&f)
		}
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
		if i%200 == 0 {
			time.Sleep(time.Millisecond) // a steady stream, not one write
		}
	}
}

func openLog(t *testing.T, path string, flags int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkpointModes are the two ways the tailer runs: without a store, and with checkpoints saved
// every few polls (the shipped DaemonSet's setting), which must not change what is read.
var checkpointModes = []struct {
	name  string
	store func() CheckpointStore
}{
	{"no checkpoints", func() CheckpointStore { return nil }},
	{"checkpoints", func() CheckpointStore { return newMemStore() }},
}

func TestRotationByRenameLosesNothing(t *testing.T) {
	rotations := []struct {
		name string
		// move puts the current file aside as path.1 and a new file at path.
		move func(t *testing.T, path string)
	}{
		{"path briefly missing", func(t *testing.T, path string) {
			t.Helper()
			// logrotate "create": rename; the service re-creates its log a little later.
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}},
		{"path replaced atomically", func(t *testing.T, path string) {
			t.Helper()
			// The path never stops naming a file: the next poll sees another inode there.
			_ = os.Remove(path + ".1")
			if err := os.Link(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			tmp := path + ".new"
			if err := os.WriteFile(tmp, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}},
	}
	for _, mode := range checkpointModes {
		for _, rot := range rotations {
			t.Run(mode.name+"/"+rot.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.log")
				appendLines(t, path, "existing before launch")
				rec := &recorder{}
				r := startReader(t, filesConfig(dir), nil, rec, mode.store())
				waitFor(t, 5*time.Second, "app.log followed", func() bool { return r.Stats().FilesOpened.Load() == 1 })

				const n = 30000
				steadyWriter(t, openLog(t, path, os.O_APPEND), "line", n, 4000, func(f **os.File) {
					// The service writes a few more lines into the moved file, then reopens
					// its log.
					rot.move(t, path)
					(*f).Close()
					nf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
					if err != nil {
						t.Fatal(err)
					}
					*f = nf
					time.Sleep(30 * time.Millisecond)
				})
				awaitCount(rec, n, 10*time.Second)
				checkExactlyOnce(t, rec.snapshot(), "line", 0, n)
				// The launch file, then one new file per rotation: followed, or read whole from
				// its rotated name when a delayed poll found it rotated away already.
				st := r.Stats()
				if opened, missed := st.FilesOpened.Load(), st.MissedRotations.Load(); opened+missed != 8 {
					t.Errorf("files opened %d + read whole after they rotated away %d, want 8", opened, missed)
				}
			})
		}
	}
}

func TestCopyTruncateLosesNothing(t *testing.T) {
	for _, mode := range checkpointModes {
		for _, appendMode := range []bool{true, false} {
			t.Run(mode.name+"/"+map[bool]string{true: "O_APPEND writer", false: "writer without O_APPEND"}[appendMode], func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.log")
				rec := &recorder{}
				r := startReader(t, filesConfig(dir), nil, rec, mode.store())
				appendLines(t, path) // created empty after launch: read from its first line
				waitFor(t, 5*time.Second, "app.log followed", func() bool { return r.Stats().FilesOpened.Load() == 1 })

				const n = 30000
				flags := os.O_APPEND
				if !appendMode {
					// Without O_APPEND the writer goes on at its old offset after the truncation:
					// the file then starts with a hole of NULs.
					flags = 0
				}
				steadyWriter(t, openLog(t, path, flags), "line", n, 4000, func(**os.File) {
					// Three copies kept, as logrotate's "rotate 3": on a loaded machine a poll
					// can come after more than one rotation, and what it had not read yet is
					// then in an older copy (TestRotationBetweenPolls).
					copyTruncate(t, path, 3)
					time.Sleep(50 * time.Millisecond)
				})
				awaitCount(rec, n, 10*time.Second)
				checkExactlyOnce(t, rec.snapshot(), "line", 0, n)
				// Each rotation seen as a truncation, or found as a copy when a delayed poll came
				// after the next rotation.
				st := r.Stats()
				if truncations, missed := st.Truncations.Load(), st.MissedRotations.Load(); truncations+missed != 7 {
					t.Errorf("truncations %d + generations read whole from a copy %d, want 7", truncations, missed)
				}
			})
		}
	}
}

// copyTruncate is logrotate's copytruncate keeping `keep` copies: the older copies move one
// number up (app.log.1 to app.log.2, …), the file is copied to app.log.1, then truncated in
// place. With keep 1 the copy overwrites app.log.1 in place.
func copyTruncate(t *testing.T, path string, keep int) {
	t.Helper()
	for i := keep - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
}

func TestDeletedAndRecreated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	rec := &recorder{}
	r := startReader(t, filesConfig(dir), nil, rec, nil)
	appendLines(t, path, numbered("first", 0, 3)...)
	waitFor(t, 5*time.Second, "first lines", func() bool { return len(rec.snapshot()) == 3 })
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "deletion noticed", func() bool {
		return r.Stats().FilesOpened.Load() == 1 && len(rec.snapshot()) == 3
	})
	time.Sleep(50 * time.Millisecond)
	appendLines(t, path, numbered("second", 0, 4)...)
	waitFor(t, 5*time.Second, "second lines", func() bool { return len(rec.snapshot()) == 7 })
	second := rec.snapshot()[3:]
	checkExactlyOnce(t, second, "second", 0, 4)
}

func TestLongLinesAndJunk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := filesConfig(dir)
	cfg.MaxLineLength = 1024
	rec := &recorder{}
	r := startReader(t, cfg, nil, rec, nil)

	huge := strings.Repeat("x", 300<<10) // longer than one read buffer
	junk := "\x00\x01\xff\xfe binary \xc3\x28 junk"
	appendLines(t, path, "short one", huge, "short two", junk, strings.Repeat("y", 1024), strings.Repeat("z", 1025))
	waitFor(t, 5*time.Second, "6 messages", func() bool { return len(rec.snapshot()) >= 6 })
	time.Sleep(50 * time.Millisecond)
	msgs := rec.snapshot()
	if len(msgs) != 6 {
		t.Fatalf("got %d messages", len(msgs))
	}
	want := []string{"short one", strings.Repeat("x", 1024), "short two", "\uFFFD binary \uFFFD( junk", strings.Repeat("y", 1024), strings.Repeat("z", 1024)}
	for i, m := range msgs {
		if m.Text != want[i] {
			t.Errorf("message %d: got %q (len %d), want len %d", i, head80(m.Text), len(m.Text), len(want[i]))
		}
		if !utf8.ValidString(m.Text) {
			t.Errorf("message %d is not valid UTF-8", i)
		}
	}
	if got := r.Stats().Truncated.Load(); got != 2 {
		t.Errorf("truncated: got %d, want 2", got)
	}
}

func head80(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// A line written in two parts is one message, whenever the poll happens.
func TestPartialLineWaitsForNewline(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	rec := &recorder{}
	startReader(t, filesConfig(dir), nil, rec, nil)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("hello "); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(rec.snapshot()); n != 0 {
		t.Fatalf("a partial line was emitted: %d messages", n)
	}
	if _, err := f.WriteString("world\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the joined line", func() bool { return len(rec.snapshot()) == 1 })
	if got := rec.snapshot()[0].Text; got != "hello world" {
		t.Fatalf("got %q", got)
	}
}

func TestCheckpointResumesExactly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, numbered("old", 0, 5)...)
	store := newMemStore()
	rec := &recorder{}

	r1 := NewReader(filesConfig(dir), nil, rec, nil)
	if err := r1.Start(t.Context(), store); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "followed", func() bool { return r1.Stats().FilesOpened.Load() == 1 })
	appendLines(t, path, numbered("line", 0, 1000)...)
	waitFor(t, 5*time.Second, "1000 lines", func() bool { return len(rec.snapshot()) == 1000 })
	r1.Shutdown()

	// While the agent is down: more lines, then a rename rotation, then a new file.
	appendLines(t, path, numbered("line", 1000, 1500)...)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, numbered("line", 1500, 2000)...)
	appendLines(t, filepath.Join(dir, "new.log"), numbered("line", 2000, 2100)...)

	r2 := startReader(t, filesConfig(dir), nil, rec, store)
	waitFor(t, 5*time.Second, "2100 lines", func() bool { return len(rec.snapshot()) >= 2100 })
	time.Sleep(100 * time.Millisecond)
	checkExactlyOnce(t, rec.snapshot(), "line", 0, 2100)
	if got := r2.Stats().RecoveredFromRotated.Load(); got != 1 {
		t.Errorf("recovered from rotated: got %d, want 1", got)
	}

	// A third run with nothing new reads nothing.
	r2.Shutdown()
	before := len(rec.snapshot())
	r3 := startReader(t, filesConfig(dir), nil, rec, store)
	waitFor(t, 5*time.Second, "followed", func() bool { return r3.Stats().FilesOpened.Load() == 2 })
	time.Sleep(100 * time.Millisecond)
	if got := len(rec.snapshot()); got != before {
		t.Fatalf("restart re-read %d messages", got-before)
	}
}

func TestMaxOpenFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.log", "b.log", "c.log"} {
		appendLines(t, filepath.Join(dir, n), "x")
	}
	cfg := filesConfig(dir)
	cfg.MaxOpenFiles = 2
	r := startReader(t, cfg, nil, &recorder{}, nil)
	waitFor(t, 5*time.Second, "skip counted", func() bool { return r.Stats().FilesSkipped.Load() >= 1 })
	time.Sleep(100 * time.Millisecond) // a few more discovery rounds: still counted once
	if got := r.Stats().FilesOpened.Load(); got != 2 {
		t.Fatalf("opened %d files, want 2", got)
	}
	if got := r.Stats().FilesSkipped.Load(); got != 1 {
		t.Fatalf("skipped %d, want 1", got)
	}
}

// A backlog bigger than one poll's read (maxReadPerPoll) is read completely and exactly once,
// without waiting a poll interval per 8 MiB.
func TestBurst(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	const n = 400000
	prefix := "burst " + strings.Repeat("p", 40)
	writeLines(t, path, numbered(prefix, 0, n)) // ~20 MB: three rounds of maxReadPerPoll

	cfg := filesConfig(dir)
	cfg.PollInterval = time.Minute // catching up must not depend on the ticker
	store := newMemStore()
	_ = store.Set(context.Background(), startedKey, []byte{1}) // a restart: read app.log from 0
	rec := &recorder{}
	start := time.Now()
	startReader(t, cfg, nil, rec, store)
	awaitCount(rec, n, 50*time.Second)
	t.Logf("backlog read in %s", time.Since(start))
	checkExactlyOnce(t, rec.snapshot(), prefix, 0, n)
}

// TestUnfollowedFileResumesWhereItStopped: discovery stops following a file that is still there
// (it no longer matches, or its container left) and later wants it again. Reading resumes after
// the last line read, whatever checkpoint the store held before: no line is read twice, with or
// without a previous checkpoint tick. Driven synchronously, so no checkpoint tick interferes.
func TestUnfollowedFileResumesWhereItStopped(t *testing.T) {
	for _, tickedBefore := range []bool{false, true} {
		t.Run(map[bool]string{false: "never checkpointed", true: "older checkpoint"}[tickedBefore], func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			appendLines(t, path, numbered("line", 0, 10)...)
			cfg := testConfig()
			target := fileTarget{
				path: path, source: "file", maxRaw: cfg.MaxLineLength,
				newDecoder: func() lineDecoder { return plainDecoder{} },
			}
			wanted := true
			discover := func() []fileTarget {
				if wanted {
					return []fileTarget{target}
				}
				return nil
			}
			rec := &recorder{}
			store := newMemStore()
			w := newFileWatcher("files", &cfg, discover, rec, &Stats{}, &openFiles{limit: 10}, store, true, zap.NewNop(), &atomic.Uint64{})
			t.Cleanup(w.closeAll)

			w.sync(t.Context(), true)
			w.pollAll()
			if tickedBefore {
				w.saveCheckpoints(t.Context())
			}
			appendLines(t, path, numbered("line", 10, 20)...)
			w.pollAll()

			wanted = false
			w.sync(t.Context(), false)
			if len(w.followers) != 0 {
				t.Fatalf("still following %d files", len(w.followers))
			}
			appendLines(t, path, numbered("line", 20, 30)...)

			wanted = true
			w.sync(t.Context(), false)
			w.pollAll()
			checkExactlyOnce(t, rec.snapshot(), "line", 0, 30)
		})
	}
}
