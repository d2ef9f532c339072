package logs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// rotationScript drives one followed file through writes, rotations and polls, synchronously:
// each poll is the watcher's poll, so "two rotations between two polls" is exact, not a race.
type rotationScript struct {
	t     *testing.T
	path  string
	w     *fileWatcher
	rec   *recorder
	out   *os.File // the writer's descriptor
	flags int      // O_APPEND or 0
	next  int      // number of the next line written
}

func newRotationScript(t *testing.T, flags int) *rotationScript {
	t.Helper()
	dir := t.TempDir()
	s := &rotationScript{t: t, path: filepath.Join(dir, "app.log"), rec: &recorder{}, flags: flags}
	s.reopen()
	s.startAgent(nil, false)
	t.Cleanup(func() {
		s.w.closeAll()
		s.out.Close()
	})
	return s
}

// startAgent starts a watcher of the path with the store (nil: none), as a launch of the agent
// does or as discovery of a new file does.
func (s *rotationScript) startAgent(store CheckpointStore, launch bool) {
	cfg := testConfig()
	target := fileTarget{
		path: s.path, source: "file", maxRaw: cfg.MaxLineLength,
		newDecoder: func() lineDecoder { return plainDecoder{} },
	}
	s.w = newFileWatcher("files", &cfg, func() []fileTarget { return []fileTarget{target} }, s.rec, &Stats{},
		&openFiles{limit: 10}, store, true, zap.NewNop(), &atomic.Uint64{})
	s.w.sync(s.t.Context(), launch)
}

// stopAgent stops the watcher as Shutdown does: positions saved, files closed.
func (s *rotationScript) stopAgent() {
	s.w.saveCheckpoints(s.t.Context())
	s.w.closeAll()
}

// reopen is the writer (re)opening its log, creating it when missing.
func (s *rotationScript) reopen() {
	if s.out != nil {
		s.out.Close()
	}
	s.out = openLog(s.t, s.path, s.flags)
}

func (s *rotationScript) write(n int) {
	s.t.Helper()
	for _, l := range numbered("line", s.next, s.next+n) {
		if _, err := s.out.WriteString(l + "\n"); err != nil {
			s.t.Fatal(err)
		}
	}
	s.next += n
}

func (s *rotationScript) poll()     { s.w.pollAll() }
func (s *rotationScript) discover() { s.w.sync(s.t.Context(), false) }

func (s *rotationScript) copyTruncate(keep int) { copyTruncate(s.t, s.path, keep) }

// copyOnly is the first half of copytruncate: the copy exists, the truncation has not happened.
func (s *rotationScript) copyOnly(bytes int64) {
	s.t.Helper()
	src, err := os.Open(s.path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(s.path + ".1")
	if err != nil {
		s.t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.CopyN(dst, src, bytes); err != nil {
		s.t.Fatal(err)
	}
}

// renameAway is logrotate's create: the file moves to app.log.1 (over an older one) and the
// path names no file until the writer reopens it.
func (s *rotationScript) renameAway() {
	s.t.Helper()
	if err := os.Rename(s.path, s.path+".1"); err != nil {
		s.t.Fatal(err)
	}
}

// TestRotationBetweenPolls: whatever rotations happen between two polls, every line is read
// exactly once, as long as the content is still beside the path. These are the sequences a
// delayed poll (a loaded node) meets: two rotations in one poll interval, a rotation while the
// file was empty after the previous one, a writer without O_APPEND whose new content starts
// with the same hole of NULs as the old, a copy seen before its truncation.
func TestRotationBetweenPolls(t *testing.T) {
	cases := []struct {
		name                 string
		script               func(s *rotationScript)
		truncations, missing uint64 // Stats.Truncations, Stats.MissedRotations
	}{
		{"copytruncate twice, all read before", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.copyTruncate(1)
			s.write(100)
			s.copyTruncate(1)
			s.write(100)
			s.poll()
		}, 1, 1},
		{"copytruncate twice, first bytes still being learnt", func(s *rotationScript) {
			s.write(5) // shorter than the fingerprint
			s.poll()
			s.write(100)
			for range 2 {
				s.copyTruncate(2)
				s.write(100)
			}
			s.poll()
		}, 1, 1},
		{"copytruncate twice, some unread before", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.write(50)
			for range 2 {
				s.copyTruncate(2)
				s.write(100)
			}
			s.poll()
		}, 1, 1},
		{"copytruncate three times", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.write(50)
			for range 3 {
				s.copyTruncate(3)
				s.write(100)
			}
			s.poll()
		}, 1, 2},
		{"copytruncate again while empty", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.copyTruncate(1)
			s.poll() // sees the file empty
			s.write(100)
			s.copyTruncate(1)
			s.write(100)
			s.poll()
		}, 1, 1},
		{"copytruncate again while empty, nothing written since", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.copyTruncate(1)
			s.poll()
			s.write(100)
			s.copyTruncate(1)
			s.poll() // still empty
			s.write(100)
			s.poll()
		}, 1, 1},
		{"copytruncate once, some unread before", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.copyTruncate(1)
			s.poll()
			s.write(100)
			s.poll()
			s.write(100) // not read before the rotation
			s.copyTruncate(1)
			s.write(100)
			s.poll()
		}, 2, 0},
		{"copy seen before its truncation", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.copyTruncate(1)
			s.poll()
			s.write(100)
			s.copyOnly(500)
			s.poll() // app.log.1 is not a generation of its own
			s.write(10)
			s.copyTruncate(1)
			s.write(100)
			s.poll()
		}, 2, 0},
		{"rename twice", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.renameAway()
			s.reopen()
			s.write(100)
			s.renameAway()
			s.reopen()
			s.write(100)
			s.poll()
		}, 0, 1},
		{"rename, path missing, rename again", func(s *rotationScript) {
			s.write(100)
			s.poll()
			s.renameAway()
			s.poll() // the path names no file
			s.reopen()
			s.write(100)
			s.renameAway()
			s.reopen()
			s.write(100)
			s.discover()
			s.poll()
		}, 0, 1},
		{"rename, then truncated in place", func(s *rotationScript) {
			// The file moved away is still written to after the new one is followed: it is the
			// follower's own old file, never a generation to read again.
			s.write(100)
			s.poll()
			s.renameAway()
			old := s.out
			s.out = nil
			s.reopen()
			s.poll()
			s.write(100)
			fmt.Fprintln(old, "line", s.next)
			s.next++
			old.Close()
			s.poll()
			if err := os.Truncate(s.path, 0); err != nil {
				s.t.Fatal(err)
			}
			s.write(100)
			s.poll()
		}, 1, 0},
	}
	for _, c := range cases {
		for _, flags := range []int{os.O_APPEND, 0} {
			t.Run(fmt.Sprintf("%s/%s", c.name, map[int]string{os.O_APPEND: "O_APPEND", 0: "no O_APPEND"}[flags]), func(t *testing.T) {
				s := newRotationScript(t, flags)
				c.script(s)
				checkExactlyOnce(t, s.rec.snapshot(), "line", 0, s.next)
				st := s.w.stats
				if got := st.Truncations.Load(); got != c.truncations {
					t.Errorf("truncations: got %d, want %d", got, c.truncations)
				}
				if got := st.MissedRotations.Load(); got != c.missing {
					t.Errorf("generations read whole from a rotated file: got %d, want %d", got, c.missing)
				}
			})
		}
	}
}

