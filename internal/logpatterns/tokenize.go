package logpatterns

import "strings"

// Kind says what a token was recognised as. Every kind except KindWord is a variable: its
// variable part is replaced by "<*>" in templates.
type Kind uint8

const (
	KindWord     Kind = iota // a constant word, kept verbatim in templates
	KindNumber               // 42, -1.5, 3e-9
	KindHex                  // 0x1f, deadbeef01, a64f992
	KindUUID                 // 123e4567-e89b-12d3-a456-426614174000
	KindIP                   // 10.0.0.1, 10.0.0.1:8080, 10.0.0.0/8, fe80::1
	KindPath                 // /var/log/syslog, C:\Windows\x.dll
	KindURL                  // https://example.com/a?b=1
	KindDuration             // 150ms, 1.5s, 1h30m
	KindQuoted               // "any text" or 'any text'; the quotes are kept
	KindKeyValue             // key=value with a variable value; the key is kept
	KindMixed                // any other token that contains a digit: id-42, blk_123
	KindBool                 // true, false, null, nil in any case
	KindDate                 // a timestamp or a part of one: 03:55:21, 2024-01-02T03:04:05Z, Jul, Sunday
)

var kindNames = [...]string{"word", "number", "hex", "uuid", "ip", "path", "url", "duration", "quoted", "keyvalue", "mixed", "bool", "date"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Token is one whitespace-separated word of a message. Offsets index the message it came
// from, so tokenizing allocates nothing. A variable token has one variable span
// [VarStart,VarEnd) inside [Start,End): punctuation around a value ("(HWID=1973)") stays
// constant so templates stay readable.
type Token struct {
	Start, End       int
	VarStart, VarEnd int
	Kind             Kind
	hash             uint64 // FNV-1a of the masked form, so comparing tokens is comparing integers
	// shape is the hash of the masked form with the key of a key=value or key:value token
	// masked too ("<*>:<*>" for "libgc1:amd64"); for every other token it equals hash. The
	// extractor compares shapes where the keys differ, so a key that varies between
	// messages (a package, a metric name) does not keep them apart.
	shape uint64
}

// IsVariable reports whether the token holds a variable part.
func (t Token) IsVariable() bool { return t.Kind != KindWord }

// Masked returns the token as it appears in a template. It allocates; the hot path compares
// hashes instead.
func (t Token) Masked(message string) string {
	switch t.Kind {
	case KindWord:
		return message[t.Start:t.End]
	case KindMixed:
		var b strings.Builder
		b.WriteString(message[t.Start:t.VarStart])
		forEachSegment(message[t.VarStart:t.VarEnd], func(seg string, variable bool) {
			if variable {
				b.WriteString(Wildcard)
			} else {
				b.WriteString(seg)
			}
		})
		b.WriteString(message[t.VarEnd:t.End])
		return b.String()
	}
	return message[t.Start:t.VarStart] + Wildcard + message[t.VarEnd:t.End]
}

// isSegmentDelim separates the parts of a mixed token that are masked one by one, so
// "LOGIN(uid=0)" becomes "LOGIN(uid=<*>)" and "onExtend:1514038530000" "onExtend:<*>".
func isSegmentDelim(c byte) bool {
	switch c {
	case '=', ':', ',', ';', '(', ')', '[', ']', '{', '}', '|', '@':
		return true
	}
	return false
}

// forEachSegment calls f for each delimiter run and each segment between delimiters of w;
// a segment holding a digit is variable.
func forEachSegment(w string, f func(seg string, variable bool)) {
	for i := 0; i < len(w); {
		j := i
		if isSegmentDelim(w[i]) {
			for j < len(w) && isSegmentDelim(w[j]) {
				j++
			}
			f(w[i:j], false)
			i = j
			continue
		}
		digit := false
		for j < len(w) && !isSegmentDelim(w[j]) {
			if isDigit(w[j]) {
				digit = true
			}
			j++
		}
		f(w[i:j], digit)
		i = j
	}
}

// Wildcard stands for a variable part in templates.
const Wildcard = "<*>"

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

var wildcardHash = fnvString(fnvOffset, Wildcard)

func isSpace(c byte) bool { return byteClass[c]&classSpace != 0 }

const (
	classSpace   = 1 << iota
	classSpecial // a byte that can make a word variable: digits, = : / \ ~ and quotes
)

var byteClass = func() (t [256]uint8) {
	for _, c := range []byte(" \t\n\r\v\f") {
		t[c] = classSpace
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = classSpecial
	}
	for _, c := range []byte("=:/\\\"'~") {
		t[c] = classSpecial
	}
	return t
}()

// maybeHexOrDate reports whether a word without special bytes could still be variable: a
// long run of hex letters, a month or weekday name, a boolean or null.
func maybeHexOrDate(w string) bool {
	ps, pe := 0, len(w)
	for ps < pe && isLeadingPunct(w[ps]) {
		ps++
	}
	for pe > ps && isTrailingPunct(w[pe-1]) {
		pe--
	}
	return pe-ps >= 12 || isDateName(w[ps:pe]) || isBoolOrNull(w[ps:pe])
}
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// Tokenize splits message on whitespace and classifies every word. It appends to dst and
// returns it, so a caller reusing dst[:0] tokenizes without allocating.
func Tokenize(message string, dst []Token) []Token {
	n := len(message)
	i := 0
	for i < n {
		for i < n && isSpace(message[i]) {
			i++
		}
		if i >= n {
			break
		}
		start := i
		if c := message[i]; c == '"' || c == '\'' {
			if end, ok := quotedEnd(message, i); ok {
				t := Token{Start: start, End: end, VarStart: start + 1, VarEnd: end - 1, Kind: KindQuoted}
				// Trailing punctuation after the closing quote stays constant.
				for t.VarEnd > t.VarStart && message[t.VarEnd] != c {
					t.VarEnd--
				}
				t.hash = maskedHash(message, &t)
				t.shape = t.hash
				dst = append(dst, t)
				i = end
				continue
			}
		}
		// One pass finds the end of the word, hashes it and notes which bytes it holds, so
		// plain words (most of a log) skip classification.
		h := uint64(fnvOffset)
		var class uint8
		for i < n {
			c := message[i]
			cc := byteClass[c]
			if cc&classSpace != 0 {
				break
			}
			class |= cc
			h = (h ^ uint64(c)) * fnvPrime
			i++
		}
		var t Token
		if class&classSpecial == 0 && !maybeHexOrDate(message[start:i]) {
			t = Token{Start: start, End: i, VarStart: start, VarEnd: start, hash: h, shape: h}
			dst = append(dst, t)
			continue
		}
		var keyStart, keyEnd int
		t, keyStart, keyEnd = classifyWord(message, start, i)
		// key="quoted value with spaces" is one token.
		if (t.Kind == KindWord || t.Kind == KindKeyValue) && i < n {
			if eq := indexByteRange(message, start, i, '='); eq >= 0 && eq+1 < i && message[eq+1] == '"' && isKey(message[start:eq]) {
				if end, ok := quotedEnd(message, eq+1); ok && end > i {
					t = Token{Start: start, End: end, VarStart: eq + 2, VarEnd: end - 1, Kind: KindKeyValue}
					for t.VarEnd > t.VarStart && message[t.VarEnd] != '"' {
						t.VarEnd--
					}
					keyStart, keyEnd = 0, 0
					i = end
				}
			}
		}
		t.hash = maskedHash(message, &t)
		t.shape = t.hash
		switch {
		case keyEnd > keyStart:
			t.shape = keyShapeHash(message, &t, keyStart, keyEnd)
		case t.Kind == KindWord || t.Kind == KindMixed:
			t.shape = nameShapeHash(message, &t, t.hash)
		}
		dst = append(dst, t)
	}
	return dst
}

// keyShapeHash hashes a key-value token with both its key message[keyStart:keyEnd] and its
// value masked, the way maskedHash hashes it with the value masked.
func keyShapeHash(message string, t *Token, keyStart, keyEnd int) uint64 {
	h := fnvString(fnvOffset, message[t.Start:keyStart])
	h = fnvString(h, Wildcard)
	h = fnvString(h, message[keyEnd:t.VarStart])
	h = fnvString(h, Wildcard)
	return fnvString(h, message[t.VarEnd:t.End])
}

func indexByteRange(s string, from, to int, c byte) int {
	for i := from; i < to; i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// quotedEnd finds the end (exclusive, including trailing punctuation) of a quoted string
// opening at s[open]. A quote only closes when followed by whitespace, punctuation or the
// end, so apostrophes inside words ("don't") do not close it.
func quotedEnd(s string, open int) (int, bool) {
	q := s[open]
	for i := open + 1; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			i++
			continue
		}
		if c != q {
			continue
		}
		j := i + 1
		for j < len(s) && isTrailingPunct(s[j]) {
			j++
		}
		if j == len(s) || isSpace(s[j]) {
			return j, true
		}
	}
	return 0, false
}

