package logpatterns

// Header detection: the fields a logging library writes before the message (timestamps,
// host, pid, level, logger, thread), recognised without per-system configuration so that
// patterns are made of messages only, as on any log the agent meets.
//
// A line is split into fields (words, or bracketed groups that may hold spaces, or parts
// separated by '|'); each field gets a kind. The header of one line on its own (lineCut) is
// the longest run of fields that reads as a header: it shows a time or a level within its
// first fields, and ends at a field that closes a header (a time, a pid after a time, a
// level, a "logger:" field, a bracketed thread, a "-" separator, a column padded with
// spaces). Lines of one stream share one layout, so a headerLearner takes the layout most
// of a stream's first lines agree on and cuts every later line that fits it at the same
// field, which settles the lines one alone cannot (is "ciod:" a logger or the message?).

// fieldKind is what a header field looks like.
type fieldKind uint8

const (
	fieldOther     fieldKind = iota // a word: host, component, or the message itself
	fieldTime                       // a date, a time, a month or weekday name, an epoch, "[... time ...]"
	fieldNumber                     // a short number: a pid or thread id
	fieldLevelWord                  // INFO, [error], <warn>, or one letter V/D/I/W/E/F after a number
	fieldLogger                     // a word ending in ':' (sshd[42]:, dfs.FSNamesystem:) or klog's file.go:12]
	fieldGroup                      // any other bracketed group: [main], [req-42 - -]
	fieldDash                       // "-", "--", "|": a separator or an empty column
)

// headerField is one field of a line.
type headerField struct {
	start, end int
	kind       fieldKind
	level      Level
	padded     bool // followed by two or more spaces or a tab: a column of a fixed-width layout
	piped      bool // followed by '|'
}

const (
	maxHeaderFields  = 14  // fields of a line looked at
	headerScanLimit  = 320 // bytes of a line looked at
	headerLearnLines = 32  // lines whose layouts the learner compares
	headerCandidates = 8   // distinct layouts the learner keeps counting
	headerWindow     = 256 // lines after which a layout most lines no longer fit is learned again
)

// splitFields appends the first limit fields of line to dst.
func splitFields(line string, dst []headerField, limit int) []headerField {
	n := len(line)
	if n > headerScanLimit {
		n = headerScanLimit
	}
	i := 0
	prev := fieldDash
	for len(dst) < limit {
		for i < n && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= n {
			break
		}
		start := i
		end := -1
		if line[i] == '[' {
			depth := 0
			for j := i; j < n; j++ {
				switch line[j] {
				case '[':
					depth++
				case ']':
					depth--
				}
				if depth == 0 {
					end = j + 1
					break
				}
			}
			if end > 0 {
				for end < n && line[end] != ' ' && line[end] != '\t' && line[end] != '|' {
					end++
				}
			}
		}
		if end < 0 {
			end = i
			for end < n && line[end] != ' ' && line[end] != '\t' && line[end] != '|' {
				end++
			}
			if end == i { // a '|' where a field starts: an empty column
				end++
			}
		}
		f := headerField{start: start, end: end}
		f.kind, f.level = classifyField(line[start:end], prev)

		i = end
		if i < len(line) {
			switch {
			case line[i] == '|':
				f.piped = true
				i++
			case line[i] == '\t', i+1 < len(line) && line[i+1] == ' ':
				f.padded = true
			}
		}
		prev = f.kind
		dst = append(dst, f)
	}
	return dst
}

