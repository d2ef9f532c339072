package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchLines returns n log lines from a mix of services' templates with varying values, the
// kind of stream the agent meets.
func benchLines(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	templates := []func() string{
		func() string {
			return fmt.Sprintf("2024-01-02T03:04:%02d.%03dZ INFO request id=%x method=GET path=/api/v1/items/%d status=200 duration=%dms", rng.IntN(60), rng.IntN(1000), rng.Uint64(), rng.IntN(100000), rng.IntN(900))
		},
		func() string {
			return fmt.Sprintf("level=error msg=\"cannot connect to upstream\" addr=10.0.%d.%d:5432 err=\"connection refused\"", rng.IntN(256), rng.IntN(256))
		},
		func() string {
			return fmt.Sprintf("W0102 03:04:05.%06d   %d reflector.go:%d] failed to list *v1.Pod: Unauthorized", rng.IntN(1000000), rng.IntN(9999), rng.IntN(500))
		},
		func() string {
			return fmt.Sprintf("%d.%d.%d.%d - - [02/Jan/2024:03:04:05 +0000] \"GET /static/app.%x.js HTTP/1.1\" 200 %d \"-\" \"Mozilla/5.0\"", rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.Uint32(), rng.IntN(100000))
		},
		func() string {
			return fmt.Sprintf("DEBUG cache hit ratio %.2f over %d keys", rng.Float64(), rng.IntN(1<<20))
		},
		func() string {
			return fmt.Sprintf("WARN slow query took %dms: SELECT * FROM orders WHERE id = %d", rng.IntN(5000), rng.IntN(1<<30))
		},
	}
	out := make([]string, n)
	for i := range out {
		out[i] = templates[rng.IntN(len(templates))]()
	}
	return out
}

func writeLines(tb testing.TB, path string, lines []string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, l := range lines {
		_, _ = w.WriteString(l)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFileToCounters measures the whole path of a plain log file: read, split, sanitize,
// pattern extraction and counting. lines/cpu-s is lines per second per core.
func BenchmarkFileToCounters(b *testing.B) {
	lines := benchLines(max(b.N, 1))
	dir := b.TempDir()
	writeLines(b, filepath.Join(dir, "app.log"), lines)
	cfg := filesConfig(dir)
	cfg.PollInterval = time.Millisecond
	store := newMemStore()
	_ = store.Set(context.Background(), startedKey, []byte{1}) // read the file from its start
	pats := newTestPatterns()
	r := NewReader(cfg, nil, pats, nil)

	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	if err := r.Start(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	for r.Stats().Messages.Load() < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	r.Shutdown()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "lines/cpu-s")
}

// BenchmarkSteady10kLinesPerSecond writes 10,000 lines/s (in 10 ms batches) for b.N seconds and
// reports the CPU the agent's side used, as a share of one core (writer included; it is small).
func BenchmarkSteady10kLinesPerSecond(b *testing.B) {
	const rate = 10000
	lines := benchLines(rate)
	dir := b.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := filesConfig(dir)
	cfg.PollInterval = 250 * time.Millisecond // the default
	pats := newTestPatterns()
	r := NewReader(cfg, nil, pats, nil)
	if err := r.Start(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	defer r.Shutdown()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for r.syncs.Load() < 2 || r.Stats().FilesOpened.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	var buf []byte
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for sec := 0; sec < b.N; sec++ {
		for batch := 0; batch < 100; batch++ {
			<-tick.C
			buf = buf[:0]
			for _, l := range lines[batch*rate/100 : (batch+1)*rate/100] {
				buf = append(buf, l...)
				buf = append(buf, '\n')
			}
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	for r.Stats().Messages.Load() < uint64(b.N*rate) {
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu-%")
}

func BenchmarkParseDockerJSONLine(b *testing.B) {
	line := []byte(`{"log":"2024-01-02T03:04:05.123Z INFO request id=42 method=GET path=/api/v1/items status=200 duration=12ms\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`)
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		var err error
		if _, buf, err = ParseDockerJSONLine(line, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCRILine(b *testing.B) {
	line := []byte("2024-01-02T03:04:05.123456789Z stdout F 2024-01-02T03:04:05.123Z INFO request id=42 method=GET path=/api/v1/items status=200 duration=12ms")
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := ParseCRILine(line); err != nil {
			b.Fatal(err)
		}
	}
}

// loghubLines reads the raw lines of the Loghub-2k samples (../shared/loghub2k, research use
// only, never copied into the project), or skips when they are absent.
func loghubLines(b *testing.B) []string {
	b.Helper()
	files, _ := filepath.Glob("../../../shared/loghub2k/*/*_2k.log")
	if len(files) == 0 {
		b.Skip("../shared/loghub2k not present")
	}
	var lines []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimRight(string(data), "\n"), "\n")...)
	}
	return lines
}

// BenchmarkFileToCountersLoghub is BenchmarkFileToCounters on real logs of 12 systems, each
// system in its own file (its own stream), so patterns are those of real services.
func BenchmarkFileToCountersLoghub(b *testing.B) {
	corpus := loghubLines(b)
	dir := b.TempDir()
	const files = 12
	per := (max(b.N, 1) + files - 1) / files
	total := 0
	for f := range files {
		lines := make([]string, 0, per)
		for i := 0; i < per && total < b.N; i++ {
			lines = append(lines, corpus[(f*2000+i)%len(corpus)])
			total++
		}
		writeLines(b, filepath.Join(dir, fmt.Sprintf("system-%d.log", f)), lines)
	}
	cfg := filesConfig(dir)
	cfg.PollInterval = time.Millisecond
	cfg.Multiline.Enabled = false // count lines, as the target is lines per second
	store := newMemStore()
	_ = store.Set(context.Background(), startedKey, []byte{1})
	pats := NewPatterns(testPatternsConfig(), cfg.Multiline)
	r := NewReader(cfg, nil, pats, nil)

	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	if err := r.Start(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	for r.Stats().Messages.Load() < uint64(total) {
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	r.Shutdown()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(total)/cpu.Seconds(), "lines/cpu-s")
}

// BenchmarkDockerToCounters is BenchmarkFileToCounters through the docker json-file source.
func BenchmarkDockerToCounters(b *testing.B) {
	lines := benchLines(max(b.N, 1))
	root := b.TempDir()
	logPath := filepath.Join(root, testDockerID, testDockerID+"-json.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		b.Fatal(err)
	}
	for i, l := range lines {
		esc, _ := json.Marshal(l + "\n")
		lines[i] = `{"log":` + string(esc) + `,"stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`
	}
	writeLines(b, logPath, lines)
	cfg := testConfig()
	cfg.Docker.Enabled, cfg.Docker.ContainersDir = true, root
	cfg.PollInterval = time.Millisecond
	cfg.Multiline.Enabled = false
	store := newMemStore()
	_ = store.Set(context.Background(), startedKey, []byte{1})
	pats := NewPatterns(testPatternsConfig(), cfg.Multiline)
	r := NewReader(cfg, nil, pats, nil)

	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	if err := r.Start(context.Background(), store); err != nil {
		b.Fatal(err)
	}
	for r.Stats().Messages.Load() < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	r.Shutdown()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "lines/cpu-s")
}
