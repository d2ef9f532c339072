package logs

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logpatterns"
)

func TestPatternsCountsAndFlush(t *testing.T) {
	p := NewPatterns(logpatterns.DefaultConfig(), MultilineConfig{}) // every line a message
	const web containers.ID = "/docker/web"
	for i := range 5 {
		p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: fmt.Sprintf("ERROR connection to 10.0.0.%d:5432 refused", i)})
	}
	for i := range 3 {
		p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: fmt.Sprintf("INFO request %d served in %dms", i, i*7)})
	}
	// journald's PRIORITY wins over the text.
	p.Message(&Message{Container: NodeID, Source: SourceJournald, Text: "disk almost full", Level: LevelWarning})

	type series struct {
		source, level string
		count         uint64
	}
	collect := func(id containers.ID) (out []series, hashes []string) {
		p.Counts(id, func(c MessageCount) {
			out = append(out, series{c.Source, c.Level.String(), c.Count})
			hashes = append(hashes, c.PatternHash)
			if c.Start.IsZero() {
				t.Error("zero start time")
			}
		})
		return out, hashes
	}
	webSeries, webHashes := collect(web)
	want := []series{{SourceStdoutStderr, "info", 3}, {SourceStdoutStderr, "error", 5}}
	if fmt.Sprint(webSeries) != fmt.Sprint(want) {
		t.Fatalf("web counts: got %v, want %v", webSeries, want)
	}
	if webHashes[0] == webHashes[1] || len(webHashes[0]) != 16 {
		t.Fatalf("hashes %v", webHashes)
	}
	node, _ := collect(NodeID)
	if fmt.Sprint(node) != fmt.Sprint([]series{{SourceJournald, "warning", 1}}) {
		t.Fatalf("node counts: %v", node)
	}
	if got := p.Containers(); len(got) != 2 || got[0].ID != NodeID || got[1].ID != web {
		t.Fatalf("containers: %v", got)
	}

	var records []PatternRecord
	p.FlushPatterns(nil, func(r PatternRecord) { records = append(records, r) })
	if len(records) != 3 {
		t.Fatalf("records: %+v", records)
	}
	byTemplate := map[string]PatternRecord{}
	for _, r := range records {
		byTemplate[r.Template] = r
	}
	errRec, ok := byTemplate["connection to <*>:<*> refused"] // the level is the header, not the template
	if !ok {
		t.Fatalf("no error pattern in %+v", records)
	}
	if errRec.Count != 5 || errRec.Level != LevelError || errRec.Sample != "ERROR connection to 10.0.0.0:5432 refused" ||
		errRec.Container != web || errRec.Source != SourceStdoutStderr || errRec.Hash != logpatterns.TemplateHash(errRec.Template) {
		t.Fatalf("error record: %+v", errRec)
	}

	// A second flush reports only what is new, and counts since the previous record.
	p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: "ERROR connection to 10.0.0.9:5432 refused"})
	records = records[:0]
	p.FlushPatterns(nil, func(r PatternRecord) { records = append(records, r) })
	if len(records) != 1 || records[0].Count != 1 || records[0].Template != errRec.Template {
		t.Fatalf("second flush: %+v", records)
	}

	if n := p.Expire(time.Now().Add(time.Minute)); n != 2 {
		t.Fatalf("expired %d streams, want 2", n)
	}
	if got := p.Containers(); len(got) != 0 {
		t.Fatalf("after expiry: %v", got)
	}
}

func testPatternsConfig() logpatterns.Config { return logpatterns.DefaultConfig() }