func maskedHash(message string, t *Token) uint64 {
	switch t.Kind {
	case KindWord:
		return fnvString(fnvOffset, message[t.Start:t.End])
	case KindMixed:
		h := fnvString(fnvOffset, message[t.Start:t.VarStart])
		h = mixedHash(h, message[t.VarStart:t.VarEnd])
		return fnvString(h, message[t.VarEnd:t.End])
	}
	h := fnvString(fnvOffset, message[t.Start:t.VarStart])
	h = fnvString(h, Wildcard)
	return fnvString(h, message[t.VarEnd:t.End])
}

// mixedHash continues h with w masked segment by segment, as Token.Masked masks the variable
// span of a KindMixed token.
func mixedHash(h uint64, w string) uint64 {
	for i := 0; i < len(w); {
		j := i
		if isSegmentDelim(w[i]) {
			for j < len(w) && isSegmentDelim(w[j]) {
				j++
			}
			h = fnvString(h, w[i:j])
			i = j
			continue
		}
		digit := false
		for j < len(w) && !isSegmentDelim(w[j]) {
			if isDigit(w[j]) {
				digit = true
			}
			j++
		}
		if digit {
			h = fnvString(h, Wildcard)
		} else {
			h = fnvString(h, w[i:j])
		}
		i = j
	}
	return h
}

