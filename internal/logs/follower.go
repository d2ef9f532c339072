package logs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// fingerprintSize is how many leading bytes identify a file's content beside its (device,
// inode): inodes are reused after deletion, and copytruncate keeps the inode while replacing
// the content.
const fingerprintSize = 512

// maxReadPerPoll bounds one file's read per poll so a burst in one file cannot starve others.
const maxReadPerPoll = 8 << 20

// fingerprint identifies a file by a hash of its first n bytes (n < fingerprintSize only while
// the file is shorter than that).
type fingerprint struct {
	N   int    `json:"n"`
	Sum uint64 `json:"sum"`
}

func readFingerprint(f io.ReaderAt, size int64, scratch []byte) (fingerprint, error) {
	n := int(min(size, fingerprintSize))
	if n == 0 {
		return fingerprint{}, nil
	}
	b := scratch[:n]
	got, err := f.ReadAt(b, 0)
	if got < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fingerprint{}, err
	}
	return fingerprint{N: n, Sum: xxhash.Sum64(b)}, nil
}

// matches reports whether f still starts with the bytes this fingerprint was taken from.
func (fp fingerprint) matches(f io.ReaderAt, size int64, scratch []byte) bool {
	if fp.N == 0 {
		return true
	}
	if size < int64(fp.N) {
		return false
	}
	b := scratch[:fp.N]
	if n, _ := f.ReadAt(b, 0); n < fp.N {
		return false
	}
	return xxhash.Sum64(b) == fp.Sum
}

// fileTarget is a file a source wants followed, with what its messages are attributed to.
type fileTarget struct {
	path       string
	container  containers.ID
	source     string
	newDecoder func() lineDecoder
	// maxRaw caps one raw line: max_line_length for plain files, more for docker/CRI whose
	// lines carry escaping or a prefix around a chunk of at most 16 KiB.
	maxRaw int
}

// follower reads one log file from an offset, line by line, across rotation and truncation.
// It is owned by one fileWatcher goroutine.
type follower struct {
	target  fileTarget
	dec     lineDecoder
	f       *os.File
	dev     uint64
	ino     uint64
	fp      fingerprint
	offset  int64 // next byte to read
	commit  int64 // offset after the last whole message: where a restart resumes
	saved   int64 // commit last written to the checkpoint store (-1: never)
	partial []byte
	// discarding: the current line overflowed maxRaw; skip bytes up to its '\n'.
	discarding bool
	truncated  bool
}

func fileIdentity(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino //nolint:unconvert // Dev is uint32 on some architectures
	}
	return 0, 0
}

// readFrom reads f from r.offset to its current end (at most maxReadPerPoll), feeding lines to
// the decoder. It is used on the followed file and on a rotated copy of it.
func (r *follower) readFrom(f *os.File, w *fileWatcher) error {
	var total int
	for total < maxReadPerPoll {
		n, err := f.ReadAt(w.buf, r.offset)
		if n > 0 {
			r.consume(w.buf[:n], w)
			total += n
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	w.behind = true // more to read: poll again without waiting for the ticker
	return nil
}

// consume splits a chunk that starts at r.offset into lines.
func (r *follower) consume(chunk []byte, w *fileWatcher) {
	for len(chunk) > 0 {
		if chunk[0] == 0 && len(r.partial) == 0 && !r.discarding {
			// A writer without O_APPEND keeps writing at its old offset after copytruncate,
			// so the file starts with a hole of NULs, possibly megabytes long: skip it rather
			// than take it for an overlong line (and lose the line after it).
			n := len(chunk) - len(bytes.TrimLeft(chunk, "\x00"))
			chunk = chunk[n:]
			r.offset += int64(n)
			continue
		}
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			r.offset += int64(len(chunk))
			r.keepPartial(chunk, w)
			return
		}
		line := chunk[:i]
		chunk = chunk[i+1:]
		r.offset += int64(i + 1)
		if r.discarding {
			// The capped head of this line was emitted already; its tail ends here.
			r.discarding, r.truncated = false, false
			r.partial = r.partial[:0]
			if !r.dec.pending() {
				r.commit = r.offset
			}
			continue
		}
		if len(r.partial) > 0 {
			if room := r.target.maxRaw - len(r.partial); len(line) > room {
				line, r.truncated = line[:max(room, 0)], true
			}
			r.partial = append(r.partial, line...)
			line = r.partial
		}
		r.line(line, w)
		r.partial = r.partial[:0]
		r.truncated = false
	}
}

// keepPartial buffers the beginning of a line whose '\n' has not been read yet, up to maxRaw.
func (r *follower) keepPartial(b []byte, w *fileWatcher) {
	if r.discarding {
		return
	}
	room := r.target.maxRaw - len(r.partial)
	if len(b) > room {
		b = b[:max(room, 0)]
		r.discarding, r.truncated = true, true
	}
	r.partial = append(r.partial, b...)
	if r.discarding {
		// Emit the capped head now: the rest of the line may be megabytes away.
		r.line(r.partial, w)
		r.partial = r.partial[:0]
	}
}

func (r *follower) line(line []byte, w *fileWatcher) {
	w.stats.Lines.Add(1)
	if len(line) > r.target.maxRaw {
		line, r.truncated = line[:r.target.maxRaw], true
	}
	truncatedRaw := r.truncated
	err := r.dec.decode(line, func(stream string, t time.Time, text []byte, truncated bool) {
		if truncated || truncatedRaw {
			w.stats.Truncated.Add(1)
		}
		w.emit(r, stream, t, text)
	})
	if err != nil {
		w.stats.ParseErrors.Add(1)
		w.reportParseError(r.target.path, err)
	}
	if !r.dec.pending() && !r.discarding {
		r.commit = r.offset
	}
}

// restart makes the follower read its file again from the first byte (truncation, or the
// content was replaced under the same inode).
func (r *follower) restart() {
	r.offset, r.commit = 0, 0
	r.partial, r.discarding, r.truncated = r.partial[:0], false, false
	r.dec.reset()
}

// rotatedSiblings lists files beside path that may be its rotated copies (app.log.1,
// app.log-20240101, 0.log.20240101-120000), newest first, compressed ones left out.
func rotatedSiblings(path string) []string {
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type cand struct {
		path  string
		mtime int64
	}
	var cands []cand
	for _, e := range entries {
		name := e.Name()
		if name == base || !strings.HasPrefix(name, base) || e.IsDir() {
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
		cands = append(cands, cand{filepath.Join(dir, name), info.ModTime().UnixNano()})
	}
	for i := 1; i < len(cands); i++ {
		for j := i; j > 0 && cands[j].mtime > cands[j-1].mtime; j-- {
			cands[j], cands[j-1] = cands[j-1], cands[j]
		}
	}
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.path
	}
	return out
}

func isCompressed(name string) bool {
	for _, ext := range [...]string{".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// recoverFromRotatedCopy reads what the follower had not read yet from a rotated copy of its
// content (copytruncate, or a rename while the agent was down): a sibling whose first bytes
// match the fingerprint and that is at least as long as the read offset. It reports whether
// such a copy was found.
func (r *follower) recoverFromRotatedCopy(w *fileWatcher) bool {
	if r.fp.N == 0 || r.offset == 0 {
		return false
	}
	for _, p := range rotatedSiblings(r.target.path) {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err == nil && fi.Size() >= r.offset && r.fp.matches(f, fi.Size(), w.scratch) {
			_ = r.readFrom(f, w)
			_ = f.Close()
			w.stats.RecoveredFromRotated.Add(1)
			return true
		}
		_ = f.Close()
	}
	return false
}
