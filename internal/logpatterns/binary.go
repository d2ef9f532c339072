package logpatterns

import "unicode/utf8"

// binaryShare is the share of a line's characters that must be non-text for the line to be
// binary. Text in any encoding-aware language, ANSI-coloured lines and the odd Latin-1 byte
// stay well below it; random bytes reach about half (an eighth are control characters, and
// most bytes at or above 0x80 do not form valid UTF-8).
const binaryShare = 0.3

// Binary reports whether a line is binary data rather than text: more than 30% of its
// characters are control characters other than tab (C0, DEL, C1), bytes that are not valid
// UTF-8, or U+FFFD (what a runtime that re-encodes output, such as dockerd's json-file driver,
// puts in place of invalid bytes). Binary lines are no log messages: they are never a
// continuation of a multi-line message (Joiner) and internal/logs counts and skips them.
func Binary(line string) bool {
	ascii := true
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return false // printable ASCII: the common case, one pass without decoding
	}
	var chars, bad int
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		i += size
		chars++
		switch {
		case r == utf8.RuneError, // invalid byte (size 1) or U+FFFD itself
			r < 0x20 && r != '\t',
			r >= 0x7f && r < 0xa0:
			bad++
		}
	}
	return float64(bad) > binaryShare*float64(chars)
}
