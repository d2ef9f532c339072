package logs

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/zap"
)

// Stats are the log sources' self-metrics, cumulative since the Reader started.
type Stats struct {
	Lines                atomic.Uint64 // raw lines read from files
	Messages             atomic.Uint64 // messages handed to the sink (all sources)
	Truncated            atomic.Uint64 // messages cut at max_line_length
	ParseErrors          atomic.Uint64 // lines a docker/CRI decoder rejected (skipped)
	FilesOpened          atomic.Uint64
	FilesSkipped         atomic.Uint64 // not followed because max_open_files was reached
	Rotations            atomic.Uint64 // a followed path now names another file (rename, re-create)
	Truncations          atomic.Uint64 // a followed file shrank or its first bytes changed
	RecoveredFromRotated atomic.Uint64 // unread data finished from a rotated copy
	MissedRotations      atomic.Uint64 // files rotated away before a poll saw them at their path, read whole
	ReadErrors           atomic.Uint64
	JournalEntries       atomic.Uint64
	BinaryLines          atomic.Uint64 // lines of binary data, not text: skipped (messageText)
}

// openFiles is the max_open_files budget shared by all file sources.
type openFiles struct {
	limit int64
	used  atomic.Int64
}

func (o *openFiles) acquire() bool {
	if o.used.Add(1) > o.limit {
		o.used.Add(-1)
		return false
	}
	return true
}

func (o *openFiles) release() { o.used.Add(-1) }

// fileWatcher follows the files one source discovers. One goroutine owns it.
type fileWatcher struct {
	sourceLoop
	name     string
	cfg      *Config
	discover func() []fileTarget
	sink     Sink
	stats    *Stats
	budget   *openFiles
	store    CheckpointStore // nil: no checkpoints
	// fromStartAtLaunch: files found at launch without a checkpoint are read from the start,
	// because the store shows the agent ran before (they appeared while it was down).
	fromStartAtLaunch bool
	logger            *zap.Logger
	// syncs counts discovery rounds (tests wait for the launch round).
	syncs *atomic.Uint64

	followers map[string]*follower
	draining  []drainingFile
	// vanished: followed paths that named no file at the last poll, with what their follower
	// saw beside them, until discovery finds a file there again (or they expire).
	vanished map[string]vanishedPath
	buf      []byte
	scratch  []byte
	msg      Message
	// behind: a file had more than maxReadPerPoll to read (a burst or a backlog).
	behind bool

	reportedErrors map[string]bool
}

type drainingFile struct {
	r        *follower
	deadline time.Time
}

type vanishedPath struct {
	key      fileKey // the file that left the path, read to its end by its follower
	siblings siblingSet
	at       time.Time
}

func newFileWatcher(name string, cfg *Config, discover func() []fileTarget, sink Sink, stats *Stats,
	budget *openFiles, store CheckpointStore, fromStartAtLaunch bool, logger *zap.Logger, syncs *atomic.Uint64,
) *fileWatcher {
	return &fileWatcher{
		sourceLoop: newSourceLoop(),
		syncs:      syncs,
		name:       name, cfg: cfg, discover: discover, sink: sink, stats: stats, budget: budget,
		store: store, fromStartAtLaunch: fromStartAtLaunch, logger: logger,
		followers:      map[string]*follower{},
		vanished:       map[string]vanishedPath{},
		buf:            make([]byte, 256<<10),
		scratch:        make([]byte, fingerprintSize),
		reportedErrors: map[string]bool{},
	}
}

// run follows files until ctx is done, then saves checkpoints and closes every file. It saves
// checkpoints when Reader.Checkpoint asks, too, and waits there until the sink is read.
func (w *fileWatcher) run(ctx context.Context) {
	defer close(w.done)
	catchUp := make(chan struct{}, 1)
	w.sync(ctx, true)
	w.pollAll()
	w.catchUpIfBehind(catchUp)
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	discovery := time.NewTicker(w.cfg.DiscoveryInterval)
	defer discovery.Stop()
	for {
		select {
		case <-ctx.Done():
			w.pollAll()
			w.saveCheckpoints(context.Background())
			w.closeAll()
			return
		case <-poll.C:
			w.pollAll()
			w.catchUpIfBehind(catchUp)
		case <-catchUp:
			w.pollAll()
			w.catchUpIfBehind(catchUp)
		case <-discovery.C:
			w.sync(ctx, false)
		case req := <-w.pause:
			w.saveCheckpoints(ctx)
			req.wait()
		}
	}
}