// nameShapeHash returns the shape of a constant or mixed word that reads name:rest, such as
// "libc-bin:amd64" or "x11-common:all" (dpkg's package:architecture), which colonKey does not
// take as a key because of the '-' or '.': the name is masked, the rest hashed as hash
// hashed it. Any other word's shape is its hash.
func nameShapeHash(message string, t *Token, hash uint64) uint64 {
	ps, pe := t.Start, t.End
	for ps < pe && isLeadingPunct(message[ps]) {
		ps++
	}
	for pe > ps && isTrailingPunct(message[pe-1]) {
		pe--
	}
	if pe-ps < 3 || !isLetter(message[ps]) || (t.Kind == KindMixed && t.VarStart != ps) {
		return hash
	}
	colon := -1
	for i := ps + 1; i < pe; i++ {
		c := message[i]
		if c == ':' {
			colon = i
			break
		}
		if !isLetter(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '+' {
			return hash
		}
	}
	if colon < 0 || colon+1 >= pe {
		return hash
	}
	h := fnvString(fnvOffset, message[t.Start:ps])
	h = fnvString(h, Wildcard)
	if t.Kind == KindWord {
		return fnvString(h, message[colon:t.End])
	}
	h = mixedHash(h, message[colon:t.VarEnd])
	return fnvString(h, message[t.VarEnd:t.End])
}

func isLeadingPunct(c byte) bool {
	return c == '(' || c == '[' || c == '{' || c == '<' || c == '"' || c == '\''
}

func isTrailingPunct(c byte) bool {
	switch c {
	case ')', ']', '}', '>', ',', ';', ':', '.', '!', '?', '"', '\'':
		return true
	}
	return false
}

func isKey(k string) bool {
	if k == "" {
		return false
	}
	letter := false
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case isLetter(c):
			letter = true
		case isDigit(c) || c == '_' || c == '-' || c == '.':
		default:
			return false
		}
	}
	return letter
}