// Forget drops every stream of a container at once, whatever stream_expiry says: counts,
// unflushed records and waiting multi-line messages; a container that logs again counts from
// zero under a later start. A held container's records wait for a later flush. Containers
// names the log file a container's output was last read from.
func TestPatternsForgetAndHold(t *testing.T) {
	const (
		web containers.ID = "/docker/web"
		job containers.ID = "/k8s/batch/job-x/work"
	)
	p := NewPatterns(testPatternsConfig(), MultilineConfig{Enabled: true, JoinerConfig: logpatterns.DefaultJoinerConfig()})
	p.Message(&Message{Container: web, Source: SourceStdoutStderr, Stream: "stdout", Text: "INFO served", File: "/var/lib/docker/containers/w/w-json.log"})
	p.Message(&Message{Container: job, Source: SourceStdoutStderr, Stream: "stdout", Text: "INFO started", File: "/var/log/pods/batch_job-x_u/work/0.log"})
	p.Message(&Message{Container: job, Source: "/var/log/app.log", Text: "INFO plain"})
	p.Message(&Message{Container: job, Source: SourceJournald, Text: "WARN from the journal"})
	p.FlushJoiners()
	want := []StreamContainer{{ID: web, File: "/var/lib/docker/containers/w/w-json.log"}, {ID: job, File: "/var/log/pods/batch_job-x_u/work/0.log"}}
	if got := p.Containers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("containers: %v", got)
	}

	var flushed []containers.ID
	p.FlushPatterns(func(id containers.ID) bool { return id == job }, func(r PatternRecord) { flushed = append(flushed, r.Container) })
	if fmt.Sprint(flushed) != fmt.Sprint([]containers.ID{web}) {
		t.Fatalf("flushed while the job is held: %v", flushed)
	}
	first := time.Now()
	p.Forget([]containers.ID{job, "/docker/unknown"})
	if got := p.Containers(); len(got) != 1 || got[0].ID != web {
		t.Fatalf("after Forget: %v", got)
	}
	flushed = flushed[:0]
	p.FlushPatterns(nil, func(r PatternRecord) { flushed = append(flushed, r.Container) })
	if len(flushed) != 0 {
		t.Fatalf("records of a forgotten container: %v", flushed)
	}
	p.Message(&Message{Container: job, Source: SourceStdoutStderr, Text: "INFO started again"})
	p.Counts(job, func(c MessageCount) {
		if c.Count != 1 || c.Start.Before(first) {
			t.Fatalf("back: %+v, want 1 from after %v", c, first)
		}
	})
}

func newTestPatterns() *Patterns { return NewPatterns(testPatternsConfig(), DefaultConfig().Multiline) }

func TestPatternsJoinMultilineMessages(t *testing.T) {
	p := newTestPatterns()
	const app containers.ID = "/k8s/shop/api-1/api"
	lines := []string{
		"ERROR unhandled exception in request handler",
		"java.lang.NullPointerException: order is null",
		"\tat com.shop.OrderService.place(OrderService.java:42)",
		"\tat com.shop.Api.handle(Api.java:17)",
		"INFO request served",
		"Traceback (most recent call last):", // on stderr: its own joiner
	}
	for i, l := range lines {
		stream := "stdout"
		if i == 5 {
			stream = "stderr"
		}
		p.Message(&Message{Container: app, Source: SourceStdoutStderr, Stream: stream, Text: l})
	}
	// Journald entries are whole messages: never joined.
	p.Message(&Message{Container: app, Source: SourceJournald, Text: "\tindented but whole", Level: LevelInfo})

	count := func() (total uint64, bySource map[string]uint64) {
		bySource = map[string]uint64{}
		p.Counts(app, func(c MessageCount) { total += c.Count; bySource[c.Source] += c.Count })
		return
	}
	// The stack trace is one message; "INFO request served" and the traceback wait for a
	// continuation line or the timeout.
	if total, by := count(); total != 2 || by[SourceJournald] != 1 {
		t.Fatalf("before the timeout: %d messages %v", total, by)
	}
	p.Tick(time.Now())
	if total, _ := count(); total != 2 {
		t.Fatalf("a tick before the timeout counted: %d messages", total)
	}
	p.Tick(time.Now().Add(2 * time.Second))
	if total, _ := count(); total != 4 {
		t.Fatalf("after the timeout: %d messages", total)
	}
	p.Message(&Message{Container: app, Source: SourceStdoutStderr, Stream: "stdout", Text: "INFO last words"})
	p.FlushJoiners() // shutdown: nothing stays pending
	if total, _ := count(); total != 5 {
		t.Fatalf("after FlushJoiners: %d messages", total)
	}
	var samples []string
	p.FlushPatterns(nil, func(r PatternRecord) {
		if r.Level == LevelError {
			samples = append(samples, r.Sample)
		}
	})
	if len(samples) != 1 || samples[0] != strings.Join(lines[:4], "\n") {
		t.Fatalf("joined sample: %q", samples)
	}
}