// catchUpIfBehind schedules another poll right away when a file had more to read than one
// poll takes (a burst or a backlog); going through the select keeps shutdown, discovery and
// checkpoints served between rounds.
func (w *fileWatcher) catchUpIfBehind(catchUp chan struct{}) {
	if !w.behind {
		return
	}
	select {
	case catchUp <- struct{}{}:
	default:
	}
}

// sync starts following newly discovered files, updates attribution of followed ones and
// stops following files that still exist but are no longer wanted. Files that vanished are
// left to pollAll, which drains them first.
func (w *fileWatcher) sync(ctx context.Context, launch bool) {
	targets := w.discover()
	defer w.syncs.Add(1)
	wanted := make(map[string]bool, len(targets))
	for _, t := range targets {
		wanted[t.path] = true
		if r, ok := w.followers[t.path]; ok {
			r.target.container, r.target.source = t.container, t.source
			continue
		}
		how := openDiscovered
		if launch {
			how = openAtLaunch
		}
		if r := w.open(ctx, t, how); r != nil {
			w.followers[t.path] = r
		}
	}
	for path, r := range w.followers {
		if wanted[path] {
			continue
		}
		if _, err := os.Stat(path); err == nil {
			w.unfollow(ctx, path, r)
		}
	}
	// A path that vanished comes back (rename rotation: the writer re-creates it) by the next
	// discovery rounds, or is gone for good.
	expired := time.Now().Add(-2*w.cfg.DiscoveryInterval - w.cfg.RotationGrace)
	for path, v := range w.vanished {
		if v.at.Before(expired) {
			delete(w.vanished, path)
		}
	}
}

// openReason is what the watcher knows about the file behind a path it starts following, which
// decides whether the path's checkpoint may be consulted at all.
type openReason int

const (
	// openAtLaunch: found by the first discovery round. Resume from the path's checkpoint;
	// without one, read from the end (or the start, see fromStartAtLaunch).
	openAtLaunch openReason = iota
	// openDiscovered: found by a later round. Resume from the path's checkpoint (left by an
	// earlier run); without one, read from the first line.
	openDiscovered
	// openReplacing: took the place of a file this watcher was following, which it has read to
	// the end (retire). The path's checkpoint was taken from that old file, so it must not be
	// applied here: neither as an offset nor to "finish" a rotated copy the watcher already
	// finished. Read from the first line.
	openReplacing
)

