package logs

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Rotated content. A rotation leaves the content a follower was reading beside its path
// (app.log.1, app.log-20240101, 0.log.20240101-120000): renamed there, the follower still
// holding it open, or copied there before the file was truncated in place (copytruncate), when
// what the follower had not read yet is finished from the copy. A path can also rotate more
// than once between two polls (a poll delayed on a loaded node, a burst of rotations): the
// generations in between were never seen at the path at all, and are read whole from the
// siblings that appeared, or were rewritten, since the follower last listed them.

// maxSiblings bounds the rotated files of one path a follower remembers: the newest ones.
const maxSiblings = 64

type fileKey struct{ dev, ino uint64 }

// sibling is a file beside a followed path that may hold rotated content of it.
type sibling struct {
	path  string
	key   fileKey
	size  int64
	mtime int64
	fp    fingerprint // its first bytes when listed
	// changed: the last listing did not have this file, or it has other first bytes now
	// (rewritten in place, as `cp` over an existing copy does), and it was written since.
	changed bool
	// numbered: its name is the path's plus a number or a date (app.log.1, app.log-20240101,
	// 0.log.20240101-120000), not another file that happens to share the prefix (app.log.pos,
	// 0.log.20240101-120000.gz.tmp while it is being compressed).
	numbered bool
}

// siblingSet is what a follower saw beside its path when it last listed it.
type siblingSet struct {
	files []siblingFile
	// oldest is the mtime of the oldest file kept when there were more than maxSiblings;
	// older files count as seen.
	oldest int64
	// listedAt is when the listing was made (ns): a file last written well before it (an
	// archive moved in, say) is no generation that came and went since.
	listedAt int64
}

// mtimeSlack covers the file system's timestamp granularity when mtimes are compared with
// listedAt.
const mtimeSlack = int64(time.Second)

type siblingFile struct {
	key fileKey
	fp  fingerprint
}

func (s *siblingSet) lookup(k fileKey) (fingerprint, bool) {
	for _, f := range s.files {
		if f.key == k {
			return f.fp, true
		}
	}
	return fingerprint{}, false
}

// listSiblings lists the files beside path that may be its rotated copies, newest first, and
// marks those prev did not see as they are now (all of them when prev is nil). Compressed
// ones are left out: their content cannot be read.
func listSiblings(path string, prev *siblingSet, scratch []byte) (list []sibling, set siblingSet) {
	set.listedAt = time.Now().UnixNano()
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, set
	}
	for _, e := range entries {
		name := e.Name()
		// Regular files only: opening a FIFO would block the watcher.
		if name == base || !strings.HasPrefix(name, base) || !e.Type().IsRegular() {
			continue
		}
		if c := name[len(base)]; c != '.' && c != '-' && c != '_' {
			continue
		}
		if isCompressed(name) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		list = append(list, sibling{
			path: filepath.Join(dir, name), mtime: info.ModTime().UnixNano(), numbered: isRotationSuffix(name[len(base):]),
		})
	}
	slices.SortStableFunc(list, func(a, b sibling) int {
		switch {
		case a.mtime > b.mtime:
			return -1
		case a.mtime < b.mtime:
			return 1
		}
		return strings.Compare(a.path, b.path)
	})
	if len(list) > maxSiblings {
		list = list[:maxSiblings]
		set.oldest = list[len(list)-1].mtime
	}
	kept := list[:0]
	for _, sb := range list {
		f, err := os.Open(sb.path)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			continue
		}
		dev, ino := fileIdentity(fi)
		sb.key, sb.size = fileKey{dev, ino}, fi.Size()
		sb.fp, _ = readFingerprint(f, sb.size, scratch)
		if prev != nil && sb.mtime >= prev.listedAt-mtimeSlack {
			if fp, ok := prev.lookup(sb.key); ok {
				sb.changed = !fp.matches(f, sb.size, scratch)
			} else {
				sb.changed = prev.oldest == 0 || sb.mtime >= prev.oldest
			}
		}
		_ = f.Close()
		kept = append(kept, sb)
		set.files = append(set.files, siblingFile{key: sb.key, fp: sb.fp})
	}
	return kept, set
}

