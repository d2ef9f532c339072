package logs

import (
	"time"
)

// emitFunc receives one whole message from a decoder. text is only valid during the call.
type emitFunc func(stream string, t time.Time, text []byte, truncated bool)

// lineDecoder turns the lines of one log file into messages. A decoder is owned by one follower
// and is not safe for concurrent use.
type lineDecoder interface {
	// decode takes one line without its '\n' (valid only during the call) and emits every
	// message the line completes; a malformed line is an error and emits nothing.
	decode(line []byte, emit emitFunc) error
	// pending reports whether a partial message is buffered, waiting for its next chunk.
	pending() bool
	// reset drops buffered partial messages (the file was truncated or replaced).
	reset()
}

// plainDecoder: every line is a message (host service log files).
type plainDecoder struct{}

func (plainDecoder) decode(line []byte, emit emitFunc) error {
	emit("", time.Time{}, line, false)
	return nil
}
func (plainDecoder) pending() bool { return false }
func (plainDecoder) reset()        {}

// partialJoiner joins the chunks a runtime split a long line into, per stream, because stdout
// and stderr chunks interleave in one file. It keeps at most max bytes of a message.
type partialJoiner struct {
	max             int
	stdout, stderr  []byte
	stdoutTruncated bool
	stderrTruncated bool
	stdoutOpen      bool
	stderrOpen      bool
}

func (j *partialJoiner) slot(stream string) (*[]byte, *bool, *bool) {
	if stream == "stderr" {
		return &j.stderr, &j.stderrTruncated, &j.stderrOpen
	}
	return &j.stdout, &j.stdoutTruncated, &j.stdoutOpen
}

// add appends a chunk; when final it emits the joined message and clears the stream's buffer.
func (j *partialJoiner) add(stream string, t time.Time, chunk []byte, final bool, emit emitFunc) {
	buf, truncated, open := j.slot(stream)
	if !*open && final {
		// The common case: a whole line in one chunk, no copy.
		if len(chunk) > j.max {
			emit(stream, t, chunk[:j.max], true)
			return
		}
		emit(stream, t, chunk, false)
		return
	}
	room := j.max - len(*buf)
	if len(chunk) > room {
		chunk = chunk[:max(room, 0)]
		*truncated = true
	}
	*buf = append(*buf, chunk...)
	*open = true
	if final {
		emit(stream, t, *buf, *truncated)
		*buf, *truncated, *open = (*buf)[:0], false, false
	}
}

func (j *partialJoiner) pending() bool { return j.stdoutOpen || j.stderrOpen }

func (j *partialJoiner) reset() {
	j.stdout, j.stderr = j.stdout[:0], j.stderr[:0]
	j.stdoutOpen, j.stderrOpen, j.stdoutTruncated, j.stderrTruncated = false, false, false, false
}
