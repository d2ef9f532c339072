package logs

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DockerJSONLine is one entry of dockerd's json-file log driver:
// {"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}. Log is the
// unescaped text; it lacks the trailing "\n" when dockerd split a line longer than 16 KiB.
type DockerJSONLine struct {
	Log    []byte
	Stream string
	Time   string
}

var errNotObject = errors.New("docker json: not a JSON object")

// ParseDockerJSONLine decodes one json-file entry. It is a small scanner rather than
// encoding/json because it runs once per log line: it unescapes into buf (reused by the caller,
// Log aliases it), ignores unknown fields (e.g. "attrs") and, like encoding/json, lets the last
// of duplicated keys win.
func ParseDockerJSONLine(line []byte, buf []byte) (DockerJSONLine, []byte, error) {
	var out DockerJSONLine
	s := scanner{data: line}
	s.skipSpace()
	if !s.consume('{') {
		return out, buf, errNotObject
	}
	buf = buf[:0]
	s.skipSpace()
	if s.consume('}') {
		return out, buf, s.end()
	}
	for {
		s.skipSpace()
		key, ok := s.rawString()
		if !ok {
			return out, buf, s.errorf("expected a key")
		}
		s.skipSpace()
		if !s.consume(':') {
			return out, buf, s.errorf("expected ':'")
		}
		s.skipSpace()
		switch string(key) {
		case "log", "stream", "time":
			raw, ok := s.rawString()
			if !ok {
				return out, buf, s.errorf("field %q is not a string", key)
			}
			start := len(buf)
			var err error
			if buf, err = unescapeJSON(buf, raw); err != nil {
				return out, buf, err
			}
			v := buf[start:]
			switch string(key) {
			case "log":
				out.Log = v
			case "stream":
				out.Stream = string(v)
			case "time":
				out.Time = string(v)
			}
		default:
			if !s.skipValue(0) {
				return out, buf, s.errorf("bad value of %q", key)
			}
		}
		s.skipSpace()
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return out, buf, s.end()
		}
		return out, buf, s.errorf("expected ',' or '}'")
	}
}

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("docker json: at byte %d: %s", s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) end() error {
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.errorf("trailing data")
	}
	return nil
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// rawString returns the still-escaped contents of a JSON string at pos.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.pos
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			raw := s.data[start:s.pos]
			s.pos++
			return raw, true
		case c == '\\':
			s.pos += 2
		case c < 0x20:
			return nil, false
		default:
			s.pos++
		}
	}
	return nil, false
}

const maxJSONDepth = 64

// skipValue skips any JSON value (strings, numbers, literals, nested arrays and objects).
func (s *scanner) skipValue(depth int) bool {
	if depth > maxJSONDepth || s.pos >= len(s.data) {
		return false
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		_, ok := s.rawString()
		return ok
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		s.pos++
		s.skipSpace()
		if s.consume(closing) {
			return true
		}
		for {
			s.skipSpace()
			if c == '{' {
				if _, ok := s.rawString(); !ok {
					return false
				}
				s.skipSpace()
				if !s.consume(':') {
					return false
				}
				s.skipSpace()
			}
			if !s.skipValue(depth + 1) {
				return false
			}
			s.skipSpace()
			if s.consume(',') {
				continue
			}
			return s.consume(closing)
		}
	case c == '-' || c >= '0' && c <= '9':
		start := s.pos
		for s.pos < len(s.data) && isNumberByte(s.data[s.pos]) {
			s.pos++
		}
		_, err := strconv.ParseFloat(string(s.data[start:s.pos]), 64)
		return err == nil || errors.Is(err, strconv.ErrRange)
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
				s.pos += len(lit)
				return true
			}
		}
		return false
	}
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// unescapeJSON appends the unescaped form of a raw JSON string to dst. Invalid UTF-8 and lone
// surrogates become U+FFFD, as encoding/json does.
func unescapeJSON(dst, raw []byte) ([]byte, error) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				// Copy the run of plain ASCII at once: most log text has no escapes.
				j := i + 1
				for j < len(raw) && raw[j] != '\\' && raw[j] < utf8.RuneSelf {
					j++
				}
				dst = append(dst, raw[i:j]...)
				i = j
				continue
			}
			r, size := utf8.DecodeRune(raw[i:])
			dst = utf8.AppendRune(dst, r) // RuneError for invalid bytes
			i += size
			continue
		}
		if i+1 >= len(raw) {
			return dst, errors.New("docker json: truncated escape")
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw[i+2:])
			if !ok {
				return dst, errors.New("docker json: bad \\u escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if len(raw)-i >= 6 && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2, ok := hex4(raw[i+2:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, fmt.Errorf("docker json: bad escape \\%c", raw[i+1])
		}
		i += 2
	}
	return dst, nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// dockerDecoder decodes a json-file log, joining the chunks dockerd writes for lines longer
// than 16 KiB (every chunk but the last lacks the trailing "\n").
type dockerDecoder struct {
	joiner partialJoiner
	buf    []byte
}

func newDockerDecoder(maxLine int) *dockerDecoder {
	return &dockerDecoder{joiner: partialJoiner{max: maxLine}}
}

func (d *dockerDecoder) decode(line []byte, emit emitFunc) error {
	var e DockerJSONLine
	var err error
	e, d.buf, err = ParseDockerJSONLine(line, d.buf)
	if err != nil {
		return err
	}
	if e.Log == nil && e.Stream == "" {
		return errors.New("docker json: entry has neither log nor stream")
	}
	t, _ := time.Parse(time.RFC3339Nano, e.Time)
	text, final := e.Log, false
	if n := len(text); n > 0 && text[n-1] == '\n' {
		text, final = text[:n-1], true
	}
	d.joiner.add(e.Stream, t, text, final, emit)
	return nil
}

func (d *dockerDecoder) pending() bool { return d.joiner.pending() }
func (d *dockerDecoder) reset()        { d.joiner.reset() }