// TestRotationWhileStopped: a copytruncate while the agent is down is recognised at restart for
// a writer without O_APPEND too, whose new content starts with the same NULs as the content
// the checkpoint was taken in: the rest of that content is read from the copy.
func TestRotationWhileStopped(t *testing.T) {
	for _, flags := range []int{os.O_APPEND, 0} {
		t.Run(map[int]string{os.O_APPEND: "O_APPEND", 0: "no O_APPEND"}[flags], func(t *testing.T) {
			s := newRotationScript(t, flags)
			s.stopAgent()
			store := newMemStore()
			s.startAgent(store, false)
			s.write(100)
			s.poll()
			s.copyTruncate(1)
			s.poll()
			s.write(100)
			s.poll()
			s.stopAgent()
			s.write(50) // while the agent is down
			s.copyTruncate(1)
			s.write(200)
			s.startAgent(store, true)
			s.poll()
			checkExactlyOnce(t, s.rec.snapshot(), "line", 0, s.next)
			if got := s.w.stats.RecoveredFromRotated.Load(); got != 1 {
				t.Errorf("recovered from a rotated copy at restart: got %d, want 1", got)
			}
		})
	}
}

// TestRotationLeavesOtherSiblingsAlone: when a poll finds generations it missed, files beside
// the log that are not rotations of it, or were there before, are not read as such.
func TestRotationLeavesOtherSiblingsAlone(t *testing.T) {
	cases := []struct {
		name  string
		place func(t *testing.T, path string)
	}{
		{"a position file", func(t *testing.T, path string) {
			t.Helper()
			appendLines(t, path+".pos", "pos 4711")
		}},
		{"a copy being compressed", func(t *testing.T, path string) {
			t.Helper()
			appendLines(t, path+".3.gz.tmp", "tmp 1")
		}},
		{"an old archive moved in", func(t *testing.T, path string) {
			t.Helper()
			appendLines(t, path+".9", "archived 1")
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(path+".9", old, old); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newRotationScript(t, os.O_APPEND)
			s.write(100)
			s.poll()
			c.place(t, s.path)
			s.copyTruncate(2)
			s.write(100)
			s.copyTruncate(2)
			s.write(100)
			s.poll()
			checkExactlyOnce(t, s.rec.snapshot(), "line", 0, s.next)
		})
	}
}

func TestIsRotationSuffix(t *testing.T) {
	for suffix, want := range map[string]bool{
		".1": true, "-20240101": true, ".20240101-120000": true, "_2024-01-01_12-00-00": true,
		".2024-01-01T12:00:00": false, ".pos": false, ".1.gz.tmp": false, ".old": false, ".": false, "-": false,
	} {
		if got := isRotationSuffix(suffix); got != want {
			t.Errorf("isRotationSuffix(%q) = %v, want %v", suffix, got, want)
		}
	}
}
