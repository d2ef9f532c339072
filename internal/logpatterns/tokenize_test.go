package logpatterns

import (
	"strings"
	"testing"
)

// maskedMessage is the template of a single message: its masked tokens joined by spaces.
func maskedMessage(message string) string {
	toks := Tokenize(message, nil)
	parts := make([]string, len(toks))
	for i, t := range toks {
		parts[i] = t.Masked(message)
	}
	return strings.Join(parts, " ")
}

func TestTokenizeRules(t *testing.T) {
	tests := []struct {
		name, message, want string
		kind                Kind // kind of the second token
	}{
		{"integer", "took 42 tries", "took <*> tries", KindNumber},
		{"negative float", "delta -1.5e-3 units", "delta <*> units", KindNumber},
		{"hex 0x", "addr 0x7ffd1a2b mapped", "addr <*> mapped", KindHex},
		{"bare hex", "commit a64f992 pushed", "commit <*> pushed", KindHex},
		{"long hex letters", "id deadbeefcafe seen", "id <*> seen", KindHex},
		{"uuid", "pod 123e4567-e89b-12d3-a456-426614174000 ready", "pod <*> ready", KindUUID},
		{"ipv4", "from 10.1.2.3 accepted", "from <*> accepted", KindIP},
		{"ipv4 port", "dial 127.0.0.1:8080 failed", "dial <*>:<*> failed", KindIP},
		{"slash ipv4 port", "src: /10.250.19.102:54106 x", "src: <*>:<*> x", KindIP},
		{"name with one digit", "proto ssh2 jk2_init() eth0", "proto ssh2 jk2_init() eth0", KindWord},
		{"segments with digits", "block broadcast_0 v2.app.rm", "block <*> <*>", KindMixed},
		{"hash-separated", "steps 1514038440000##7007##548365", "steps <*>##<*>##<*>", KindMixed},
		{"ipv4 cidr", "route 10.0.0.0/8 added", "route <*> added", KindIP},
		{"ipv6", "peer fe80::1ff:fe23:4567:890a up", "peer <*> up", KindIP},
		{"ipv6 loopback", "bind ::1 ok", "bind <*> ok", KindIP},
		{"bracketed ip", "host [173.234.31.186] failed", "host [<*>] failed", KindIP},
		{"unix path", "open /etc/httpd/conf/workers2.properties failed", "open <*> failed", KindPath},
		{"windows path", `load C:\Windows\winsxs\cbscore.dll done`, "load <*> done", KindPath},
		{"url", "GET https://example.com/a?b=1 200", "GET <*> <*>", KindURL},
		{"duration ms", "took 150ms total", "took <*> total", KindDuration},
		{"duration compound", "uptime 1h30m5s now", "uptime <*> now", KindDuration},
		{"double quoted", `user "John Smith" logged in`, `user "<*>" logged in`, KindQuoted},
		{"single quoted", `service 'sparkDriver' started`, `service '<*>' started`, KindQuoted},
		{"quoted with punctuation", `name "a b", next`, `name "<*>", next`, KindQuoted},
		{"key value number", "request id=42 done", "request id=<*> done", KindKeyValue},
		{"key value ip", "auth rhost=218.188.2.4 ok", "auth rhost=<*> ok", KindKeyValue},
		{"key value quoted", `msg text="hello world" sent`, `msg text="<*>" sent`, KindKeyValue},
		{"key value word stays", "tty tty=NODEVssh x", "tty tty=NODEVssh x", KindWord},
		{"key value in parens", "by (uid=0) now", "by (uid=<*>) now", KindKeyValue},
		{"mixed segments", "by LOGIN(uid=0) now", "by LOGIN(uid=<*>) now", KindMixed},
		{"key colon value", "x onExtend:1514038530000 y", "x onExtend:<*> y", KindKeyValue},
		{"key colon bool", "x ret:false y", "x ret:<*> y", KindKeyValue},
		{"bool", "is true now", "is <*> now", KindBool},
		{"quoted value one word", `lock tag="AudioMix", x`, `lock tag="<*>", x`, KindKeyValue},
		{"host port stays whole", "to MININT-FNANLI5.fareast.corp:53419 x", "to <*>:<*> x", KindMixed},
		{"mixed identifier", "block blk_-1608999687919862906 gone", "block <*> gone", KindMixed},
		{"date names", "at Sun Jul 10 03:55:21 2005", "at <*> <*> <*> <*> <*>", KindDate},
		{"iso timestamp", "at 2024-01-02T03:04:05.123Z x", "at <*> x", KindDate},
		{"time with millis", "at 12:00:00,123 x", "at <*> x", KindDate},
		{"trailing punctuation", "value 17, then", "value <*>, then", KindNumber},
		{"words stay", "connection reset by peer", "connection reset by peer", KindWord},
		{"apostrophe is not a quote", "can't open 'x", "can't open 'x", KindWord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := maskedMessage(tt.message); got != tt.want {
				t.Errorf("masked %q = %q, want %q", tt.message, got, tt.want)
			}
			toks := Tokenize(tt.message, nil)
			if len(toks) < 2 {
				t.Fatalf("got %d tokens", len(toks))
			}
			if toks[1].Kind != tt.kind {
				t.Errorf("kind of %q = %v, want %v", toks[1].Masked(tt.message), toks[1].Kind, tt.kind)
			}
		})
	}
}

