package logpatterns

// Level is the severity of a log message.
type Level uint8

// The levels, from least to most severe; LevelUnknown when a message states none.
const (
	LevelUnknown Level = iota
	LevelDebug
	LevelInfo
	LevelWarning
	LevelError
	LevelCritical
)

var levelNames = [...]string{"unknown", "debug", "info", "warning", "error", "critical"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "unknown"
}

// levelScanLimit bounds how far into a message DetectLevel looks: levels live in the header.
const levelScanLimit = 256

// DetectLevel finds the severity of a message. It understands, in this order:
//   - syslog priorities at the start: "<3>..." (severity = priority % 8);
//   - JSON and logfmt level fields: "level":"warn", level=error, "severity":"ERROR",
//     lvl=, loglevel=, log.level=;
//   - klog/glog headers: "E0102 15:04:05.000000 ..." (I, W, E, F + month and day);
//   - level words among the first words, bracketed or not, in any of the usual spellings:
//     [ERROR], <warn>, INFO, Warning:, ERROR:root:msg (Python), "- ERROR -", "level: info".
//
// Bare words must be upper case or capitalised ("Error", "ERROR"): lower-case prose such as
// "no error found" does not set a level. Bracketed words may be any case.
func DetectLevel(message string) Level {
	m := message
	if len(m) > levelScanLimit {
		m = m[:levelScanLimit]
	}
	if l, ok := syslogLevel(m); ok {
		return l
	}
	if l := fieldLevel(m); l != LevelUnknown {
		return l
	}
	if l, ok := klogLevel(m); ok {
		return l
	}
	return wordLevel(m)
}

func syslogLevel(m string) (Level, bool) {
	if len(m) < 3 || m[0] != '<' {
		return 0, false
	}
	p := 0
	i := 1
	for ; i < len(m) && i <= 4 && isDigit(m[i]); i++ {
		p = p*10 + int(m[i]-'0')
	}
	if i == 1 || i >= len(m) || m[i] != '>' || p > 191 {
		return 0, false
	}
	switch p % 8 {
	case 0, 1, 2:
		return LevelCritical, true
	case 3:
		return LevelError, true
	case 4:
		return LevelWarning, true
	case 5, 6:
		return LevelInfo, true
	default:
		return LevelDebug, true
	}
}

var levelKeys = [...]string{"level", "lvl", "severity", "loglevel", "log.level", "levelname", "severity_text"}

// fieldLevel looks for key=value, key: value, "key":"value" and "key": "value" fields.
func fieldLevel(m string) Level {
	for i := 0; i < len(m); i++ {
		c := m[i] | 0x20
		if c != 'l' && c != 's' {
			continue
		}
		if i > 0 && (isLetter(m[i-1]) || isDigit(m[i-1]) || m[i-1] == '_' || m[i-1] == '.') {
			continue
		}
		for _, k := range levelKeys {
			if len(m)-i < len(k) || !equalFold(m[i:i+len(k)], k) {
				continue
			}
			j := i + len(k)
			if j < len(m) && m[j] == '"' {
				j++
			}
			if j >= len(m) || (m[j] != '=' && m[j] != ':') {
				continue
			}
			j++
			for j < len(m) && (m[j] == ' ' || m[j] == '"' || m[j] == '\'') {
				j++
			}
			e := j
			for e < len(m) && isLetter(m[e]) {
				e++
			}
			if l := levelWord(m[j:e]); l != LevelUnknown {
				return l
			}
		}
	}
	return LevelUnknown
}

// klogLevel recognises the klog/glog header Lmmdd hh:mm:ss.uuuuuu.
func klogLevel(m string) (Level, bool) {
	if len(m) < 6 || !isDigit(m[1]) || !isDigit(m[2]) || !isDigit(m[3]) || !isDigit(m[4]) || m[5] != ' ' {
		return 0, false
	}
	switch m[0] {
	case 'I':
		return LevelInfo, true
	case 'W':
		return LevelWarning, true
	case 'E':
		return LevelError, true
	case 'F':
		return LevelCritical, true
	case 'D':
		return LevelDebug, true
	}
	return 0, false
}

const levelWordLimit = 8

// wordLevel checks the first words of the message for a level word.
func wordLevel(m string) Level {
	words := 0
	i := 0
	for i < len(m) && words < levelWordLimit {
		for i < len(m) && isSpace(m[i]) {
			i++
		}
		start := i
		for i < len(m) && !isSpace(m[i]) {
			i++
		}
		if start == i {
			break
		}
		words++
		w := m[start:i]
		bracketed := false
		for w != "" && (w[0] == '[' || w[0] == '<' || w[0] == '(' || w[0] == '|') {
			w, bracketed = w[1:], true
		}
		// Python's default format "ERROR:root:message"; "Error:" and "[WARN]:" too.
		k := 0
		for k < len(w) && isLetter(w[k]) {
			k++
		}
		if k < len(w) {
			switch c := w[k]; {
			case c == ':':
				w = w[:k]
			case bracketed && (c == ']' || c == '>' || c == ')' || c == '|'):
				w = w[:k]
			default:
				w = ""
			}
		}
		if w == "" || (!bracketed && !upperOrTitle(w)) {
			continue
		}
		if l := levelWord(w); l != LevelUnknown {
			return l
		}
	}
	return LevelUnknown
}

func upperOrTitle(w string) bool {
	if w[0] < 'A' || w[0] > 'Z' {
		return false
	}
	upper := true
	for i := 1; i < len(w); i++ {
		if w[i] >= 'a' {
			upper = false
			break
		}
	}
	if upper {
		return true
	}
	for i := 1; i < len(w); i++ {
		if w[i] < 'a' {
			return false
		}
	}
	return true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// levelWord maps a level name in any case to a Level.
func levelWord(w string) Level {
	if w == "" || len(w) > 13 {
		return LevelUnknown
	}
	var buf [13]byte
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(w)]) {
	case "emerg", "emergency", "alert", "crit", "critical", "fatal", "panic":
		return LevelCritical
	case "err", "error", "eror", "severe":
		return LevelError
	case "warn", "warning", "wrn":
		return LevelWarning
	case "info", "information", "informational", "notice":
		return LevelInfo
	case "debug", "dbg", "trace", "verbose", "fine", "finer", "finest":
		return LevelDebug
	}
	return LevelUnknown
}
