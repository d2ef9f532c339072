package logs

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseDockerJSONLine(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		log     string
		stream  string
		time    string
		wantErr bool
	}{
		{
			name: "stdout", in: `{"log":"hello world\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`,
			log: "hello world\n", stream: "stdout", time: "2024-01-02T03:04:05.123456789Z",
		},
		{
			name: "escapes", in: `{"log":"a\"b\\c\/d\te\u00e9\ud83d\ude00\n","stream":"stderr","time":"t"}`,
			log: "a\"b\\c/d\te\u00e9\U0001F600\n", stream: "stderr", time: "t",
		},
		{
			name: "key order and attrs", in: `{"time":"x","attrs":{"tag":"a","n":[1,2.5e3,true,null]},"stream":"stdout","log":"p"}`,
			log: "p", stream: "stdout", time: "x",
		},
		{name: "lone surrogate", in: `{"log":"\ud800x","stream":"stdout"}`, log: "\uFFFDx", stream: "stdout"},
		{name: "duplicate key last wins", in: `{"log":"a","log":"b"}`, log: "b"},
		{name: "spaces", in: " { \"log\" : \"a\" , \"stream\" : \"stdout\" } ", log: "a", stream: "stdout"},
		{name: "not an object", in: `["log"]`, wantErr: true},
		{name: "truncated", in: `{"log":"abc`, wantErr: true},
		{name: "log not a string", in: `{"log":5}`, wantErr: true},
		{name: "bad escape", in: `{"log":"\x"}`, wantErr: true},
		{name: "trailing garbage", in: `{"log":"a"}x`, wantErr: true},
		{name: "raw control char", in: "{\"log\":\"a\x01\"}", wantErr: true},
		{name: "empty", in: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := ParseDockerJSONLine([]byte(tt.in), nil)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Log) != tt.log || got.Stream != tt.stream || got.Time != tt.time {
				t.Fatalf("got log=%q stream=%q time=%q", got.Log, got.Stream, got.Time)
			}
		})
	}
}

func TestParseCRILine(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	tests := []struct {
		name    string
		in      string
		stream  string
		partial bool
		text    string
		wantErr bool
	}{
		{name: "full", in: "2024-01-02T03:04:05.123456789Z stdout F hello world", stream: "stdout", text: "hello world"},
		{name: "partial", in: "2024-01-02T03:04:05.123456789Z stderr P chunk ", stream: "stderr", partial: true, text: "chunk "},
		{name: "empty text", in: "2024-01-02T03:04:05.123456789Z stdout F ", stream: "stdout"},
		{name: "empty text no space", in: "2024-01-02T03:04:05.123456789Z stdout F", stream: "stdout"},
		{name: "extra tags", in: "2024-01-02T03:04:05.123456789Z stdout F:x text", stream: "stdout", text: "text"},
		{name: "spaces kept", in: "2024-01-02T03:04:05.123456789Z stdout F  a  b", stream: "stdout", text: " a  b"},
		{name: "bad time", in: "yesterday stdout F x", wantErr: true},
		{name: "bad stream", in: "2024-01-02T03:04:05.123456789Z stdin F x", wantErr: true},
		{name: "bad tag", in: "2024-01-02T03:04:05.123456789Z stdout X x", wantErr: true},
		{name: "no stream", in: "2024-01-02T03:04:05.123456789Z", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCRILine([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Stream != tt.stream || got.Partial != tt.partial || string(got.Text) != tt.text || !got.Time.Equal(ts) {
				t.Fatalf("got %+v text=%q", got, got.Text)
			}
		})
	}
}

type emitted struct {
	stream    string
	text      string
	truncated bool
}

func decodeAll(t *testing.T, d lineDecoder, lines ...string) []emitted {
	t.Helper()
	var out []emitted
	for _, l := range lines {
		if err := d.decode([]byte(l), func(stream string, _ time.Time, text []byte, truncated bool) {
			out = append(out, emitted{stream, string(text), truncated})
		}); err != nil {
			t.Fatalf("decode %q: %v", l, err)
		}
	}
	return out
}

func TestDockerDecoderJoinsSplitLines(t *testing.T) {
	d := newDockerDecoder(1000)
	got := decodeAll(t, d,
		`{"log":"part one ","stream":"stdout","time":"2024-01-02T03:04:05Z"}`,
		`{"log":"err whole\n","stream":"stderr","time":"2024-01-02T03:04:05Z"}`,
		`{"log":"part two\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}`,
		`{"log":"\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}`,
	)
	want := []emitted{{"stderr", "err whole", false}, {"stdout", "part one part two", false}, {"stdout", "", false}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d: got %+v want %+v", i, got[i], want[i])
		}
	}
	if d.pending() {
		t.Fatal("nothing should be pending")
	}
}

