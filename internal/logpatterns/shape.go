package logpatterns

// Shape hashing: every token carries the FNV-1a hash of its masked form (hash) and of its
// masked form with a key masked too (shape), so clustering compares integers, never text.

// isSegmentDelim separates the parts of a mixed token that are masked one by one, so
// "LOGIN(uid=0)" becomes "LOGIN(uid=<*>)" and "onExtend:1514038530000" "onExtend:<*>".
func isSegmentDelim(c byte) bool { return segmentDelims[c] }

var segmentDelims = func() (t [256]bool) {
	for _, c := range []byte("=:,;()[]{}|@#") {
		t[c] = true
	}
	return t
}()

// forEachSegment calls f for each delimiter run and each segment between delimiters of w,
// saying whether the segment is variable.
func forEachSegment(w string, f func(seg string, variable bool)) {
	for i := 0; i < len(w); {
		j, delim, variable := nextSegment(w, i)
		f(w[i:j], !delim && variable)
		i = j
	}
}

// nextSegment returns the end of the delimiter run or the segment starting at w[i], whether
// it is a delimiter run, and whether a segment is variable: it holds a digit, unless it is a
// short name of letters and '_' with one digit after a letter ("ssh2", "md5", "jk2_init",
// "eth0"; not "broadcast_0", "v2.app.rm").
func nextSegment(w string, i int) (end int, delim, variable bool) {
	j := i
	if isSegmentDelim(w[i]) {
		for j < len(w) && isSegmentDelim(w[j]) {
			j++
		}
		return j, true, false
	}
	digits, letters, others := 0, 0, 0
	for j < len(w) && !segmentDelims[w[j]] {
		switch c := byteClass[w[j]]; {
		case c&classDigit != 0:
			digits++
		case c&classLetter != 0:
			letters++
		case w[j] != '_':
			others++
		}
		j++
	}
	name := digits == 1 && letters >= 2 && others == 0 && j-i <= 8 && isLetter(w[i])
	return j, false, digits > 0 && !name
}

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

// keyShapeHash hashes a key-value token with both its key message[keyStart:keyEnd] and its
// value masked, the way maskedHash hashes it with the value masked.
func keyShapeHash(message string, t *Token, keyStart, keyEnd int) uint64 {
	h := fnvString(fnvOffset, message[t.Start:keyStart])
	h = fnvString(h, Wildcard)
	h = fnvString(h, message[keyEnd:t.VarStart])
	h = fnvString(h, Wildcard)
	return fnvString(h, message[t.VarEnd:t.End])
}

func maskedHash(message string, t *Token) uint64 {
	switch t.Kind {
	case KindWord:
		return fnvString(fnvOffset, message[t.Start:t.End])
	case KindMixed:
		h := fnvString(fnvOffset, message[t.Start:t.VarStart])
		h, _ = mixedHash(h, message[t.VarStart:t.VarEnd])
		return fnvString(h, message[t.VarEnd:t.End])
	}
	h := fnvString(fnvOffset, message[t.Start:t.VarStart])
	h = fnvString(h, variableText(message, t))
	return fnvString(h, message[t.VarEnd:t.End])
}

// mixedHash continues h with w masked segment by segment, as Token.Masked masks the variable
// span of a KindMixed token, and reports whether a segment was variable.
func mixedHash(h uint64, w string) (uint64, bool) {
	some := false
	for i := 0; i < len(w); {
		j, delim, variable := nextSegment(w, i)
		if !delim && variable {
			h = fnvString(h, Wildcard)
			some = true
		} else {
			h = fnvString(h, w[i:j])
		}
		i = j
	}
	return h, some
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
	h, _ = mixedHash(h, message[colon:t.VarEnd])
	return fnvString(h, message[t.VarEnd:t.End])
}
