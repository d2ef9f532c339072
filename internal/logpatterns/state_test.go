package logpatterns

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// A restarted extractor gives the same event the same pattern hash: without its state, the
// first message after a restart would start a pattern of its own template ("user alice logged
// in") before generalising again.
func TestExtractorRestoreKeepsHashes(t *testing.T) {
	tests := []struct {
		name    string
		before  []string
		after   string
		wantNew bool // the message after the restart starts a new pattern
	}{
		{"generalised template", []string{"user alice logged in from web", "user bob logged in from web"}, "user carol logged in from web", false},
		{"single-message pattern", []string{"cache warmed"}, "cache warmed", false},
		{"other event", []string{"user alice logged in from web", "user bob logged in from web"}, "disk full on /dev/sda1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewExtractor(DefaultConfig())
			var last *Pattern
			for _, m := range tt.before {
				last, _ = e.Add(m)
			}
			want := *last

			// Through JSON, as the agent stores it.
			b, err := json.Marshal(e.State())
			if err != nil {
				t.Fatal(err)
			}
			var s ExtractorState
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			r := NewExtractor(DefaultConfig())
			r.Restore(s, e.Counts(nil), 0)

			if got := r.Patterns(); len(got) != len(e.Patterns()) || got[0].Hash != e.Patterns()[0].Hash ||
				got[0].Template != want.Template || got[0].Count != want.Count || got[0].Sample != want.Sample {
				t.Fatalf("restored %+v, want %+v", got[0], want)
			}
			p, _ := r.Add(tt.after)
			if tt.wantNew {
				if p.Hash == want.Hash || len(r.Patterns()) != 2 {
					t.Fatalf("%q joined %q", tt.after, want.Template)
				}
				return
			}
			if p.Hash != want.Hash || p.Count != want.Count+1 || len(r.Patterns()) != 1 {
				t.Fatalf("after the restart %q went to %q (%s, count %d), want %s count %d",
					tt.after, p.Template, p.Hash, p.Count, want.Hash, want.Count+1)
			}
		})
	}
}

func TestExtractorRevisionFollowsIdentity(t *testing.T) {
	e := NewExtractor(DefaultConfig())
	rev := e.Revision()
	step := func(msg string, changes bool) {
		t.Helper()
		e.Add(msg)
		if moved := e.Revision() != rev; moved != changes {
			t.Fatalf("after %q: revision moved %v, want %v", msg, moved, changes)
		}
		rev = e.Revision()
	}
	step("user alice logged in from web", true) // new pattern
	step("user alice logged in from web", false)
	step("user bob logged in from web", true) // generalised
	step("user carol logged in from web", false)
	step("ERROR user dave logged in from web", true) // new pattern, with a level
}

func TestExtractorRestoreRespectsMaxPatterns(t *testing.T) {
	e := NewExtractor(DefaultConfig())
	for _, m := range []string{"alpha one", "beta two three", "gamma four five six"} {
		e.Add(m)
	}
	r := NewExtractor(Config{MaxPatterns: 2, MaxMessageLength: 100, SampleLength: 4})
	r.Restore(e.State(), e.Counts(nil), 7)
	if n := len(r.Patterns()); n != 3 { // two patterns and the overflow pattern
		t.Fatalf("%d patterns, want 2 and the overflow", n)
	}
	if r.Overflow().Count != 7 || r.Patterns()[0].Sample != "alph" {
		t.Fatalf("overflow %d, sample %q", r.Overflow().Count, r.Patterns()[0].Sample)
	}
}

func TestJoinerRestoreContinuesTheMessage(t *testing.T) {
	j := NewJoiner(DefaultJoinerConfig())
	j.Add("Traceback (most recent call last):", t0)
	j.Add(`  File "/app/main.py", line 3, in <module>`, t0)
	b, err := json.Marshal(j.Pending())
	if err != nil {
		t.Fatal(err)
	}
	var s JoinerState
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	r := NewJoiner(DefaultJoinerConfig())
	r.Restore(s)
	// The unindented line after the frames is the exception: it still belongs to the trace.
	if _, ok := r.Add("ValueError: bad", t0.Add(time.Millisecond)); ok {
		t.Fatal("the exception line ended the restored traceback")
	}
	m, ok := r.Add("next message", t0.Add(2*time.Millisecond))
	if !ok || m.Lines != 3 || !m.Time.Equal(t0) {
		t.Fatalf("got %+v %v, want the three lines of the traceback from %s", m, ok, t0)
	}
	if NewJoiner(DefaultJoinerConfig()).Pending().Lines != 0 {
		t.Fatal("an idle joiner has a pending message")
	}
}

// A restored extractor puts every later message where the extractor that was not restarted
// puts it, on streams with headers to learn, families of siblings and lists of any length
// (the fixtures of unseen_test.go): header layout, families, merges and anchors survive.
func TestRestoredExtractorBehavesAsTheOriginal(t *testing.T) {
	for name, events := range fixtures {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(23, uint64(len(name))))
			line := func() string { return events[r.IntN(len(events))].line(r) }
			orig := NewExtractor(DefaultConfig())
			for range 300 {
				orig.Add(line())
			}
			b, err := json.Marshal(orig.State())
			if err != nil {
				t.Fatal(err)
			}
			var s ExtractorState
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			restored := NewExtractor(DefaultConfig())
			restored.Restore(s, orig.Counts(nil), orig.Overflow().Count)
			for i := range 1200 {
				l := line()
				want, _ := orig.Add(l)
				got, _ := restored.Add(l)
				if got.Hash != want.Hash || got.Count != want.Count || got.Template != want.Template {
					t.Fatalf("message %d %q: restored %s %q (%d), original %s %q (%d)",
						i, l, got.Hash, got.Template, got.Count, want.Hash, want.Template, want.Count)
				}
			}
		})
	}
}