func TestCRIDecoderCapsJoinedLines(t *testing.T) {
	d := newCRIDecoder(10)
	got := decodeAll(t, d,
		"2024-01-02T03:04:05Z stdout P 0123456",
		"2024-01-02T03:04:05Z stdout P 789abc",
		"2024-01-02T03:04:05Z stdout F def",
		"2024-01-02T03:04:05Z stdout F 0123456789xyz",
		"2024-01-02T03:04:05Z stdout F short",
	)
	want := []emitted{{"stdout", "0123456789", true}, {"stdout", "0123456789", true}, {"stdout", "short", false}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

func TestMessageText(t *testing.T) {
	tests := []struct {
		in, want string
		binary   bool
	}{
		{"plain\n", "plain", false},
		{"crlf\r\n", "crlf", false},
		{"tab\tok", "tab\tok", false},
		{"nul\x00bell\x07", "nul bell ", false},
		{"bad \xff\xfe utf8", "bad \uFFFD utf8", false},
		{"é ok", "é ok", false},
		{"", "", false},
		{"esc \x1b[31mred\n\n", "esc  [31mred", false},
		// A leading control character is dropped, not made a space: a coloured line must not
		// look like an indented stack frame to the multi-line joiner.
		{"\x1b[32mINFO\x1b[0m started", "[32mINFO [0m started", false},
		{"\x00\x00  at frame", "  at frame", false},
		// Binary data is no message.
		{"\xc3", "", true},
		{" \x01\x02\x03\xff\xfe\x80 junk", "", true},
		{"\ufffd\ufffd\ufffd\ufffd\x05", "", true},
	}
	for _, tt := range tests {
		got, binary := messageText([]byte(tt.in))
		if got != tt.want || binary != tt.binary {
			t.Errorf("messageText(%q) = %q, %v; want %q, %v", tt.in, got, binary, tt.want, tt.binary)
		}
	}
}

func TestLevelFromSyslogPriority(t *testing.T) {
	tests := map[string]Level{
		"0": LevelCritical, "2": LevelCritical, "3": LevelError, "4": LevelWarning,
		"5": LevelInfo, "6": LevelInfo, "7": LevelDebug, "8": LevelUnknown, "": LevelUnknown, "x": LevelUnknown,
	}
	for in, want := range tests {
		if got := LevelFromSyslogPriority(in); got != want {
			t.Errorf("priority %q: got %v want %v", in, got, want)
		}
	}
}

func TestJournaldLevel(t *testing.T) {
	tests := []struct {
		priority, transport string
		docker              bool
		want                Level
	}{
		{"3", "journal", false, LevelError},   // sd_journal_print(LOG_ERR, …)
		{"4", "syslog", false, LevelWarning},  // syslog(3)
		{"4", "stdout", false, LevelWarning},  // systemd-cat -p warning
		{"6", "stdout", false, LevelUnknown},  // a service's plain stdout: detect from the text
		{"3", "journal", true, LevelUnknown},  // docker's journald driver: stderr, not severity
		{"6", "journal", true, LevelUnknown},  // … and stdout
		{"", "kernel", false, LevelUnknown},   // no PRIORITY
		{"2", "kernel", false, LevelCritical}, // kernel crit
	}
	for _, tt := range tests {
		if got := journaldLevel(tt.priority, tt.transport, tt.docker); got != tt.want {
			t.Errorf("journaldLevel(%q, %q, %v) = %v, want %v", tt.priority, tt.transport, tt.docker, got, tt.want)
		}
	}
}

func TestParsePodDirName(t *testing.T) {
	ns, pod, ok := parsePodDirName("kube-system_coredns-5d78c9869d-abcde_0b8f4b2c-1111-2222-3333-444455556666")
	if !ok || ns != "kube-system" || pod != "coredns-5d78c9869d-abcde" {
		t.Fatalf("got %q %q %v", ns, pod, ok)
	}
	for _, bad := range []string{"a_b", "a__c", "a_b_c_d", ""} {
		if _, _, ok := parsePodDirName(bad); ok {
			t.Errorf("%q should not parse", bad)
		}
	}
}

// FuzzParseDockerJSONLine checks the scanner against encoding/json: whenever encoding/json
// reads an object whose log/stream/time fields are strings, the scanner must agree, and it
// must never panic or return invalid UTF-8.
func FuzzParseDockerJSONLine(f *testing.F) {
	for _, s := range []string{
		`{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123Z"}`,
		`{"log":"\u00e9\ud83d\ude00","stream":"stderr","attrs":{"a":[1,{"b":null}]}}`,
		`{"log":"a","log":"b"}`, `{}`, `{"log":"\ud800"}`, "{\"log\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		got, _, err := ParseDockerJSONLine(line, nil)
		if err == nil && !utf8.Valid(got.Log) {
			t.Fatalf("invalid UTF-8 in %q", got.Log)
		}
		var ref map[string]json.RawMessage
		if json.Unmarshal(line, &ref) != nil || bytes.Contains(line, []byte{0}) {
			return
		}
		var want struct{ log, stream, time string }
		for k, dst := range map[string]*string{"log": &want.log, "stream": &want.stream, "time": &want.time} {
			raw, ok := ref[k]
			if !ok {
				continue
			}
			if json.Unmarshal(raw, dst) != nil {
				return // not a string: the scanner may reject it
			}
		}
		if err != nil {
			t.Fatalf("encoding/json reads %q but the scanner rejected it: %v", line, err)
		}
		if string(got.Log) != want.log || got.Stream != want.stream || got.Time != want.time {
			t.Fatalf("%q: scanner %q/%q/%q, encoding/json %q/%q/%q", line, got.Log, got.Stream, got.Time, want.log, want.stream, want.time)
		}
	})
}

// FuzzParseCRILine: never panics; accepted lines have a known stream and text that is a
// suffix of the input.
func FuzzParseCRILine(f *testing.F) {
	for _, s := range []string{
		"2024-01-02T03:04:05.123456789Z stdout F hello",
		"2024-01-02T03:04:05Z stderr P part",
		"2024-01-02T03:04:05Z stdout F",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		got, err := ParseCRILine(line)
		if err != nil {
			return
		}
		if got.Stream != "stdout" && got.Stream != "stderr" {
			t.Fatalf("stream %q", got.Stream)
		}
		if !bytes.HasSuffix(line, got.Text) {
			t.Fatalf("text %q is not a suffix of %q", got.Text, line)
		}
		d := newCRIDecoder(64)
		_ = d.decode(line, func(_ string, _ time.Time, text []byte, _ bool) {
			if len(text) > 64 {
				t.Fatalf("message of %d bytes beyond the cap", len(text))
			}
		})
	})
}

