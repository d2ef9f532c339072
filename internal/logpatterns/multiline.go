package logpatterns

import (
	"strings"
	"time"
	"unsafe"
)

// JoinerConfig bounds one Joiner.
type JoinerConfig struct {
	// MaxLines is the number of lines one message may hold; further continuation lines are
	// dropped and counted.
	MaxLines int `mapstructure:"max_lines"`
	// MaxBytes is the number of bytes one message may hold, the same way.
	MaxBytes int `mapstructure:"max_bytes"`
	// Timeout is how long a pending message waits for a continuation line before Flush
	// hands it out.
	Timeout time.Duration `mapstructure:"timeout"`
}

// DefaultJoinerConfig returns the limits used when the user sets nothing.
func DefaultJoinerConfig() JoinerConfig {
	return JoinerConfig{MaxLines: 500, MaxBytes: 65536, Timeout: time.Second}
}

// Message is a whole log message made of one or more lines.
type Message struct {
	// Text is the lines joined with "\n". It lives in the Joiner's buffer: it is valid until
	// the next call to Add, Flush or FlushAll of the Joiner that returned it (strings.Clone
	// keeps it longer), so joining allocates nothing per message.
	Text  string
	Time  time.Time // time of the first line
	Lines int       // lines kept in Text
}

// Joiner joins the lines of multi-line messages (Java, Python, Go panic and .NET stack
// traces) into one message. It starts no goroutines: the caller feeds lines with their time
// and calls Flush from its own clock. It is not safe for concurrent use.
type Joiner struct {
	cfg JoinerConfig
	// text holds the pending message, its lines joined with '\n'; out the message handed out
	// last, which stays valid until the next call. Add copies every line: the caller may
	// reuse a line's memory once Add returns.
	text, out []byte
	lines     int
	first     time.Time
	last      time.Time
	state     traceState
	dropped   uint64
}

type traceState uint8

const (
	stateNone     traceState = iota
	statePython              // after "Traceback (most recent call last):"
	statePythonEx            // after the exception line ending a Python traceback
	stateGoPanic             // after "panic:" or "fatal error:" or "goroutine N [...]:"
)