// The limit counters are cumulative sums (codexray_limits_dropped): expiring the streams that
// dropped something must not take their drops back.
func TestPatternsDropCountersSurviveExpiry(t *testing.T) {
	cfg := logpatterns.DefaultConfig()
	cfg.MaxPatterns = 1
	multiline := MultilineConfig{Enabled: true, JoinerConfig: logpatterns.JoinerConfig{MaxLines: 2, MaxBytes: 1 << 10, Timeout: time.Second}}
	p := NewPatterns(cfg, multiline)
	feed := func(id containers.ID) {
		for _, l := range []string{
			"ERROR payment declined",
			"\tat a.B(B.java:1)",                         // kept: the message's second line
			"\tat c.D(D.java:2)",                         // dropped at max_lines
			"\tat e.F(F.java:3)",                         // dropped
			"INFO a completely different pattern here",   // overflow (max_patterns 1)
			"WARN yet another shape of message entirely", // overflow
		} {
			p.Message(&Message{Container: id, Source: SourceStdoutStderr, Stream: "stdout", Text: l})
		}
		p.FlushJoiners()
	}
	feed("/docker/a")
	if got := p.MultilineDropped(); got != 2 {
		t.Fatalf("multi-line dropped: got %d, want 2", got)
	}
	if got := p.Overflowed(); got != 2 {
		t.Fatalf("overflowed: got %d, want 2", got)
	}
	if n := p.Expire(time.Now().Add(time.Minute)); n != 1 {
		t.Fatalf("expired %d streams, want 1", n)
	}
	if got, got2 := p.MultilineDropped(), p.Overflowed(); got != 2 || got2 != 2 {
		t.Fatalf("after expiry: multi-line dropped %d, overflowed %d; want 2 and 2", got, got2)
	}
	feed("/docker/b")
	if got, got2 := p.MultilineDropped(), p.Overflowed(); got != 4 || got2 != 4 {
		t.Fatalf("after a new stream: multi-line dropped %d, overflowed %d; want 4 and 4", got, got2)
	}
}

// A stream forgotten by Expire starts from zero when it comes back: its counts carry the new
// stream's start, so no backend sees a count fall under an unchanged start time.
func TestPatternsCountStartAfterExpiry(t *testing.T) {
	p := NewPatterns(logpatterns.DefaultConfig(), MultilineConfig{})
	const web containers.ID = "/docker/web"
	count := func() MessageCount {
		var out []MessageCount
		p.Counts(web, func(c MessageCount) { out = append(out, c) })
		if len(out) != 1 {
			t.Fatalf("counts: %+v", out)
		}
		return out[0]
	}
	before := time.Now()
	for range 3 {
		p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: "INFO served"})
	}
	first := count()
	if first.Count != 3 || first.Start.Before(before) || first.Start.After(time.Now()) {
		t.Fatalf("first series: %+v (created after %s)", first, before)
	}
	if n := p.Expire(time.Now().Add(time.Millisecond)); n != 1 {
		t.Fatalf("expired %d streams, want 1", n)
	}
	time.Sleep(2 * time.Millisecond)
	p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: "INFO served"})
	second := count()
	if second.Count != 1 || second.PatternHash != first.PatternHash {
		t.Fatalf("second series: %+v", second)
	}
	if !second.Start.After(first.Start) {
		t.Fatalf("the re-created series starts at %s, not after the first one's %s", second.Start, first.Start)
	}
}