// isRotationSuffix reports whether what follows a log's name in a sibling's name is a
// rotation's number or date: a separator, then digits and separators only.
func isRotationSuffix(suffix string) bool {
	digits := false
	for i, c := range suffix {
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.' || c == '-' || c == '_' || (c == ':' && i > 0):
		default:
			return false
		}
	}
	return digits
}

func isCompressed(name string) bool {
	for _, ext := range [...]string{".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// finishOwnCopy reads what r had not read yet from the rotated copy of its content among list
// (copytruncate, or a rename while the agent was down): the newest sibling that holds what r
// read where r read it and is at least as long. It returns that copy's path ("" when none).
func (w *fileWatcher) finishOwnCopy(r *follower, list []sibling) string {
	if r.fp.N == 0 || r.offset == 0 {
		return ""
	}
	for _, sb := range list {
		if sb.size < r.offset {
			continue
		}
		f, err := os.Open(sb.path)
		if err != nil {
			continue
		}
		if r.holdsWhatWasRead(f, sb.size, w.scratch) {
			if err := r.readToEnd(f, w); err != nil {
				w.stats.ReadErrors.Add(1)
			}
			_ = f.Close()
			w.stats.RecoveredFromRotated.Add(1)
			return sb.path
		}
		_ = f.Close()
	}
	return ""
}

// finishRotated reads what rotations left beside r's path that r has not read: with own, the
// rest of r's content from its copy (copytruncate), then every generation that came and went
// since r last listed the path, whole, oldest first. current is the file now at the path (nil:
// none), seen is what r saw beside the path before, and skip the files read otherwise (r's
// own, which a rename rotation left open to r). r's sibling listing is renewed.
func (w *fileWatcher) finishRotated(r *follower, own bool, current *os.File, seen *siblingSet, skip ...fileKey) {
	list, set := listSiblings(r.target.path, seen, w.scratch)
	ownCopy := ""
	if own {
		ownCopy = w.finishOwnCopy(r, list)
	}
	for i := len(list) - 1; i >= 0; i-- {
		sb := list[i]
		if !sb.changed || !sb.numbered || sb.path == ownCopy || slices.Contains(skip, sb.key) || w.followers[sb.path] != nil ||
			(current != nil && isCopyOf(sb, current, w.scratch)) {
			continue
		}
		w.readMissedGeneration(r.target, sb.path)
	}
	r.siblings = set
}

// isCopyOf reports whether sb holds the beginning of current: a copy of the content still at
// the path, being made (copytruncate copies first, then truncates) or made and not yet
// truncated. That content is read from the path, not from the copy.
func isCopyOf(sb sibling, current *os.File, scratch []byte) bool {
	fi, err := current.Stat()
	if err != nil || fi.Size() < sb.size || !sb.fp.matches(current, fi.Size(), scratch) {
		return false
	}
	n := int(min(sb.size, tailSize))
	if n == 0 {
		return true
	}
	f, err := os.Open(sb.path)
	if err != nil {
		return false
	}
	defer f.Close()
	a, b := scratch[:n], make([]byte, n)
	if got, _ := f.ReadAt(a, sb.size-int64(n)); got < n {
		return false
	}
	if got, _ := current.ReadAt(b, sb.size-int64(n)); got < n {
		return false
	}
	return bytes.Equal(a, b)
}

// readMissedGeneration reads a rotated file the watcher never saw at its path, from its first
// line to its end.
func (w *fileWatcher) readMissedGeneration(t fileTarget, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	g := &follower{target: t, dec: t.newDecoder()}
	if err := g.readToEnd(f, w); err != nil {
		w.stats.ReadErrors.Add(1)
		w.reportOnce("read:"+path, "reading rotated log file", zap.String("path", path), zap.Error(err))
	}
	w.stats.MissedRotations.Add(1)
}
