package logs

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// CRILine is one line of a CRI container log (kubelet / containerd / CRI-O):
// "<RFC3339Nano time> <stdout|stderr> <tags> <text>", where the first ':'-separated tag is P
// (partial: the runtime split a long line, more chunks follow) or F (full: the last chunk).
type CRILine struct {
	Time    time.Time
	Stream  string
	Partial bool
	Text    []byte // aliases the input line
}

// ParseCRILine decodes one CRI log line (without its '\n').
func ParseCRILine(line []byte) (CRILine, error) {
	var out CRILine
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return out, errors.New("cri: no stream after the timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return out, fmt.Errorf("cri: bad timestamp: %w", err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return out, errors.New("cri: no tag after the stream")
	}
	switch string(stream) {
	case "stdout":
		out.Stream = "stdout"
	case "stderr":
		out.Stream = "stderr"
	default:
		return out, fmt.Errorf("cri: unknown stream %q", truncateForError(stream))
	}
	// The text may be empty, and then some runtimes omit the separating space.
	tags, text, _ := bytes.Cut(rest, []byte{' '})
	first, _, _ := bytes.Cut(tags, []byte{':'})
	switch string(first) {
	case "P":
		out.Partial = true
	case "F":
	default:
		return out, fmt.Errorf("cri: unknown tag %q", truncateForError(tags))
	}
	out.Time, out.Text = t, text
	return out, nil
}

func truncateForError(b []byte) string {
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}

// criDecoder decodes a CRI log, joining P chunks up to their F line.
type criDecoder struct{ joiner partialJoiner }

func newCRIDecoder(maxLine int) *criDecoder { return &criDecoder{joiner: partialJoiner{max: maxLine}} }

func (d *criDecoder) decode(line []byte, emit emitFunc) error {
	l, err := ParseCRILine(line)
	if err != nil {
		return err
	}
	d.joiner.add(l.Stream, l.Time, l.Text, !l.Partial, emit)
	return nil
}

func (d *criDecoder) pending() bool { return d.joiner.pending() }
func (d *criDecoder) reset()        { d.joiner.reset() }
