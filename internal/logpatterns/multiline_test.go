package logpatterns

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// joinAll feeds lines one second apart and returns the messages, flushing at the end.
func joinAll(j *Joiner, input string) []Message {
	var out []Message
	for i, l := range strings.Split(input, "\n") {
		if m, ok := j.Add(l, t0.Add(time.Duration(i)*time.Millisecond)); ok {
			m.Text = strings.Clone(m.Text) // valid until the next call only
			out = append(out, m)
		}
	}
	if m, ok := j.FlushAll(); ok {
		out = append(out, m)
	}
	return out
}

func TestJoinerStyles(t *testing.T) {
	java := "2024-01-02 03:04:05 ERROR [main] App - request failed\n" +
		"java.lang.IllegalStateException: boom\n" +
		"\tat com.example.App.handle(App.java:42)\n" +
		"\tat com.example.App.main(App.java:10)\n" +
		"Caused by: java.io.IOException: disk\n" +
		"\tat com.example.Disk.read(Disk.java:7)\n" +
		"\t... 2 more"
	python := "Traceback (most recent call last):\n" +
		"  File \"/app/main.py\", line 3, in <module>\n" +
		"    main()\n" +
		"ValueError: bad value\n" +
		"\n" +
		"During handling of the above exception, another exception occurred:\n" +
		"\n" +
		"Traceback (most recent call last):\n" +
		"  File \"/app/main.py\", line 5, in <module>\n" +
		"KeyError: 'x'"
	goPanic := "panic: runtime error: index out of range [3] with length 3\n" +
		"\n" +
		"goroutine 1 [running]:\n" +
		"main.lookup(...)\n" +
		"\t/app/main.go:12\n" +
		"main.main()\n" +
		"\t/app/main.go:7 +0x1d\n" +
		"exit status 2"
	dotnet := "Unhandled exception. System.InvalidOperationException: Sequence contains no elements\n" +
		" ---> System.ArgumentException: bad\n" +
		"   at Program.Inner() in /src/Program.cs:line 12\n" +
		"   --- End of inner exception stack trace ---\n" +
		"   at Program.Main() in /src/Program.cs:line 5\n" +
		"--- End of stack trace from previous location ---"
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"java", java + "\nINFO next", []string{java, "INFO next"}},
		{"python", python + "\nINFO next", []string{python, "INFO next"}},
		{"python after log line", "ERROR:root:failed\n" + python, []string{"ERROR:root:failed\n" + python}},
		{"go panic", goPanic + "\nlistening on :8080", []string{goPanic, "listening on :8080"}},
		{"dotnet", dotnet + "\nnext", []string{dotnet, "next"}},
		{"single lines", "a\nb\nc", []string{"a", "b", "c"}},
		{"crlf", "a\r\n\tb\r\nc", []string{"a\n\tb", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := joinAll(NewJoiner(DefaultJoinerConfig()), tt.input)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d messages, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i].Text != tt.want[i] {
					t.Errorf("message %d\n%q\nwant\n%q", i, got[i].Text, tt.want[i])
				}
				if got[i].Lines != strings.Count(tt.want[i], "\n")+1 {
					t.Errorf("message %d has %d lines", i, got[i].Lines)
				}
			}
			if !got[0].Time.Equal(t0) {
				t.Errorf("first message time %v, want %v", got[0].Time, t0)
			}
		})
	}
}

func TestJoinerTimeout(t *testing.T) {
	j := NewJoiner(JoinerConfig{Timeout: 2 * time.Second})
	if _, ok := j.Add("ERROR x", t0); ok {
		t.Fatal("first line completed a message")
	}
	j.Add("\tat y", t0.Add(time.Second))
	if _, ok := j.Flush(t0.Add(2 * time.Second)); ok {
		t.Fatal("flushed before the timeout since the last line")
	}
	m, ok := j.Flush(t0.Add(3 * time.Second))
	if !ok || m.Text != "ERROR x\n\tat y" || !m.Time.Equal(t0) {
		t.Fatalf("flush = %+v, %v", m, ok)
	}
	if _, ok := j.Flush(t0.Add(time.Hour)); ok {
		t.Fatal("flushed twice")
	}
}

func TestJoinerCaps(t *testing.T) {
	j := NewJoiner(JoinerConfig{MaxLines: 3, MaxBytes: 20, Timeout: time.Second})
	got := joinAll(j, "head\n\tat a\n\tat b\n\tat c\n\tat d\nnext")
	if len(got) != 2 || got[0].Text != "head\n\tat a\n\tat b" || got[1].Text != "next" {
		t.Fatalf("got %+v", got)
	}
	if j.Dropped() != 2 {
		t.Errorf("dropped %d, want 2", j.Dropped())
	}
	j = NewJoiner(JoinerConfig{MaxLines: 100, MaxBytes: 12, Timeout: time.Second})
	got = joinAll(j, "head\n\tat aaa\n\tat b\nnext")
	if got[0].Text != "head\n\tat aaa" || j.Dropped() != 1 {
		t.Fatalf("byte cap: got %q, dropped %d", got[0].Text, j.Dropped())
	}
}