// TestPatternsHeaderPerStream: every stream learns its own header layout, so a syslog file's
// patterns are its messages, a journald stream (MESSAGE has no header) keeps its words, and a
// container's stdout with another format is cut its own way.
func TestPatternsHeaderPerStream(t *testing.T) {
	p := NewPatterns(logpatterns.DefaultConfig(), DefaultConfig().Multiline)
	const app containers.ID = "/docker/app"
	for i := range 40 {
		p.Message(&Message{
			Container: NodeID, Source: "/var/log/syslog",
			Text: fmt.Sprintf("Dec 10 06:55:%02d vm sshd[%d]: Invalid user guest from 10.0.0.%d port %d", i%60, 2000+i, i, 40000+i),
		})
		p.Message(&Message{
			Container: NodeID, Source: SourceJournald, Level: LevelInfo,
			Text: fmt.Sprintf("Started Session %d of User root.", i),
		})
		p.Message(&Message{
			Container: app, Source: SourceStdoutStderr, Stream: "stdout",
			Text: fmt.Sprintf("2024-06-24T14:36:%02d.123Z WARN [worker-%d] cache.Evictor: evicted %d entries", i%60, i%4, i),
		})
	}
	p.FlushJoiners()
	got := map[string]string{}
	p.FlushPatterns(nil, func(r PatternRecord) { got[r.Source] += fmt.Sprintf("%s %d %s|", r.Level, r.Count, r.Template) })
	want := map[string]string{
		"/var/log/syslog":  "unknown 40 Invalid user guest from <*> port <*>|",
		SourceJournald:     "unknown 40 Started Session <*> of User root.|",
		SourceStdoutStderr: "warning 40 evicted <*> entries|",
	}
	for source, w := range want {
		if got[source] != w {
			t.Errorf("%s: %q, want %q", source, got[source], w)
		}
	}
	var levels []string
	p.Counts(app, func(c MessageCount) { levels = append(levels, fmt.Sprintf("%s %d", c.Level, c.Count)) })
	if strings.Join(levels, ",") != "warning 40" {
		t.Errorf("app levels %v: the header's level counts", levels)
	}
}

// TestPatternsSampleLabel: each series of container_log_messages_total carries its pattern's
// first message as its sample label, fixed for the series' life (no added series), bounded
// and valid UTF-8.
func TestPatternsSampleLabel(t *testing.T) {
	p := NewPatterns(logpatterns.DefaultConfig(), MultilineConfig{})
	const web containers.ID = "/docker/web"
	for i := range 4 {
		p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: fmt.Sprintf("ERROR connection to 10.0.0.%d:5432 refused", i)})
	}
	long := "INFO " + strings.Repeat("é", 200) + " done" // 405 bytes, 2-byte characters
	p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: long})
	p.Message(&Message{Container: web, Source: SourceStdoutStderr, Text: "WARN bad byte \xff here"})
	samples := map[string]string{}
	series := 0
	p.Counts(web, func(c MessageCount) {
		series++
		samples[c.Level.String()] = c.Sample
	})
	if series != 3 {
		t.Fatalf("%d series, want 3: a sample adds none", series)
	}
	if samples["error"] != "ERROR connection to 10.0.0.0:5432 refused" {
		t.Errorf("error sample %q, want the pattern's first message", samples["error"])
	}
	info := samples["info"]
	if len(info) > SampleLabelLength || len(info) < SampleLabelLength-1 || !utf8.ValidString(info) || !strings.HasPrefix(long, info) {
		t.Errorf("long sample: %d bytes %q; want a valid prefix of at most %d bytes", len(info), info, SampleLabelLength)
	}
	if samples["warning"] != "WARN bad byte \uFFFD here" {
		t.Errorf("invalid UTF-8 sample %q", samples["warning"])
	}
}

func TestSampleLabel(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"plain":                       "plain",
		"\xff\xfe":                    "\uFFFD",
		strings.Repeat("a", 300):      strings.Repeat("a", SampleLabelLength),
		"x" + strings.Repeat("日", 90): "x" + strings.Repeat("日", 85), // 1+255 bytes; the 86th character would end at 259
	} {
		if got := SampleLabel(in); got != want {
			t.Errorf("SampleLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSampleLabel(f *testing.F) {
	f.Add("ERROR connection refused")
	f.Add(strings.Repeat("é", 200))
	f.Add("\xff\x80abc")
	f.Fuzz(func(t *testing.T, in string) {
		got := SampleLabel(in)
		if len(got) > SampleLabelLength || !utf8.ValidString(got) {
			t.Fatalf("SampleLabel(%q) = %q: %d bytes, valid %v", in, got, len(got), utf8.ValidString(got))
		}
		if utf8.ValidString(in) && !strings.HasPrefix(in, got) {
			t.Fatalf("SampleLabel(%q) = %q is not a prefix of valid input", in, got)
		}
	})
}