// classifyWord classifies message[start:end], a word without whitespace. For a
// KindKeyValue token it also returns the key's span.
func classifyWord(message string, start, end int) (t Token, keyStart, keyEnd int) {
	t = Token{Start: start, End: end, VarStart: start, VarEnd: start}
	ps, pe := start, end
	for ps < pe && isLeadingPunct(message[ps]) {
		ps++
	}
	for pe > ps && isTrailingPunct(message[pe-1]) {
		pe--
	}
	if ps == pe {
		return t, 0, 0
	}
	// key=value and key:value: the key is constant, the value is classified on its own; a
	// quoted value is always variable.
	if eq := indexKeySep(message, ps, pe); eq > ps && isKey(message[ps:eq]) && (message[eq] == '=' || colonKey(message[ps:pe], eq-ps)) {
		vs := eq + 1
		quoted := vs < pe && (message[vs] == '"' || message[vs] == '\'')
		for vs < pe && isLeadingPunct(message[vs]) {
			vs++
		}
		if vs < pe {
			if quoted || classifyCore(message[vs:pe]) != KindWord {
				t.Kind, t.VarStart, t.VarEnd = KindKeyValue, vs, pe
				if message[eq] == ':' {
					return t, ps, eq
				}
				return t, 0, 0
			}
		}
		if message[eq] == '=' || vs == pe {
			return t, 0, 0
		}
	}
	if k := classifyCore(message[ps:pe]); k != KindWord {
		t.Kind, t.VarStart, t.VarEnd = k, ps, pe
	}
	return t, 0, 0
}

// classifyCore classifies a word stripped of surrounding punctuation.
func classifyCore(w string) Kind {
	n := len(w)
	if n == 0 {
		return KindWord
	}
	if hasURLScheme(w) {
		return KindURL
	}
	if isPath(w) {
		return KindPath
	}
	digits, hexLetters, others := 0, 0, 0
	for i := 0; i < n; i++ {
		c := w[i]
		switch {
		case isDigit(c):
			digits++
		case isHexDigit(c):
			hexLetters++
		default:
			others++
		}
	}
	if digits == 0 {
		// Long runs of hex letters are ids too (deadbeefcafe); short ones are words (face).
		if others == 0 && hexLetters >= 12 {
			return KindHex
		}
		if isIPv6(w) {
			return KindIP
		}
		if isDateName(w) {
			return KindDate
		}
		if isBoolOrNull(w) {
			return KindBool
		}
		return KindWord
	}
	switch {
	case isNumber(w):
		return KindNumber
	case isUUID(w):
		return KindUUID
	case isIPv4(w) || isIPv6(w):
		return KindIP
	case isDuration(w):
		return KindDuration
	case isTimestamp(w):
		return KindDate
	case isHex(w, others):
		return KindHex
	}
	return KindMixed
}

func hasURLScheme(w string) bool {
	for i := 0; i+2 < len(w); i++ {
		c := w[i]
		if c == ':' {
			return i > 0 && w[i+1] == '/' && w[i+2] == '/'
		}
		if !isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return false
}

// isPath accepts absolute Unix paths with at least one letter or digit after the first
// slash, home-relative paths and Windows drive paths.
func isPath(w string) bool {
	switch {
	case len(w) >= 2 && w[0] == '/' && w[1] != '/':
		for i := 1; i < len(w); i++ {
			if isLetter(w[i]) || isDigit(w[i]) {
				return true
			}
		}
		return false
	case len(w) >= 3 && w[0] == '~' && w[1] == '/':
		return true
	case len(w) >= 3 && isLetter(w[0]) && w[1] == ':' && (w[2] == '\\' || w[2] == '/'):
		return true
	}
	return false
}

func isNumber(w string) bool {
	i := 0
	if w[0] == '-' || w[0] == '+' {
		i++
	}
	d := 0
	for i < len(w) && isDigit(w[i]) {
		i++
		d++
	}
	if i < len(w) && w[i] == '.' {
		i++
		for i < len(w) && isDigit(w[i]) {
			i++
			d++
		}
	}
	if d == 0 {
		return false
	}
	if i < len(w) && (w[i] == 'e' || w[i] == 'E') {
		i++
		if i < len(w) && (w[i] == '-' || w[i] == '+') {
			i++
		}
		e := 0
		for i < len(w) && isDigit(w[i]) {
			i++
			e++
		}
		if e == 0 {
			return false
		}
	}
	return i == len(w)
}

func isUUID(w string) bool {
	if len(w) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if w[i] != '-' {
				return false
			}
		default:
			if !isHexDigit(w[i]) {
				return false
			}
		}
	}
	return true
}

// isIPv4 accepts a.b.c.d with an optional :port or /prefix.
func isIPv4(w string) bool {
	i := 0
	for part := 0; part < 4; part++ {
		if part > 0 {
			if i >= len(w) || w[i] != '.' {
				return false
			}
			i++
		}
		d := 0
		for i < len(w) && isDigit(w[i]) && d < 3 {
			i++
			d++
		}
		if d == 0 {
			return false
		}
	}
	if i == len(w) {
		return true
	}
	if w[i] != ':' && w[i] != '/' {
		return false
	}
	i++
	if i == len(w) {
		return false
	}
	for ; i < len(w); i++ {
		if !isDigit(w[i]) {
			return false
		}
	}
	return true
}