// classifyField gives the kind of one field; prev is the kind of the field before it.
func classifyField(f string, prev fieldKind) (fieldKind, Level) {
	if f == "" || f == "-" || f == "--" || f == "|" {
		return fieldDash, LevelUnknown
	}
	if f[0] == '[' {
		end := len(f) - 1
		for end > 0 && f[end] != ']' {
			end--
		}
		if end <= 0 {
			return fieldOther, LevelUnknown
		}
		inner := f[1:end]
		for inner != "" && inner[0] == ' ' {
			inner = inner[1:]
		}
		w := inner
		for k := 0; k < len(w); k++ {
			if w[k] == ' ' {
				w = w[:k]
				break
			}
		}
		if l := levelWord(w); l != LevelUnknown && len(w) == len(inner) {
			return fieldLevelWord, l
		}
		if timeWord(w) || (w != "" && isNumber(w)) { // "[Sun Dec 04 ...]", "[    0.000000]"
			return fieldTime, LevelUnknown
		}
		return fieldGroup, LevelUnknown
	}
	core := f
	for len(core) > 1 && (core[len(core)-1] == ',' || core[len(core)-1] == ';') {
		core = core[:len(core)-1]
	}
	if len(core) == 1 && prev == fieldNumber {
		switch core[0] {
		case 'V', 'D':
			return fieldLevelWord, LevelDebug
		case 'I':
			return fieldLevelWord, LevelInfo
		case 'W':
			return fieldLevelWord, LevelWarning
		case 'E':
			return fieldLevelWord, LevelError
		case 'F', 'A':
			return fieldLevelWord, LevelCritical
		}
	}
	if core[len(core)-1] != ':' && timeWord(core) {
		return fieldTime, LevelUnknown
	}
	digits := true
	for i := 0; i < len(core); i++ {
		if i == 0 && core[0] == '-' && len(core) > 1 {
			continue // -1
		}
		if !isDigit(core[i]) {
			digits = false
			break
		}
	}
	if digits {
		return fieldNumber, LevelUnknown
	}
	if len(core) == 5 && isDigit(core[1]) && isDigit(core[2]) && isDigit(core[3]) && isDigit(core[4]) {
		switch core[0] { // klog's Lmmdd
		case 'I':
			return fieldTime, LevelInfo
		case 'W':
			return fieldTime, LevelWarning
		case 'E':
			return fieldTime, LevelError
		case 'F':
			return fieldTime, LevelCritical
		}
	}
	w := core
	if len(w) > 1 && w[len(w)-1] == ':' {
		w = w[:len(w)-1]
	}
	if (len(w) > 1 && (w[0] == '<' && w[len(w)-1] == '>')) || (w[0] == '(' && w[len(w)-1] == ')') {
		if l := levelWord(w[1 : len(w)-1]); l != LevelUnknown {
			return fieldLevelWord, l
		}
	}
	if upperOrTitle(w) {
		if l := levelWord(w); l != LevelUnknown {
			return fieldLevelWord, l
		}
	}
	if last := core[len(core)-1]; last == ':' && len(core) > 1 {
		return fieldLogger, LevelUnknown
	} else if last == ']' && indexByteRange(core, 0, len(core), '[') < 0 && indexByteRange(core, 0, len(core), ':') > 0 {
		return fieldLogger, LevelUnknown // klog's "file.go:123]"
	}
	return fieldOther, LevelUnknown
}

// timeWord reports whether w is a date, a time or part of one: digit groups joined by date
// and time separators (not an IPv4 address), a dotted date (2005.06.03), a month or weekday
// name, or a run of six or more digits (081109, an epoch).
func timeWord(w string) bool {
	if w == "" {
		return false
	}
	if len(w) >= 11 && isDigit(w[0]) && isDigit(w[1]) && w[2] == '/' && w[6] == '/' && isDateName(w[3:6]) {
		return true // 10/Oct/2023:13:55:36, the common log format
	}
	if isDigit(w[0]) {
		digits, sep, dots := 0, false, 0
		for i := 0; i < len(w); i++ {
			switch c := w[i]; {
			case isDigit(c):
				digits++
			case c == ':' || c == '-' || c == '/':
				sep = true
			case c == '.':
				dots++
			case c == ',' || c == '+' || c == 'T' || c == 'Z':
			default:
				return false
			}
		}
		if sep {
			return !isIPv4(w)
		}
		if dots == 2 && len(w) == 10 && w[4] == '.' && w[7] == '.' {
			return true // 2005.06.03
		}
		return dots == 0 && digits >= 6
	}
	return isDateName(w)
}

// isEpoch reports whether field f of line is nine digits or more: seconds since 1970.
func isEpoch(line string, f *headerField) bool {
	if f.end-f.start < 9 {
		return false
	}
	for k := f.start; k < f.end; k++ {
		if !isDigit(line[k]) {
			return false
		}
	}
	return true
}

