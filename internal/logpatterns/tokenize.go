package logpatterns

import "strings"

// Kind says what a token was recognised as. Every kind except KindWord is a variable: its
// variable part is replaced by "<*>" in templates.
type Kind uint8

// The token kinds, with an example of each.
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
	return message[t.Start:t.VarStart] + variableText(message, &t) + message[t.VarEnd:t.End]
}

// hostPort is the masked form of an address with a port: host and port are two variables.
const hostPort = Wildcard + ":" + Wildcard

// variableText is what the variable span of a token that is not a word or a mixed word
// becomes in a template: "<*>", or "<*>:<*>" for an IPv4 address with a port.
func variableText(message string, t *Token) string {
	if t.Kind == KindIP && indexByteRange(message, t.VarStart, t.VarEnd, ':') > 0 && indexByteRange(message, t.VarStart, t.VarEnd, '.') > 0 {
		return hostPort
	}
	return Wildcard
}

// Wildcard stands for a variable part in templates.
const Wildcard = "<*>"

func isSpace(c byte) bool { return byteClass[c]&classSpace != 0 }

const (
	classSpace   = 1 << iota
	classSpecial // a byte that can make a word variable: digits, = : / \ ~ and quotes
	classDigit   // 0-9
	classPlain   // any other byte: punctuation, UTF-8
	classSymbol  // = : / \ ~ and quotes
	classLetter  // a-z, A-Z
)

var byteClass = func() (t [256]uint8) {
	for c := range t {
		t[c] = classPlain
	}
	for _, c := range []byte(" \t\n\r\v\f") {
		t[c] = classSpace
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = classSpecial | classDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = classLetter, classLetter
	}
	for _, c := range []byte("=:/\\\"'~") {
		t[c] = classSpecial | classSymbol
	}
	return t
}()

// Tokenize splits message on whitespace and classifies every word. It appends to dst and
// returns it, so a caller reusing dst[:0] tokenizes without allocating.
func Tokenize(message string, dst []Token) []Token {
	n := len(message)
	i := 0
	// afterMessageKey: the last token was a JSON key naming the message ("msg":): its quoted
	// value is words, the event itself, not one variable.
	afterMessageKey := false
	for i < n {
		for i < n && isSpace(message[i]) {
			i++
		}
		if i >= n {
			break
		}
		start := i
		inMessage := afterMessageKey
		afterMessageKey = false
		if c := message[i]; (c == '"' || c == '\'') && !inMessage {
			if end, ok := quotedEnd(message, i); ok {
				t := Token{Start: start, End: end, VarStart: start + 1, VarEnd: end - 1, Kind: KindQuoted}
				// Trailing punctuation after the closing quote stays constant.
				for t.VarEnd > t.VarStart && message[t.VarEnd] != c {
					t.VarEnd--
				}
				if t.VarEnd+1 < end && message[t.VarEnd+1] == ':' {
					// A JSON key ("level":) is a constant.
					afterMessageKey = messageKey(message[t.VarStart:t.VarEnd])
					t = Token{Start: start, End: end, VarStart: start, VarEnd: start}
					t.hash = fnvString(fnvOffset, message[start:end])
					t.shape = t.hash
					dst = append(dst, t)
					i = end
					continue
				}
				// A quoted request keeps its verb: "GET <*>", "DELETE <*>".
				if h := verbEnd(message, t.VarStart, t.VarEnd); h > 0 {
					t.VarStart = h + 1
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
		if class&(classLetter|classSymbol) == 0 && class&classDigit != 0 {
			// Digits in punctuation, the commonest variable: "42", "(42)", "42,".
			if t, ok := numberToken(message, start, i); ok {
				dst = append(dst, t)
				continue
			}
		}
		if class&classSpecial == 0 && !maybeHexOrDate(message[start:i]) {
			t = Token{Start: start, End: i, VarStart: start, VarEnd: start, hash: h, shape: h}
			dst = append(dst, t)
			continue
		}
		var keyStart, keyEnd int
		t, keyStart, keyEnd = classifyWord(message, start, i)
		// key="quoted value with spaces" is one token, unless the key names the message
		// (msg="slow query"): its words are the event, tokens of their own.
		eq := -1
		if class&classSymbol != 0 {
			eq = indexByteRange(message, start, i, '=')
		}
		quotedValue := eq >= 0 && eq+1 < i && message[eq+1] == '"'
		if quotedValue && messageKey(message[start:eq]) {
			t = Token{Start: start, End: i, VarStart: start, VarEnd: start}
			keyStart, keyEnd = 0, 0
		} else if (t.Kind == KindWord || t.Kind == KindKeyValue) && i < n && quotedValue {
			if isKey(message[start:eq]) {
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
		if t.Kind == KindMixed {
			h := fnvString(fnvOffset, message[t.Start:t.VarStart])
			h, variable := mixedHash(h, message[t.VarStart:t.VarEnd])
			if variable {
				t.hash = fnvString(h, message[t.VarEnd:t.End])
			} else { // a name: ssh2, jk2_init(); its hash is the word's
				t = Token{Start: t.Start, End: t.End, VarStart: t.Start, VarEnd: t.Start}
				keyStart, keyEnd = 0, 0
				t.hash = h
			}
		} else {
			t.hash = maskedHash(message, &t)
		}
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

// verbEnd returns the end of the first word of message[from:to] when it is an upper-case
// verb of two to ten letters followed by a space and more text (a protocol's command:
// "GET /index.html HTTP/1.1", "SELECT * FROM t"), else 0.
func verbEnd(message string, from, to int) int {
	i := from
	for i < to && i-from <= 10 && message[i] >= 'A' && message[i] <= 'Z' {
		i++
	}
	if i-from < 2 || i-from > 10 || i+1 >= to || message[i] != ' ' {
		return 0
	}
	return i
}

// numberToken returns message[start:end] as a KindNumber token when it is digits inside
// leading and trailing punctuation, as classifyWord would classify it, without its passes.
func numberToken(message string, start, end int) (Token, bool) {
	ps, pe := start, end
	for ps < pe && isLeadingPunct(message[ps]) {
		ps++
	}
	for pe > ps && isTrailingPunct(message[pe-1]) {
		pe--
	}
	if ps == pe {
		return Token{}, false
	}
	for k := ps; k < pe; k++ {
		if !isDigit(message[k]) {
			return Token{}, false
		}
	}
	t := Token{Start: start, End: end, VarStart: ps, VarEnd: pe, Kind: KindNumber}
	if ps == start && pe == end {
		t.hash = wildcardHash
	} else {
		t.hash = maskedHash(message, &t)
	}
	t.shape = t.hash
	return t, true
}

// messageKey reports whether a JSON or logfmt key names the message itself.
func messageKey(k string) bool {
	switch k {
	case "msg", "message", "MESSAGE", "Message", "event", "error", "err":
		return true
	}
	return false
}
