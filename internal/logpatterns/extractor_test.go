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
				"Accepted password for <*> from <*> port <*> ssh2",
				"Failed password for bob from <*> port <*> ssh2",
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
			name: "dpkg package:arch keys vary, one pattern per action",
			messages: []string{
				"2024-06-24 14:36:49 status half-installed libgc1:amd64 1:8.2.2-3",
				"2024-06-24 14:36:49 status unpacked libgc1:amd64 1:8.2.2-3",
				"2024-06-24 14:36:50 status half-installed dbus:amd64 1.14.10-1~deb12u1",
				"2024-06-24 14:36:51 status installed openssl:amd64 3.0.15-1~deb12u1",
				"2024-06-24 14:36:52 status unpacked libc-bin:amd64 2.36-9+deb12u9",
				"2024-06-24 14:36:53 status installed g++:amd64 4:12.2.0-3",
				"2024-06-24 14:36:54 status installed x11-common:all 1:7.7+23",
				"2024-06-24 14:36:55 status unpacked gnupg:all 2.2.40-1.1",
				"2024-06-24 14:36:56 status installed ca-certificates:all 20230311",
			},
			want: []string{
				"status half-installed <*>:<*> <*>",
				"status unpacked <*>:<*> <*>",
				"status installed <*>:<*> <*>",
				"status installed <*>:all <*>",
				"status unpacked gnupg:all <*>",
			},
		},
		{
			name: "dpkg configure and install lines",
			messages: []string{
				"2024-06-24 14:38:29 install libatk1.0-0:amd64 <none> 2.46.0-5",
				"2024-06-24 14:38:30 install libcups2:amd64 <none> 2.4.2-3+deb12u8",
				"2024-06-24 14:38:31 install linux-libc-dev:amd64 <none> 6.1.129-1",
				"2024-06-24 14:39:01 configure libcups2:amd64 2.4.2-3+deb12u8 <none>",
				"2024-06-24 14:39:02 configure wget:amd64 1.21.3-1+deb12u1 <none>",
			},
			want: []string{
				"install <*>:<*> <none> <*>",
				"configure <*>:<*> <*> <none>",
			},
		},
		{
			name: "a key alone does not merge messages whose constant words differ",
			messages: []string{
				"2024-06-24 14:36:49 status installed libgc1:amd64 1:8.2.2-3",
				"2024-06-24 14:36:50 removing package dbus:amd64 1.14.10-1",
			},
			want: []string{
				"status installed libgc1:<*> <*>",
				"removing package dbus:<*> <*>",
			},
		},
		{
			name: "key=value keys are field names and keep messages apart",
			messages: []string{
				"getDataEnabled: subId=1 phoneId=0",
				"getDataEnabled: subId=1 retVal=0",
			},
			want: []string{
				"getDataEnabled: subId=<*> phoneId=<*>",
				"getDataEnabled: subId=<*> retVal=<*>",
			},
		},
		{
			name: "the first word's key names the event",
			messages: []string{
				"onExtend:1514038530000 14 0 4",
				"onStandStepChanged:1514038530000 14 0 4",
			},
			want: []string{
				"onExtend:<*> <*> <*> <*>",
				"onStandStepChanged:<*> <*> <*> <*>",
			},
		},
		{
			name: "a same-key pattern wins over a key-only match",
			messages: []string{
				"job step done worker:7 queue:1",
				"job step done worker:8 queue:2",
				"job step done pool:3 queue:4",
			},
			want: []string{"job step done <*>:<*> queue:<*>"},
		},
		{
			name: "json: keys are constants, the message's words are the event",
			messages: []string{
				`{"level": "info", "ts": 1700000000.1, "msg": "request served", "status": 200, "user": "alice"}`,
				`{"level": "error", "ts": 1700000000.2, "msg": "request failed", "status": 500, "user": "bob"}`,
				`{"level": "info", "ts": 1700000000.3, "msg": "request served", "status": 200, "user": "carol"}`,
				`{"level": "info", "ts": 1700000000.4, "msg": "cache entry 42 evicted", "status": 200, "user": "dave"}`,
			},
			want: []string{
				`{"level": "<*>", "ts": <*>, "msg": "request served", "status": <*>, "user": "<*>"}`,
				`{"level": "<*>", "ts": <*>, "msg": "request failed", "status": <*>, "user": "<*>"}`,
				`{"level": "<*>", "ts": <*>, "msg": "cache entry <*> evicted", "status": <*>, "user": "<*>"}`,
			},
		},
		{
			name: "logfmt: the message's words are the event",
			messages: []string{
				`time=2024-01-02T03:04:05Z level=warn msg="slow query" table=orders rows=12`,
				`time=2024-01-02T03:04:06Z level=warn msg="slow query" table=items rows=7`,
				`time=2024-01-02T03:04:07Z level=info msg="query done" table=orders rows=3`,
			},
			// A key=word field is a constant, as Loghub labels them (user=guest, tty=NODEVssh):
			// another word there starts a sibling.
			want: []string{
				`time=<*> level=warn msg="slow query" table=orders rows=<*>`,
				`time=<*> level=warn msg="slow query" table=items rows=<*>`,
				`time=<*> level=info msg="query done" table=orders rows=<*>`,
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
	if p3 != p1 {
		t.Fatal("the level, a header field, kept one event in two patterns")
	}
	if l1 != LevelError || l2 != LevelError || l3 != LevelWarning {
		t.Errorf("levels %v %v %v", l1, l2, l3)
	}
	want := Pattern{Hash: TemplateHash("disk <*> failed on <*>"), Template: "disk <*> failed on <*>", Level: LevelError, Sample: "ERROR disk 1", Count: 3}
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
		first := map[*Pattern]string{}
		for _, l := range lines {
			p, _ := e.Add(l)
			if p == nil {
				t.Fatal("nil pattern")
			}
			if h, ok := first[p]; ok && h != p.Hash {
				t.Fatalf("pattern %q changed its hash from %s to %s", p.Template, h, p.Hash)
			}
			first[p] = p.Hash
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

// TestPatternIdentity follows the hashes users count under as patterns are refined.
func TestPatternIdentity(t *testing.T) {
	e := NewExtractor(DefaultConfig())
	// Generalising: the hash of the first template stays.
	first, _ := e.Add("user alice logged in from 10.0.0.1")
	hash := first.Hash
	if hash != TemplateHash("user alice logged in from <*>") {
		t.Fatalf("first hash %s for %q", hash, first.Template)
	}
	for i, u := range []string{"bob", "carol", "dave"} {
		p, _ := e.Add(fmt.Sprintf("user %s logged in from 10.0.0.%d", u, i+2))
		if p != first || p.Hash != hash {
			t.Fatalf("%s went to %s %q", u, p.Hash, p.Template)
		}
	}
	if first.Template != "user <*> logged in from <*>" || first.Hash != hash {
		t.Fatalf("after generalising: %s %q", first.Hash, first.Template)
	}

	// A state word that differs starts a sibling: the first pattern keeps its series for its
	// own word, the sibling has its own.
	started, _ := e.Add("[instance: 7c1e] VM Started (Lifecycle Event)")
	for range 5 {
		e.Add("[instance: 8d2f] VM Started (Lifecycle Event)")
	}
	startedHash := started.Hash
	paused, _ := e.Add("[instance: 7c1e] VM Paused (Lifecycle Event)")
	if paused == started || paused.Hash == startedHash {
		t.Fatal("Paused joined Started")
	}
	again, _ := e.Add("[instance: 9e3a] VM Started (Lifecycle Event)")
	if again != started || started.Hash != startedHash || started.Template != "[instance: <*>] VM Started (Lifecycle Event)" {
		t.Fatalf("Started after the split: %s %q", again.Hash, again.Template)
	}
	if paused.Template != "[instance: <*>] VM Paused (Lifecycle Event)" {
		t.Fatalf("sibling template %q", paused.Template)
	}

	// Words that keep coming at one position are a variable after all: at Variants words
	// the family's first pattern takes them as <*> and keeps its hash; the siblings stop
	// growing, their messages count under the first pattern's hash from then on.
	variants := DefaultTuning().Variants
	root, _ := e.Add("job alpha finished cleanly")
	rootHash := root.Hash
	var siblings []*Pattern
	for i := 1; i < variants; i++ {
		p, _ := e.Add(fmt.Sprintf("job %s finished cleanly", letters[i:i+5]))
		if p == root {
			t.Fatalf("word %d joined the first pattern before %d variants", i, variants)
		}
		siblings = append(siblings, p)
	}
	merged, _ := e.Add("job omega finished cleanly")
	if merged != root || root.Hash != rootHash || root.Template != "job <*> finished cleanly" {
		t.Fatalf("at %d variants: %s %q", variants, merged.Hash, merged.Template)
	}
	before := siblings[0].Count
	p, _ := e.Add(fmt.Sprintf("job %s finished cleanly", letters[1:6]))
	if p != root || siblings[0].Count != before {
		t.Fatalf("a merged sibling's word went to %s %q", p.Hash, p.Template)
	}
	// Every pattern ever reported is still listed, each with its own hash.
	seen := map[string]bool{}
	for _, p := range e.Patterns() {
		if seen[p.Hash] {
			t.Fatalf("hash %s twice", p.Hash)
		}
		seen[p.Hash] = true
	}
}

// TestExtractorSameInputSameHashes: the hashes depend on the messages and their order only.
func TestExtractorSameInputSameHashes(t *testing.T) {
	lines := benchCorpus(3000)
	a, b := NewExtractor(DefaultConfig()), NewExtractor(DefaultConfig())
	for _, l := range lines {
		pa, _ := a.Add(l)
		pb, _ := b.Add(l)
		if pa.Hash != pb.Hash {
			t.Fatalf("%q: %s vs %s", l, pa.Hash, pb.Hash)
		}
	}
}