// lineCut returns how many of a line's fields form its header, and the level a level field
// among them gives. A header shows a time or a level among its first four fields; it ends at
// the last field that can close one, before anything that reads as the message (a number
// after a level, a run of plain words, a second level).
func lineCut(line string, fields []headerField) (int, Level) {
	seenTime, seenLevel := false, false
	level := LevelUnknown
	cut, words := 0, 0
	closer := fieldOther // kind of the field the header last closed with
	for i, f := range fields {
		if !seenTime && !seenLevel && i >= 5 {
			break
		}
		stop := false
		switch f.kind {
		case fieldTime:
			// One word may stand between times (a host), three before an epoch (a node, a
			// component and a state before the epoch in the line of a cluster's event log).
			if seenLevel || (words > 1 && (words > 3 || !isEpoch(line, &f))) {
				stop = true
				break
			}
			seenTime, cut, words, closer = true, i+1, 0, fieldTime
		case fieldNumber:
			if seenLevel || words > 0 {
				stop = true
				break
			}
			if seenTime {
				cut, closer = i+1, fieldNumber
			}
		case fieldDash:
			if seenTime || seenLevel {
				cut, closer = i+1, fieldDash
			}
			// " - " after a level or a thread ends the header: "INFO [main] - message".
			stop = seenLevel || (i > 0 && fields[i-1].kind == fieldGroup)
			words = 0
		case fieldLevelWord:
			if seenLevel || words > 3 {
				stop = true
				break
			}
			seenLevel, level, cut, words, closer = true, f.level, i+1, 0, fieldLevelWord
		case fieldLogger:
			// A logger follows the header at once ("INFO dfs.DataNode: ...") or, after a time,
			// a host and a program name ("12:00:01 host syslogd 1.4.1: ..."); after a level or a
			// column of numbers and then words it is the message's ("ERROR cannot reach db-1:
			// ...", "1077804742 1 Component State Change: ...").
			if (seenTime || seenLevel) && words <= 3 && (words == 0 || (!seenLevel && closer == fieldTime)) {
				cut = i + 1
			}
			stop = true
		case fieldGroup:
			if !seenTime && !seenLevel {
				words++
				break
			}
			if words > 2 {
				stop = true
				break
			}
			cut, words, closer = i+1, 0, fieldGroup
		default:
			words++
			if words > 3 {
				stop = true
			}
		}
		if stop {
			break
		}
		if (f.padded || f.piped) && (seenTime || seenLevel) && f.kind != fieldTime {
			cut, words, closer = i+1, 0, f.kind
		}
	}
	if !seenTime && !seenLevel {
		return 0, LevelUnknown
	}
	if level == LevelUnknown {
		level = levelOf(fields[:cut])
	}
	return cut, level
}

// levelOf returns the level the first field stating one gives (a level word, or klog's
// I0102).
func levelOf(fields []headerField) Level {
	for i := range fields {
		if fields[i].level != LevelUnknown {
			return fields[i].level
		}
	}
	return LevelUnknown
}

// sameKind says whether a line's field fits a layout's field: times and numbers stand for
// each other (a pid column may hold a long number), and so do words and dashes (an empty
// column).
func sameKind(layout, line fieldKind) bool {
	if layout == line {
		return true
	}
	switch layout {
	case fieldTime, fieldNumber:
		return line == fieldTime || line == fieldNumber
	case fieldOther, fieldDash:
		return line == fieldOther || line == fieldDash
	}
	return false
}

// layout is a header layout: the kinds of its fields, and which of a line's fields could
// end a header (closing).
type layout struct {
	kinds   [maxHeaderFields]fieldKind
	closing uint16 // bit i: field i could be the last of a header
	n       int
}

// closes says whether a header may end with f: any field but a plain word, which may only
// when a column's padding or a '|' follows it.
func (f *headerField) closes() bool {
	return f.kind != fieldOther || f.padded || f.piped
}

// fits reports whether a line's fields begin with the layout's header.
func (l *layout) fits(fields []headerField) bool {
	if len(fields) < l.n {
		return false
	}
	for i := 0; i < l.n; i++ {
		if !sameKind(l.kinds[i], fields[i].kind) {
			return false
		}
	}
	return l.n == 0 || fields[l.n-1].closes()
}

// headerLearner finds the header layout of one stream from its first lines and cuts every
// line's header. Bounded: a few counters and headerCandidates layouts.
type headerLearner struct {
	fields []headerField
	// learning
	seen       int
	candidates [headerCandidates]struct {
		layout layout
		count  int
	}
	// learnt
	learnt      bool
	layout      layout
	fit, misfit int // lines of the current window that fit the layout, and that did not
}

