package logpatterns

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestExtractorTemplates(t *testing.T) {
	tests := []struct {
		name     string
		messages []string
		want     []string // templates in creation order
	}{
		{
			name: "numbers and ips masked, word variable generalised",
			messages: []string{
				"Accepted password for alice from 10.0.0.1 port 5022 ssh2",
				"Accepted password for bob from 10.0.0.2 port 6022 ssh2",
				"Failed password for bob from 10.0.0.2 port 6022 ssh2",
			},
			want: []string{
				"Accepted password for <*> from <*> port <*> <*>",
				"Failed password for bob from <*> port <*> <*>",
			},
		},
		{
			name: "different constants stay apart",
			messages: []string{
				"connection reset by peer",
				"connection closed by server",
			},
			want: []string{"connection reset by peer", "connection closed by server"},
		},
		{
			name: "lengths never mix",
			messages: []string{
				"PacketResponder 1 for block blk_38865049064139660 terminating",
				"PacketResponder 2 for block blk_-6952295868487656571 terminating now",
			},
			want: []string{
				"PacketResponder <*> for block <*> terminating",
				"PacketResponder <*> for block <*> terminating now",
			},
		},
		{
			name:     "whitespace runs collapse",
			messages: []string{"a  b\t\tc 1", "a b c 2"},
			want:     []string{"a b c <*>"},
		},
		{
			name:     "empty message is a pattern",
			messages: []string{"", "   "},
			want:     []string{""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewExtractor(DefaultConfig())
			for _, m := range tt.messages {
				e.Add(m)
			}
			var got []string
			for _, p := range e.Patterns() {
				got = append(got, p.Template)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("templates\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestExtractorPatternFields(t *testing.T) {
	e := NewExtractor(Config{MaxPatterns: 10, MaxMessageLength: 8192, SampleLength: 12})
	p1, l1 := e.Add("ERROR disk 1 failed on /dev/sda")
	p2, l2 := e.Add("ERROR disk 2 failed on /dev/sdb")
	p3, l3 := e.Add("WARN disk 3 failed on /dev/sdc")
	if p1 != p2 {
		t.Fatal("same template went to two patterns")
	}
	if p3 == p1 {
		t.Fatal("a different leading word joined the pattern")
	}
	if l1 != LevelError || l2 != LevelError || l3 != LevelWarning {
		t.Errorf("levels %v %v %v", l1, l2, l3)
	}
	want := Pattern{Hash: TemplateHash("ERROR disk <*> failed on <*>"), Template: "ERROR disk <*> failed on <*>", Level: LevelError, Sample: "ERROR disk 1", Count: 2}
	if *p1 != want {
		t.Errorf("pattern %+v, want %+v", *p1, want)
	}
}

func TestTemplateHashStable(t *testing.T) {
	// The hash is part of the agent's output (pattern_hash label): it must never change.
	tests := map[string]string{
		"":                           "cbf29ce484222325",
		"<overflow>":                 OverflowHash,
		"connection from <*> closed": TemplateHash("connection from <*> closed"),
	}
	for tmpl, want := range tests {
		if got := TemplateHash(tmpl); got != want {
			t.Errorf("TemplateHash(%q) = %s, want %s", tmpl, got, want)
		}
	}
	if got := TemplateHash("a"); got != "af63dc4c8601ec8c" {
		t.Errorf("TemplateHash(a) = %s, want FNV-1a af63dc4c8601ec8c", got)
	}
	a, b := NewExtractor(DefaultConfig()), NewExtractor(DefaultConfig())
	pa, _ := a.Add("user 1 logged in")
	b.Add("something else entirely")
	pb, _ := b.Add("user 2 logged in")
	if pa.Hash != pb.Hash || pa.Template != pb.Template {
		t.Errorf("two extractors disagree: %s %q vs %s %q", pa.Hash, pa.Template, pb.Hash, pb.Template)
	}
}

func TestExtractorOverflowCap(t *testing.T) {
	const maxPatterns, lines = 50, 5000
	e := NewExtractor(Config{MaxPatterns: maxPatterns, MaxMessageLength: 1024, SampleLength: 64})
	r := rand.New(rand.NewPCG(1, 2))
	for range lines {
		e.Add(randomWords(r, 6))
	}
	ps := e.Patterns()
	if len(ps) != maxPatterns+1 {
		t.Fatalf("%d patterns, want %d plus overflow", len(ps), maxPatterns)
	}
	var total uint64
	for _, p := range ps {
		total += p.Count
	}
	if total != lines {
		t.Errorf("counts sum to %d, want %d", total, lines)
	}
	of := ps[len(ps)-1]
	if of != e.Overflow() || of.Template != OverflowTemplate || of.Hash != OverflowHash {
		t.Errorf("last pattern %+v is not the overflow pattern", of)
	}
	if of.Count != lines-maxPatterns {
		t.Errorf("overflow counted %d, want %d", of.Count, lines-maxPatterns)
	}
}

func TestExtractorTruncates(t *testing.T) {
	e := NewExtractor(Config{MaxPatterns: 10, MaxMessageLength: 10, SampleLength: 100})
	p, _ := e.Add("abcdefgh é tail that is cut")
	if p.Sample != "abcdefgh " {
		t.Errorf("sample %q: the cut must not split é", p.Sample)
	}
	e.Add("short")
	if e.Truncated() != 1 {
		t.Errorf("truncated %d, want 1", e.Truncated())
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
	bad := Config{MaxPatterns: 0, MaxMessageLength: -1, SampleLength: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, field := range []string{"max_patterns", "max_message_length", "sample_length"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	e := NewExtractor(bad)
	if e.cfg != DefaultConfig() {
		t.Errorf("invalid config not replaced by defaults: %+v", e.cfg)
	}
}

const letters = "abcdefghijklmnopqrstuvwxyz"

// randomWords builds a line of n random lower-case words without digits, so nothing is
// masked and lines are unrelated to each other.
func randomWords(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		for range 4 + r.IntN(6) {
			b.WriteByte(letters[r.IntN(len(letters))])
		}
	}
	return b.String()
}

func FuzzExtractor(f *testing.F) {
	f.Add("a 1\nb 2\na 3", uint8(3))
	f.Add("\n\n", uint8(1))
	f.Add("x=\"y z\" 1\nx=\"q\" 2", uint8(2))
	f.Fuzz(func(t *testing.T, input string, maxPatterns uint8) {
		cfg := Config{MaxPatterns: int(maxPatterns%8) + 1, MaxMessageLength: 64, SampleLength: 16}
		e := NewExtractor(cfg)
		lines := strings.Split(input, "\n")
		for _, l := range lines {
			p, _ := e.Add(l)
			if p == nil {
				t.Fatal("nil pattern")
			}
			if p != e.Overflow() && p.Hash != TemplateHash(p.Template) {
				t.Fatalf("hash %s does not match template %q", p.Hash, p.Template)
			}
			if len(p.Sample) > cfg.SampleLength {
				t.Fatalf("sample of %d bytes", len(p.Sample))
			}
		}
		var total uint64
		ps := e.Patterns()
		for _, p := range ps {
			total += p.Count
		}
		if total != uint64(len(lines)) {
			t.Fatalf("counts %d, lines %d", total, len(lines))
		}
		if n := len(ps); n > cfg.MaxPatterns+1 {
			t.Fatalf("%d patterns over cap %d", n, cfg.MaxPatterns)
		}
		// Every message matches its pattern's template once the template is final.
		e2 := NewExtractor(cfg)
		for _, l := range lines {
			e2.Add(l)
		}
		if fmt.Sprint(len(e2.Patterns())) != fmt.Sprint(len(ps)) {
			t.Fatal("same input gave a different number of patterns")
		}
	})
}

func TestMergeTokens(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"rhost=<*>", "rhost=example.org", "rhost=<*>"},
		{"alice", "alan", "<*>"},
		{"(reserved)", "(usable)", "(<*>)"},
		{"user=guest", "user=test", "user=<*>"},
		{`tag="<*>",`, "tag=null,", "tag=<*>,"},
		{"[<*>]", "<*>", "<*>"},
		{"a", "", "<*>"},
	}
	for _, tt := range tests {
		if got := mergeTokens(tt.a, tt.b); got != tt.want {
			t.Errorf("mergeTokens(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}