// open starts following a file at the position the checkpoint, or the launch rule, says.
// A checkpoint is only ever applied to the file identity (device, inode, leading bytes) it was
// taken from, or to a rotated copy of that file when this watcher did not follow it to its end.
func (w *fileWatcher) open(ctx context.Context, t fileTarget, how openReason) *follower {
	// Discovery retries every round; each file is counted (and logged) once.
	if !w.budget.acquire() {
		if w.reportOnce("budget:"+t.path, "log file not followed: logs.max_open_files reached", zap.String("path", t.path)) {
			w.stats.FilesSkipped.Add(1)
		}
		return nil
	}
	f, err := os.Open(t.path)
	if err != nil {
		w.budget.release()
		if !errors.Is(err, os.ErrNotExist) {
			if w.reportOnce("open:"+t.path, "cannot open log file", zap.String("path", t.path), zap.Error(err)) {
				w.stats.ReadErrors.Add(1)
			}
		}
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		w.budget.release()
		return nil
	}
	w.stats.FilesOpened.Add(1)
	r := &follower{target: t, dec: t.newDecoder(), f: f, saved: -1, mtime: fi.ModTime().UnixNano()}
	r.dev, r.ino = fileIdentity(fi)
	size := fi.Size()

	var cp *fileCheckpoint
	if how != openReplacing {
		cp = w.loadCheckpoint(ctx, t.path)
	}
	switch {
	case cp != nil && cp.Dev == r.dev && cp.Ino == r.ino && cp.taken().holdsWhatWasRead(f, size, w.scratch):
		r.offset, r.commit = cp.Offset, cp.Offset
	case cp != nil:
		// The path names other content than when the checkpoint was taken (rotated while the
		// agent was down): finish the old content from its rotated copy, then read this file
		// from its first line.
		old := cp.taken()
		old.target, old.dec = t, r.dec
		list, _ := listSiblings(t.path, nil, w.scratch)
		w.finishOwnCopy(old, list)
		r.dec.reset()
	case how == openAtLaunch && !w.fromStartAtLaunch:
		r.offset = lastLineStart(f, size, w.buf)
		r.commit = r.offset
	}
	r.head = xxhash.New()
	r.fp, _ = readHead(f, size, w.scratch, r.head)
	r.readTail(f)
	if v, ok := w.vanished[t.path]; ok && how == openDiscovered {
		// The path is back after it named no file: files that rotated through it meanwhile.
		delete(w.vanished, t.path)
		w.finishRotated(r, false, f, &v.siblings, v.key, fileKey{r.dev, r.ino})
	} else {
		_, r.siblings = listSiblings(t.path, nil, w.scratch)
	}
	return r
}

// lastLineStart returns the offset just after the last '\n' before size, so that reading
// "from the end" never starts in the middle of a line.
func lastLineStart(f io.ReaderAt, size int64, buf []byte) int64 {
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		n, _ := f.ReadAt(buf[:end-start], start)
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				return start + int64(i) + 1
			}
		}
		end = start
		if size-end > 1<<20 { // a gigantic last line: don't scan the whole file backwards
			return size
		}
	}
	return 0
}

// pollAll reads new data of every followed and draining file, handling rotation, deletion and
// truncation.
func (w *fileWatcher) pollAll() {
	w.behind = false
	for path, r := range w.followers {
		fi, err := os.Stat(path)
		if err != nil {
			// Deleted, or renamed away and not re-created yet: read what is left, keep reading
			// for the grace period, forget the checkpoint.
			delete(w.followers, path)
			w.retire(r)
			if w.store != nil {
				_ = w.store.Delete(context.Background(), fileCheckpointKey(path))
			}
			if len(w.vanished) < w.cfg.MaxOpenFiles {
				w.vanished[path] = vanishedPath{key: fileKey{r.dev, r.ino}, siblings: r.siblings, at: time.Now()}
			}
			continue
		}
		if dev, ino := fileIdentity(fi); dev != r.dev || ino != r.ino {
			w.stats.Rotations.Add(1)
			delete(w.followers, path)
			w.retire(r)
			// Files that were at the path between r's file and the one there now.
			w.finishRotated(r, false, nil, &r.siblings, fileKey{r.dev, r.ino}, fileKey{dev, ino})
			if nr := w.open(context.Background(), r.target, openReplacing); nr != nil {
				w.followers[path] = nr
				w.read(nr)
				// The stored checkpoint is the old file's: replace it now, so that a restart
				// before the next checkpoint tick does not apply it to the rotated copy again.
				w.saveCheckpoint(context.Background(), path, nr)
			} else if w.store != nil {
				_ = w.store.Delete(context.Background(), fileCheckpointKey(path))
			}
			continue
		}
		w.read(r)
	}
	now := time.Now()
	kept := w.draining[:0]
	for _, d := range w.draining {
		w.readOnly(d.r)
		if now.Before(d.deadline) {
			kept = append(kept, d)
			continue
		}
		w.close(d.r)
	}
	clear(w.draining[len(kept):])
	w.draining = kept
}

