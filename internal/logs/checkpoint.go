package logs

import (
	"context"
	"encoding/json"
	"sync"

	"go.uber.org/zap"
)

// Checkpoints: with a CheckpointStore, each file's identity and the offset after its last
// whole message (and the journald cursor) are saved when Reader.Checkpoint asks and at
// shutdown, and a restart resumes there (open decides whether a checkpoint applies to the
// file now at its path). Files that leave their path change the store when they do.
//
// Checkpoint pauses every source where all it read up to the positions it saves has reached
// the sink, so that the caller can read the sink's counts at the same moment: a caller that
// stores those counts with the positions (in one transaction) restarts counting exactly where
// reading restarts.

// CheckpointStore keeps read positions across restarts. A storage.Client of the collector's
// storage extension (e.g. file_storage) satisfies it.
type CheckpointStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// sourceLoop is how Reader.Checkpoint reaches a source's goroutine.
type sourceLoop struct {
	pause chan pauseRequest
	done  chan struct{} // closed when the goroutine has saved its last positions and returned
}

func newSourceLoop() sourceLoop {
	return sourceLoop{pause: make(chan pauseRequest), done: make(chan struct{})}
}

// pauseRequest asks a source to save its positions and wait until resume is closed.
type pauseRequest struct {
	paused *sync.WaitGroup
	resume <-chan struct{}
}

// wait tells Checkpoint that the positions are saved and blocks until it resumes the source.
func (p pauseRequest) wait() {
	p.paused.Done()
	<-p.resume
}

// Checkpoint saves every running source's positions to the store Start was given, at a moment
// when everything read up to them has reached the sink, and calls snapshot at that moment
// while the sources wait. What snapshot reads of the sink (the counts) and the saved positions
// therefore describe the same lines. After Shutdown it only calls snapshot: the positions were
// saved when the sources stopped. snapshot must not block on the sources' sink.
func (r *Reader) Checkpoint(snapshot func()) {
	r.checkpointMu.Lock()
	defer r.checkpointMu.Unlock()
	var paused sync.WaitGroup
	resume := make(chan struct{})
	for _, l := range r.loops {
		paused.Add(1)
		select {
		case l.pause <- pauseRequest{paused: &paused, resume: resume}:
		case <-l.done:
			paused.Done()
		}
	}
	paused.Wait()
	if snapshot != nil {
		snapshot()
	}
	close(resume)
}

// fileCheckpoint is what a restart needs to resume a file exactly: its identity and the offset
// after the last whole message.
type fileCheckpoint struct {
	Dev    uint64      `json:"dev"`
	Ino    uint64      `json:"ino"`
	FP     fingerprint `json:"fp"`
	Offset int64       `json:"offset"`
	// Tail is the last bytes read before Offset (absent when a partial line was pending, and
	// in checkpoints of earlier versions).
	Tail []byte `json:"tail,omitempty"`
}

// taken is the follower that saved cp, as far as telling its content goes.
func (cp *fileCheckpoint) taken() *follower {
	return &follower{fp: cp.FP, offset: cp.Offset, tail: cp.Tail}
}

func fileCheckpointKey(path string) string { return "logs/file:" + path }

func (w *fileWatcher) loadCheckpoint(ctx context.Context, path string) *fileCheckpoint {
	if w.store == nil {
		return nil
	}
	b, err := w.store.Get(ctx, fileCheckpointKey(path))
	if err != nil || b == nil {
		return nil
	}
	var cp fileCheckpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		w.reportOnce("checkpoint:"+path, "ignoring unreadable log checkpoint", zap.String("path", path), zap.Error(err))
		return nil
	}
	return &cp
}

func (w *fileWatcher) saveCheckpoints(ctx context.Context) {
	if w.store == nil {
		return
	}
	for path, r := range w.followers {
		if r.commit == r.saved {
			continue
		}
		if !w.saveCheckpoint(ctx, path, r) {
			return
		}
	}
}

// saveCheckpoint stores where a restart resumes the file followed at path; false when the
// store failed.
func (w *fileWatcher) saveCheckpoint(ctx context.Context, path string, r *follower) bool {
	if w.store == nil {
		return true
	}
	cp := fileCheckpoint{Dev: r.dev, Ino: r.ino, FP: r.fp, Offset: r.commit}
	if r.commit == r.offset {
		cp.Tail = r.tail
	}
	b, _ := json.Marshal(cp)
	if err := w.store.Set(ctx, fileCheckpointKey(path), b); err != nil {
		w.reportOnce("checkpoint-set", "cannot save log checkpoints", zap.Error(err))
		return false
	}
	r.saved = r.commit
	return true
}
