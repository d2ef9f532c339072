package logs

import (
	"bytes"
	"errors"
	"io"
	"os"
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
	return readHead(f, size, scratch, xxhash.New())
}

// readHead reads the fingerprint of f's first bytes into head (reset first), which a follower
// keeps to extend the fingerprint as the file grows (learnFingerprint).
func readHead(f io.ReaderAt, size int64, scratch []byte, head *xxhash.Digest) (fingerprint, error) {
	head.Reset()
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
		head.Reset()
		return fingerprint{}, err
	}
	_, _ = head.Write(b)
	return fingerprint{N: n, Sum: head.Sum64()}, nil
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

// tailSize is how many of the last bytes read a follower checks are still where it read them.
const tailSize = 32

// follower reads one log file from an offset, line by line, across rotation and truncation.
// It is owned by one fileWatcher goroutine.
//
// The content it reads is identified by its first bytes (fp) and by the last bytes it read
// (tail, just before offset), both taken from what it read rather than read again from the
// file later: a file can be truncated and rewritten between two reads. The first bytes tell
// a rewrite from 0 by an O_APPEND writer. A writer without O_APPEND goes on at its old offset
// after a truncation: each new content starts with a hole of NULs, the same first bytes as the
// content before it when that followed a truncation too, and only the tail tells them apart.
type follower struct {
	target  fileTarget
	dec     lineDecoder
	f       *os.File
	dev     uint64
	ino     uint64
	fp      fingerprint
	head    *xxhash.Digest // the hash state of fp, extended while fp.N < fingerprintSize
	tail    []byte
	mtime   int64 // the file's modification time at the last poll (ns)
	offset  int64 // next byte to read
	commit  int64 // offset after the last whole message: where a restart resumes
	saved   int64 // commit last written to the checkpoint store (-1: never)
	partial []byte
	// discarding: the current line overflowed maxRaw; skip bytes up to its '\n'.
	discarding bool
	truncated  bool
	// siblings: the rotated files beside the path when last listed (rotated.go).
	siblings siblingSet
	// copytruncated: this file was truncated in place before; once it is empty, whole
	// generations can come and go between two polls without leaving a trace in it.
	copytruncated bool
}

func fileIdentity(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino //nolint:unconvert // Dev is uint32 on some architectures
	}
	return 0, 0
}

// readFrom reads f from r.offset to its current end, at most limit bytes, feeding lines to
// the decoder; more reports that the limit stopped it. It is used on the followed file and on
// rotated copies of it.
func (r *follower) readFrom(f *os.File, w *fileWatcher, limit int) (more bool, err error) {
	var total int
	for total < limit {
		off := r.offset
		n, err := f.ReadAt(w.buf, off)
		if n > 0 {
			if f == r.f {
				r.learnFingerprint(w.buf[:n], off)
			}
			r.consume(w.buf[:n], w)
			r.noteTail(w.buf[:n])
			total += n
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
	}
	return true, nil
}

// readToEnd reads f from r.offset to its end however far that is: a rotated file is read
// once, not polled again.
func (r *follower) readToEnd(f *os.File, w *fileWatcher) error {
	for {
		more, err := r.readFrom(f, w, maxReadPerPoll)
		if err != nil || !more {
			return err
		}
	}
}

// learnFingerprint extends fp over the first fingerprintSize bytes of the followed file from a
// chunk just read at off (reads are contiguous, and fp covers at least up to the first of them).
func (r *follower) learnFingerprint(chunk []byte, off int64) {
	n := int64(r.fp.N)
	if n >= fingerprintSize || off > n || off+int64(len(chunk)) <= n {
		return
	}
	if r.head == nil {
		if n > 0 {
			return // fp was not taken by this follower: no hash state to extend
		}
		r.head = xxhash.New()
	}
	end := min(off+int64(len(chunk)), fingerprintSize)
	_, _ = r.head.Write(chunk[n-off : end-off])
	r.fp = fingerprint{N: int(end), Sum: r.head.Sum64()}
}

// noteTail keeps the last tailSize bytes read, which end at r.offset.
func (r *follower) noteTail(chunk []byte) {
	if len(chunk) >= tailSize {
		r.tail = append(r.tail[:0], chunk[len(chunk)-tailSize:]...)
		return
	}
	r.tail = append(r.tail, chunk...)
	if over := len(r.tail) - tailSize; over > 0 {
		r.tail = append(r.tail[:0], r.tail[over:]...)
	}
}

// readTail sets the tail from f when reading starts at an offset inside it.
func (r *follower) readTail(f io.ReaderAt) {
	n := min(r.offset, tailSize)
	r.tail = r.tail[:0]
	if n == 0 {
		return
	}
	b := make([]byte, n)
	if got, _ := f.ReadAt(b, r.offset-n); got == int(n) {
		r.tail = b
	}
}

// holdsWhatWasRead reports whether f (of the given size) still holds, at the same places, the
// first bytes and the last bytes this follower read: the same content, possibly grown.
func (r *follower) holdsWhatWasRead(f io.ReaderAt, size int64, scratch []byte) bool {
	if size < r.offset || !r.fp.matches(f, size, scratch) {
		return false
	}
	n := len(r.tail)
	if n == 0 {
		return true
	}
	b := scratch[:n]
	got, _ := f.ReadAt(b, r.offset-int64(n))
	return got == n && bytes.Equal(b, r.tail)
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
	r.fp, r.tail = fingerprint{}, r.tail[:0]
	if r.head != nil {
		r.head.Reset()
	}
	r.partial, r.discarding, r.truncated = r.partial[:0], false, false
	r.dec.reset()
}