// FuzzFollowerLines feeds file content to a follower in arbitrary chunks: the lines must come
// out as if the content had been split at '\n' at once (leading NULs skipped, empty lines
// dropped), each capped at maxRaw, whatever the chunking (a read may end anywhere, in a line
// or in a UTF-8 sequence).
func FuzzFollowerLines(f *testing.F) {
	f.Add([]byte("one\ntwo\nthree"), uint8(3), uint8(8))
	f.Add([]byte("a very long line that goes beyond the cap\nshort\n"), uint8(5), uint8(10))
	f.Add([]byte("\n\n\xff\xfe\n"), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, maxRaw uint8) {
		step, limit := int(chunk)%64+1, int(maxRaw)%32+1
		var got []string
		w := newFileWatcher("fuzz", &Config{}, nil, SinkFunc(func(m *Message) { got = append(got, m.Text) }),
			&Stats{}, &openFiles{limit: 1}, nil, false, nil, nil)
		r := &follower{target: fileTarget{maxRaw: limit}, dec: plainDecoder{}}
		for i := 0; i < len(data); i += step {
			r.consume(data[i:min(i+step, len(data))], w)
		}
		if r.offset != int64(len(data)) {
			t.Fatalf("offset %d after %d bytes", r.offset, len(data))
		}
		var want []string
		lines := bytes.Split(data, []byte{'\n'})
		for i, l := range lines {
			l = bytes.TrimLeft(l, "\x00") // holes left by copytruncate are skipped
			if i == len(lines)-1 && len(l) <= limit {
				break // an unfinished line waits for its '\n'
			}
			if text, binary := messageText(l[:min(len(l), limit)]); text != "" && !binary { // empty and binary lines are no messages
				want = append(want, text)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d lines %q, want %d %q", len(got), got, len(want), want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("line %d: got %q want %q", i, got[i], want[i])
			}
		}
	})
}
