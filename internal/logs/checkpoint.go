package logs

import (
	"context"
	"encoding/json"

	"go.uber.org/zap"
)

// Checkpoints: with a CheckpointStore, each file's identity and the offset after its last
// whole message are saved every checkpoint_interval and at shutdown, and a restart resumes
// there (open decides whether a checkpoint applies to the file now at its path).

// CheckpointStore keeps read positions across restarts. A storage.Client of the collector's
// storage extension (e.g. file_storage) satisfies it.
type CheckpointStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// fileCheckpoint is what a restart needs to resume a file exactly: its identity and the offset
// after the last whole message.
type fileCheckpoint struct {
	Dev    uint64      `json:"dev"`
	Ino    uint64      `json:"ino"`
	FP     fingerprint `json:"fp"`
	Offset int64       `json:"offset"`
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
	b, _ := json.Marshal(fileCheckpoint{Dev: r.dev, Ino: r.ino, FP: r.fp, Offset: r.commit})
	if err := w.store.Set(ctx, fileCheckpointKey(path), b); err != nil {
		w.reportOnce("checkpoint-set", "cannot save log checkpoints", zap.Error(err))
		return false
	}
	r.saved = r.commit
	return true
}