// isIPv6 accepts hex groups separated by colons with at least two colons and a "::" or
// seven colons, optionally ending in a dotted IPv4 part.
func isIPv6(w string) bool {
	if len(w) < 2 || len(w) > 45 {
		return false
	}
	colons, double, group := 0, false, 0
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == ':':
			colons++
			if i > 0 && w[i-1] == ':' {
				if double {
					return false
				}
				double = true
			}
			group = 0
		case isHexDigit(c):
			group++
			if group > 4 {
				return false
			}
		case c == '.':
			return colons >= 2 && isIPv4(w[i-group:])
		default:
			return false
		}
	}
	return colons >= 2 && (double || colons == 7)
}

var durationUnits = [...]string{"ns", "us", "µs", "ms", "s", "m", "h", "d"}

// isDuration accepts one or more number+unit pairs: 150ms, 1.5s, 1h30m0s.
func isDuration(w string) bool {
	i := 0
	for i < len(w) {
		d := 0
		for i < len(w) && (isDigit(w[i]) || (w[i] == '.' && d > 0)) {
			i++
			d++
		}
		if d == 0 {
			return false
		}
		unit := false
		for _, u := range durationUnits {
			if len(w)-i >= len(u) && w[i:i+len(u)] == u {
				// "m" must not swallow the "m" of "ms"; units are ordered longest first where it matters.
				i += len(u)
				unit = true
				break
			}
		}
		if !unit {
			return false
		}
	}
	return true
}

func isHex(w string, nonHex int) bool {
	if len(w) > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X') {
		for i := 2; i < len(w); i++ {
			if !isHexDigit(w[i]) {
				return false
			}
		}
		return true
	}
	// Bare hex needs a letter, or it would be a number, and some length, or "1a" is hex.
	if nonHex != 0 || len(w) < 6 {
		return false
	}
	for i := 0; i < len(w); i++ {
		if !isDigit(w[i]) {
			return true
		}
	}
	return false
}

// isDateName accepts capitalised English month and weekday names, full or in three letters:
// they are the non-numeric parts of timestamps ("at Sun Jul 10 03:55:21 2005").
func isDateName(w string) bool {
	if len(w) < 3 || len(w) > 9 || w[0] < 'A' || w[0] > 'Z' {
		return false
	}
	switch w {
	case "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
		"January", "February", "March", "April", "June", "July", "August", "September", "October", "November", "December",
		"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
		"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday":
		return true
	}
	return false
}

// isTimestamp accepts digit groups joined by the separators of dates and times, with the ISO
// 8601 T and Z: 03:55:21, 2024-01-02, 17/06/09, 2024-01-02T03:04:05.123Z, 12:00:00,123.
func isTimestamp(w string) bool {
	sep := false
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case isDigit(c):
		case c == ':' || c == '-' || c == '/':
			sep = true
		case c == '.' || c == ',' || c == '+' || c == 'T' || c == 'Z':
		default:
			return false
		}
	}
	return sep
}

// indexKeySep returns the index of the first '=' in message[from:to], or else of the first
// ':' when the word has no '=' (key:value), or -1.
func indexKeySep(message string, from, to int) int {
	colon := -1
	for i := from; i < to; i++ {
		switch message[i] {
		case '=':
			return i
		case ':':
			if colon < 0 {
				colon = i
			}
		}
	}
	return colon
}

func isBoolOrNull(w string) bool {
	switch len(w) {
	case 3:
		return equalFold(w, "nil")
	case 4:
		return equalFold(w, "true") || equalFold(w, "null")
	case 5:
		return equalFold(w, "false")
	}
	return false
}

// colonKey reports whether w splits at its colon colon into a key and a value: the key is an
// identifier and the whole word is not a value of its own (an IPv6 address, a time).
func colonKey(w string, colon int) bool {
	if !isLetter(w[0]) {
		return false
	}
	for i := 1; i < colon; i++ {
		if c := w[i]; !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	k := classifyCore(w)
	return k == KindWord || k == KindMixed
}