// NewJoiner returns a Joiner; zero or negative limits take the defaults.
func NewJoiner(cfg JoinerConfig) *Joiner {
	def := DefaultJoinerConfig()
	if cfg.MaxLines < 1 {
		cfg.MaxLines = def.MaxLines
	}
	if cfg.MaxBytes < 1 {
		cfg.MaxBytes = def.MaxBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	return &Joiner{cfg: cfg}
}

// Dropped returns how many continuation lines were dropped by the line and byte caps.
func (j *Joiner) Dropped() uint64 { return j.dropped }

// Add feeds one line (without its line ending) read at t. When the line starts a new
// message, the previous message is complete and returned with ok true.
func (j *Joiner) Add(line string, t time.Time) (msg Message, ok bool) {
	for line != "" && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	if j.lines > 0 && j.continues(line) {
		if j.lines >= j.cfg.MaxLines || len(j.text)+1+len(line) > j.cfg.MaxBytes {
			j.dropped++
		} else {
			j.text = append(j.text, '\n')
			j.text = append(j.text, line...)
			j.lines++
		}
		j.last = t
		return Message{}, false
	}
	if j.lines > 0 {
		msg, ok = j.take(), true
	}
	j.state = stateNone
	j.start(line, t)
	return msg, ok
}

// Flush returns the pending message if no line arrived for Timeout before now.
func (j *Joiner) Flush(now time.Time) (Message, bool) {
	if j.lines == 0 || now.Sub(j.last) < j.cfg.Timeout {
		return Message{}, false
	}
	return j.take(), true
}

// FlushAll returns the pending message regardless of time, e.g. at the end of a stream.
func (j *Joiner) FlushAll() (Message, bool) {
	if j.lines == 0 {
		return Message{}, false
	}
	return j.take(), true
}

func (j *Joiner) start(line string, t time.Time) {
	if len(line) > j.cfg.MaxBytes {
		line = truncateUTF8(line, j.cfg.MaxBytes)
	}
	j.text = append(j.text[:0], line...)
	j.lines = 1
	j.first, j.last = t, t
	j.state = stateNone
	switch {
	case strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: "):
		j.state = stateGoPanic
	case strings.HasPrefix(line, "Traceback (most recent call last):"):
		j.state = statePython
	}
}

func (j *Joiner) take() Message {
	j.text, j.out = j.out[:0], j.text
	if cap(j.text) > joinerKeep {
		j.text = nil // a rare long message does not pin its buffer for the stream's life
	}
	m := Message{Time: j.first, Lines: j.lines}
	if len(j.out) > 0 {
		m.Text = unsafe.String(&j.out[0], len(j.out))
	}
	j.lines = 0
	j.state = stateNone
	return m
}

// joinerKeep is the capacity of a buffer a Joiner keeps between messages.
const joinerKeep = 16 << 10

// continues decides whether line belongs to the pending message, updating the trace state.
// A binary line never does: it is no part of a stack trace, whatever its first bytes (checked
// last, as only a line that looks like a continuation needs the check).
func (j *Joiner) continues(line string) bool {
	return j.continuesTrace(line) && !Binary(line)
}

func (j *Joiner) continuesTrace(line string) bool {
	if line != "" && (line[0] == ' ' || line[0] == '\t') {
		// Java "\tat ...", Python "  File ...", Go "\t/src/x.go:12 +0x1d", .NET "   at ...".
		if j.state == statePythonEx {
			j.state = statePython
		}
		return true
	}
	switch j.state {
	case statePython:
		if line == "" {
			return true
		}
		// The unindented line after the frames is the exception: "ValueError: bad".
		j.state = statePythonEx
		return true
	case statePythonEx:
		// Chained exceptions: a blank line, then "During handling of the above exception..."
		// or "The above exception was the direct cause...", then a new traceback.
		if line == "" || strings.HasPrefix(line, "During handling of the above exception") ||
			strings.HasPrefix(line, "The above exception was the direct cause") {
			return true
		}
		if strings.HasPrefix(line, "Traceback (most recent call last):") {
			j.state = statePython
			return true
		}
		return false
	case stateGoPanic:
		if line == "" || strings.HasPrefix(line, "goroutine ") || strings.HasPrefix(line, "created by ") ||
			strings.HasPrefix(line, "[signal ") || strings.HasPrefix(line, "exit status ") ||
			strings.HasPrefix(line, "...additional frames elided...") || goFuncLine(line) {
			return true
		}
		return false
	}
	switch {
	case strings.HasPrefix(line, "Caused by: "), strings.HasPrefix(line, "Suppressed: "):
		return true
	case strings.HasPrefix(line, "--- End of "): // .NET "--- End of inner exception stack trace ---"
		return true
	case strings.HasPrefix(line, "Traceback (most recent call last):"):
		// Python's logging.exception prints the traceback after the message line.
		j.state = statePython
		return true
	case strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, "]:"):
		j.state = stateGoPanic
		return true
	case exceptionHeader(line):
		return true
	}
	return false
}

// exceptionHeader recognises the first line of a Java or .NET exception printed after the
// log line that reported it: "java.lang.IllegalStateException: boom",
// "System.InvalidOperationException: x", `Exception in thread "main" java.lang.Error`.
func exceptionHeader(line string) bool {
	if strings.HasPrefix(line, "Exception in thread ") {
		return true
	}
	end := strings.IndexByte(line, ':')
	if end < 0 {
		end = len(line)
	}
	name := line[:end]
	if !strings.Contains(name, ".") || strings.ContainsAny(name, " \t") {
		return false
	}
	return strings.HasSuffix(name, "Exception") || strings.HasSuffix(name, "Error") || strings.HasSuffix(name, "Throwable")
}

// goFuncLine recognises the function lines of a Go stack trace: "main.main()",
// "net/http.(*conn).serve(0xc000123000, {0x6f1c20, 0xc0000a2000})", "panic({0x4a1b00?, 0x5d2c10?})".
func goFuncLine(line string) bool {
	open := strings.IndexByte(line, '(')
	return open > 0 && strings.HasSuffix(line, ")") && !strings.ContainsAny(line[:open], " \t")
}