func TestTokenizeWhitespaceAndOffsets(t *testing.T) {
	msg := "  a\tbb \r\n ccc  "
	toks := Tokenize(msg, nil)
	want := []string{"a", "bb", "ccc"}
	if len(toks) != len(want) {
		t.Fatalf("got %d tokens, want %d", len(toks), len(want))
	}
	for i, w := range want {
		if got := msg[toks[i].Start:toks[i].End]; got != w {
			t.Errorf("token %d = %q, want %q", i, got, w)
		}
	}
	if got := Tokenize("", nil); len(got) != 0 {
		t.Errorf("empty message gave %d tokens", len(got))
	}
}

func TestTokenHashEqualsMaskedText(t *testing.T) {
	// Two messages with the same masked form must have equal hashes token by token.
	a := Tokenize("GET /a 200 in 15ms by LOGIN(uid=0)", nil)
	b := Tokenize("GET /b/c 404 in 2s by LOGIN(uid=1000)", nil)
	for i := range a {
		if a[i].hash != b[i].hash {
			t.Errorf("token %d hashes differ", i)
		}
	}
	if Tokenize("x", nil)[0].hash == Tokenize("y", nil)[0].hash {
		t.Error("different words share a hash")
	}
}

func TestTokenizeDoesNotAllocate(t *testing.T) {
	msg := `2024-01-02T03:04:05Z INFO request id=42 from 10.0.0.1:5555 path="/a b" took 15ms`
	buf := make([]Token, 0, 64)
	allocs := testing.AllocsPerRun(100, func() { buf = Tokenize(msg, buf[:0]) })
	if allocs != 0 {
		t.Errorf("Tokenize allocated %.1f times per call", allocs)
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "a b", `x="unterminated`, "'", `"a\" b" c`, "<*>", "id=", "=1", "0x", "::", "1.2.3.4:", "é 12 ü", "k=\"v w\"x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		toks := Tokenize(msg, nil)
		prevEnd := 0
		for _, tok := range toks {
			if tok.Start < prevEnd || tok.End <= tok.Start || tok.End > len(msg) {
				t.Fatalf("bad span [%d,%d) after %d in %q", tok.Start, tok.End, prevEnd, msg)
			}
			if tok.IsVariable() && (tok.VarStart < tok.Start || tok.VarEnd > tok.End || tok.VarStart > tok.VarEnd) {
				t.Fatalf("bad variable span %+v in %q", tok, msg)
			}
			m := tok.Masked(msg)
			if tok.IsVariable() && !strings.Contains(m, Wildcard) && tok.Kind != KindMixed {
				t.Fatalf("variable token %q masked without wildcard: %q", msg[tok.Start:tok.End], m)
			}
			prevEnd = tok.End
		}
		// Tokenizing the template of a message again must keep its token count (no token
		// spans whitespace in a template except quoted ones, which mask to one token).
		_ = maskedMessage(msg)
	})
}