// read checks the followed file for truncation, then reads what was appended.
func (w *fileWatcher) read(r *follower) {
	fi, err := r.f.Stat()
	if err != nil {
		w.stats.ReadErrors.Add(1)
		return
	}
	size, mtime := fi.Size(), fi.ModTime().UnixNano()
	// Content is checked when the file grew, or changed without growing (rewritten to the
	// same size): an idle file costs no read.
	changed := size > r.offset || (size == r.offset && mtime != r.mtime)
	r.mtime = mtime
	switch {
	case size < r.offset || (changed && !r.holdsWhatWasRead(r.f, size, w.scratch)):
		// copytruncate (or truncate-and-rewrite): finish the old content from the copy when
		// one is beside the file, then read the new content from its first byte.
		w.stats.Truncations.Add(1)
		w.finishRotated(r, true, r.f, &r.siblings)
		r.restart()
		r.copytruncated = true
	case r.copytruncated && r.offset == 0 && r.fp.N == 0 && size > 0:
		// The first bytes since a truncation left the file empty: the file may have been
		// written and truncated again in between, leaving only a copy.
		w.finishRotated(r, false, r.f, &r.siblings)
	}
	if size > r.offset {
		w.readOnly(r)
	}
}

func (w *fileWatcher) readOnly(r *follower) {
	more, err := r.readFrom(r.f, w, maxReadPerPoll)
	if more {
		w.behind = true // more to read: poll again without waiting for the ticker
	}
	if err != nil {
		w.stats.ReadErrors.Add(1)
		w.reportOnce("read:"+r.target.path, "reading log file", zap.String("path", r.target.path), zap.Error(err))
	}
}

// retire drains a file that left its path and keeps reading it for the rotation grace period.
func (w *fileWatcher) retire(r *follower) {
	w.readOnly(r)
	if w.cfg.RotationGrace <= 0 {
		w.close(r)
		return
	}
	w.draining = append(w.draining, drainingFile{r: r, deadline: time.Now().Add(w.cfg.RotationGrace)})
}

func (w *fileWatcher) close(r *follower) {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
		w.budget.release()
	}
}

// unfollow stops following the file at path, which is still there. Its checkpoint is saved
// first: when discovery wants the file again (this run or the next), reading resumes where it
// stopped instead of repeating lines from an older checkpoint or the first line. (Files that
// left their path are only closed: retire; their checkpoint was deleted or replaced.)
func (w *fileWatcher) unfollow(ctx context.Context, path string, r *follower) {
	if r.commit != r.saved {
		w.saveCheckpoint(ctx, path, r)
	}
	w.close(r)
	delete(w.followers, path)
}

func (w *fileWatcher) closeAll() {
	for path, r := range w.followers {
		w.unfollow(context.Background(), path, r)
	}
	for _, d := range w.draining {
		w.close(d.r)
	}
	w.draining = nil
}

// emit hands one message to the sink; empty lines are not messages, binary ones are counted.
func (w *fileWatcher) emit(r *follower, stream string, t time.Time, text []byte) {
	clean, binary := messageText(text)
	if binary {
		w.stats.BinaryLines.Add(1)
		return
	}
	if clean == "" {
		return
	}
	w.msg = Message{
		Container: r.target.container,
		Source:    r.target.source,
		Stream:    stream,
		Time:      t,
		Text:      clean,
		File:      r.target.path,
	}
	w.stats.Messages.Add(1)
	w.sink.Message(&w.msg)
}

func (w *fileWatcher) reportParseError(path string, err error) {
	w.reportOnce("parse:"+path, "skipping malformed log lines (reported once per file)", zap.String("source", w.name), zap.String("path", path), zap.Error(err))
}

// reportOnce logs a problem the first time it happens for a key, and reports whether this was
// the first time: a broken file must not flood the collector's log at line rate.
func (w *fileWatcher) reportOnce(key, msg string, fields ...zap.Field) bool {
	if w.reportedErrors[key] {
		return false
	}
	if len(w.reportedErrors) > 10000 {
		clear(w.reportedErrors)
	}
	w.reportedErrors[key] = true
	w.logger.Warn(msg, fields...)
	return true
}