// cut returns the length in bytes of line's header and the level it states.
func (h *headerLearner) cut(line string) (int, Level) {
	if h.learnt {
		// Only as many fields as the layout has: most lines fit it.
		if h.layout.n == 0 {
			h.fit++
			h.window()
			return 0, LevelUnknown
		}
		h.fields = splitFields(line, h.fields[:0], h.layout.n)
		if h.layout.fits(h.fields) {
			n := h.layout.n // window may start learning again: this line is still cut by the layout it fit
			h.fit++
			h.window()
			return h.fieldsEnd(n), levelOf(h.fields)
		}
		h.misfit++
		h.window()
	}
	h.fields = splitFields(line, h.fields[:0], maxHeaderFields)
	if len(h.fields) == 0 {
		return 0, LevelUnknown
	}
	n, level := lineCut(line, h.fields)
	if !h.learnt {
		// While learning, the layout most lines so far had wins over this line's own reading,
		// so that the lines before and after the layout is settled are cut alike.
		lead := h.learn(n)
		if lead.fits(h.fields) {
			n, level = lead.n, levelOf(h.fields[:lead.n])
		}
	}
	if n == 0 {
		return 0, level
	}
	return h.fieldsEnd(n), level
}

// fieldsEnd is the byte offset where the message starts after n header fields.
func (h *headerLearner) fieldsEnd(n int) int {
	f := h.fields[n-1]
	end := f.end
	if f.piped {
		end++
	}
	return end
}

// window starts learning again when most lines of a window of headerWindow lines did not
// fit the layout: the stream's writer changed its format.
func (h *headerLearner) window() {
	if h.fit+h.misfit < headerWindow {
		return
	}
	if h.misfit > h.fit {
		*h = headerLearner{fields: h.fields}
		return
	}
	h.fit, h.misfit = 0, 0
}

// learn counts the layout of a line cut after n fields and returns the layout leading so far.
func (h *headerLearner) learn(n int) layout {
	var l layout
	l.n = n
	for i := 0; i < n; i++ {
		l.kinds[i] = h.fields[i].kind
		if h.fields[i].closes() {
			l.closing |= 1 << i
		}
	}
	h.seen++
	placed := false
	for i := range h.candidates {
		c := &h.candidates[i]
		if c.count > 0 && c.layout == l {
			c.count++
			placed = true
			break
		}
	}
	if !placed {
		for i := range h.candidates {
			if c := &h.candidates[i]; c.count == 0 {
				c.layout, c.count = l, 1
				break
			}
		}
	}
	best := h.choose()
	if h.seen < headerLearnLines {
		return h.candidates[best].layout
	}
	h.learnt = true
	h.layout = h.candidates[best].layout
	return h.layout
}

// choose returns the index of the longest candidate layout that at least four in five of
// the lines with a header fit (a line fits every layout its own header begins with), or
// else of the one most lines fit: "time host program:" rather than "time host program:
// word:", which only the lines whose message starts with such a word have. A stream has no
// header unless at least half its lines have one; the lines without one (a banner, a stray
// continuation line) do not count against the layout the others share.
func (h *headerLearner) choose() int {
	best, bestFit := -1, -1
	longest, longestN := -1, -1
	headered := 0 // lines with a header of their own; the others vote for no layout
	for i := range h.candidates {
		if c := &h.candidates[i]; c.layout.n > 0 {
			headered += c.count
		}
	}
	for i := range h.candidates {
		c := &h.candidates[i]
		if c.count == 0 || c.layout.n == 0 || headered*2 < h.seen {
			continue
		}
		fit := 0
		for j := range h.candidates {
			d := &h.candidates[j]
			if d.count > 0 && c.layout.prefixOf(&d.layout) {
				fit += d.count
			}
		}
		if fit > bestFit {
			best, bestFit = i, fit
		}
		if fit*5 >= headered*4 && c.layout.n > longestN {
			longest, longestN = i, c.layout.n
		}
	}
	switch {
	case longest >= 0:
		return longest
	case best >= 0:
		return best
	}
	for i := range h.candidates { // no line had a header
		if h.candidates[i].count > 0 {
			return i
		}
	}
	return 0
}

// prefixOf reports whether the lines of layout m fit l: every field of l fits the field of
// m at the same position, and m's line could end a header where l does.
func (l *layout) prefixOf(m *layout) bool {
	if l.n > m.n {
		return false
	}
	for i := 0; i < l.n; i++ {
		if !sameKind(l.kinds[i], m.kinds[i]) {
			return false
		}
	}
	return l.n == 0 || m.closing&(1<<(l.n-1)) != 0
}
