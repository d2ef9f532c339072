package logpatterns

// Word classes: what a whitespace-separated word is (number, hex, UUID, IP, path, URL,
// duration, date, key=value, ...), decided on the word's bytes alone.

// maybeHexOrDate reports whether a word without special bytes could still be variable: a
// long run of hex letters, a month or weekday name, a boolean or null.
func maybeHexOrDate(w string) bool {
	core := trimPunct(w)
	return len(core) >= 12 || isDateName(core) || isBoolOrNull(core)
}

// trimPunct returns w without the punctuation around a value: leading brackets and quotes,
// trailing brackets, quotes and sentence punctuation.
func trimPunct(w string) string {
	ps, pe := 0, len(w)
	for ps < pe && isLeadingPunct(w[ps]) {
		ps++
	}
	for pe > ps && isTrailingPunct(w[pe-1]) {
		pe--
	}
	return w[ps:pe]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

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
		if k == KindPath && isIPv4(message[ps+1:pe]) {
			t.Kind = KindIP // "/10.0.0.1:50010", Java's InetSocketAddress
		}
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
