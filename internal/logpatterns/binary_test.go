package logpatterns

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestBinary(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"", false},
		{"plain ascii log line", false},
		{"\tat com.example.App.main(App.java:10)", false},
		{"\x1b[32mINFO\x1b[0m server started on :8080", false}, // ANSI colours
		{"Größe überschritten: 東京 サーバー", false},                // UTF-8 text
		{"caf\xe9 au lait", false},                             // one Latin-1 byte
		{"\x00\x01\x02\x03abc", true},
		{"\xff\xfe\xfd\xfc\xfb ok", true},
		{"\ufffd\ufffd\ufffd\ufffdab", true}, // invalid bytes as dockerd's json-file writes them
		{"\x01", true},
		{"\x85\x86 \u0080\u0081", true}, // C1 controls
	}
	for _, tt := range tests {
		if got := Binary(tt.line); got != tt.want {
			t.Errorf("Binary(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

// Random bytes, as a process writing binary data to stdout produces them: every line of them
// is binary, and none is joined to another message whatever byte it starts with (before, a
// line starting with a space or tab was a continuation).
func TestJoinerNeverJoinsBinaryLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	j := NewJoiner(DefaultJoinerConfig())
	var lines []string
	for i := 0; i < 2000; i++ {
		b := make([]byte, 64+rng.IntN(200))
		for k := range b {
			b[k] = byte(rng.UintN(256))
			if b[k] == '\n' {
				b[k] = 'x'
			}
		}
		if i%3 == 0 {
			b[0] = " \t"[i%2] // what looks like an indented continuation
		}
		lines = append(lines, string(b))
	}
	messages := 0
	j.Add("ERROR something failed", t0)
	for _, l := range lines {
		if !Binary(l) {
			t.Fatalf("random line %q is not binary", l)
		}
		if m, ok := j.Add(l, t0); ok {
			messages++
			if m.Lines != 1 {
				t.Fatalf("a message of %d lines: %q", m.Lines, m.Text)
			}
		}
	}
	if messages != len(lines) {
		t.Fatalf("%d messages for %d lines", messages, len(lines))
	}
	// A real continuation is still one.
	j.Add("java.lang.IllegalStateException: boom", t0)
	if _, ok := j.Add("\tat com.example.App.main(App.java:10)", t0); ok {
		t.Fatal("a stack frame ended the message")
	}
}

func FuzzBinary(f *testing.F) {
	for _, s := range []string{"", "ok", "\x00\xff", "\ufffd", "\x1b[0m", strings.Repeat("\x01a", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Binary(s)
		if s == "" && got {
			t.Fatal("the empty line is binary")
		}
		printable := true
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 && c != '\t' || c >= 0x7f {
				printable = false
			}
		}
		if printable && got {
			t.Fatalf("printable ASCII %q is binary", s)
		}
	})
}
