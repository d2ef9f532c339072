// Command loghub-score measures the log-pattern extractor against the Loghub-2k labelled
// samples: for each system it feeds every line's Content to a fresh Extractor with the
// default configuration and prints grouping accuracy (GA), parsing accuracy (PA, templates
// compared after score.NormalizeTemplate) and throughput, then the averages.
//
//	go run ./cmd/loghub-score [-dir ../shared/loghub2k] [-mintime 200ms] [-v]
//
// When the data directory is absent it prints "skipped: <dir> absent" and exits 0, so CI
// without the data passes. The data is read in place; it is never copied into the project.
package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/codexray/codexray-node-agent/internal/logpatterns"
	"github.com/codexray/codexray-node-agent/internal/logpatterns/score"
)

var systems = []string{"Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux", "OpenSSH", "Spark", "Windows", "Zookeeper"}

func main() {
	dir := flag.String("dir", "../shared/loghub2k", "Loghub-2k directory; a relative path is resolved against the repository root")
	minTime := flag.Duration("mintime", 200*time.Millisecond, "minimum CPU time spent replaying each system for the throughput figure")
	verbose := flag.Bool("v", false, "print the wrongly grouped true templates of each system")
	flood := flag.Int("flood", 0, "instead of scoring, feed this many unique random lines to one extractor and report patterns, overflow, heap and RSS")
	flag.Parse()
	if *flood > 0 {
		runFlood(os.Stdout, *flood)
		return
	}
	if err := run(os.Stdout, resolveDir(*dir), *minTime, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "loghub-score:", err)
		os.Exit(1)
	}
}

// resolveDir makes a relative dir relative to the directory holding go.mod, so the command
// gives the same answer from any working directory inside the repository.
func resolveDir(dir string) string {
	if filepath.IsAbs(dir) {
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		return dir
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, dir)
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

type labelled struct {
	content, eventID, template []string
}

func readStructured(path string) (labelled, error) {
	f, err := os.Open(path)
	if err != nil {
		return labelled{}, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return labelled{}, fmt.Errorf("reading header of %s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, want := range []string{"Content", "EventId", "EventTemplate"} {
		if _, ok := col[want]; !ok {
			return labelled{}, fmt.Errorf("%s: no %s column in header %v", path, want, header)
		}
	}
	var l labelled
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return l, nil
		}
		if err != nil {
			return labelled{}, fmt.Errorf("reading %s: %w", path, err)
		}
		l.content = append(l.content, rec[col["Content"]])
		l.eventID = append(l.eventID, rec[col["EventId"]])
		l.template = append(l.template, rec[col["EventTemplate"]])
	}
}

type result struct {
	system          string
	lines, patterns int
	ga, pa, rate    float64
}

func run(w io.Writer, dir string, minTime time.Duration, verbose bool) error {
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(w, "skipped: %s absent\n", dir)
		return nil
	}
	runtime.GOMAXPROCS(1)
	cfg := logpatterns.DefaultConfig()
	fmt.Fprintf(w, "config: max_patterns=%d max_message_length=%d sample_length=%d\n", cfg.MaxPatterns, cfg.MaxMessageLength, cfg.SampleLength)
	fmt.Fprintf(w, "%-10s %6s %9s %6s %6s %12s\n", "system", "lines", "patterns", "GA", "PA", "lines/cpu-s")
	var results []result
	for _, sys := range systems {
		l, err := readStructured(filepath.Join(dir, sys, sys+"_2k.log_structured_corrected.csv"))
		if err != nil {
			return err
		}
		e := logpatterns.NewExtractor(cfg)
		assigned := make([]*logpatterns.Pattern, len(l.content))
		for i, c := range l.content {
			assigned[i], _ = e.Add(c)
		}
		ids := make(map[*logpatterns.Pattern]string)
		groups := make([]string, len(assigned))
		templates := make([]string, len(assigned))
		for i, p := range assigned {
			id, ok := ids[p]
			if !ok {
				id = strconv.Itoa(len(ids))
				ids[p] = id
			}
			groups[i], templates[i] = id, p.Template
		}
		ga, err := score.GroupingAccuracy(l.eventID, groups)
		if err != nil {
			return err
		}
		pa, err := score.ParsingAccuracy(l.template, templates)
		if err != nil {
			return err
		}
		r := result{system: sys, lines: len(l.content), patterns: len(ids), ga: ga, pa: pa, rate: throughput(cfg, l.content, minTime)}
		results = append(results, r)
		fmt.Fprintf(w, "%-10s %6d %9d %6.3f %6.3f %12.0f\n", r.system, r.lines, r.patterns, r.ga, r.pa, r.rate)
		if verbose {
			printMistakes(w, l, groups, templates)
		}
	}
	var ga, pa, lines float64
	var elapsed float64
	for _, r := range results {
		ga += r.ga
		pa += r.pa
		lines += float64(r.lines)
		elapsed += float64(r.lines) / r.rate
	}
	n := float64(len(results))
	fmt.Fprintf(w, "%-10s %6.0f %9s %6.3f %6.3f %12.0f\n", "average", lines, "", ga/n, pa/n, lines/elapsed)
	return nil
}

// throughput replays the lines through fresh extractors (so pattern creation is included)
// until minTime of CPU time has passed and returns lines per CPU second of this thread: the
// figure for one core, unaffected by other processes competing for the machine.
func throughput(cfg logpatterns.Config, lines []string, minTime time.Duration) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n int
	start := threadCPU()
	for threadCPU()-start < minTime || n == 0 {
		e := logpatterns.NewExtractor(cfg)
		for _, l := range lines {
			e.Add(l)
		}
		n += len(lines)
	}
	return float64(n) / (threadCPU() - start).Seconds()
}

// threadCPU returns the user and system CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func printMistakes(w io.Writer, l labelled, groups, templates []string) {
	// For every true group that is not reproduced exactly, show its template and the
	// predicted templates its lines went to.
	byTruth := map[string]map[string]int{}
	for i, id := range l.eventID {
		if byTruth[id] == nil {
			byTruth[id] = map[string]int{}
		}
		byTruth[id][groups[i]+"\t"+templates[i]]++
	}
	predSize := map[string]int{}
	for _, g := range groups {
		predSize[g]++
	}
	var ids []string
	for id := range byTruth {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	trueTemplate := map[string]string{}
	for i, id := range l.eventID {
		trueTemplate[id] = l.template[i]
	}
	for _, id := range ids {
		preds := byTruth[id]
		total := 0
		for _, c := range preds {
			total += c
		}
		ok := false
		if len(preds) == 1 {
			for k := range preds {
				var g string
				fmt.Sscanf(k, "%s", &g)
				ok = predSize[g] == total
			}
		}
		if ok {
			continue
		}
		fmt.Fprintf(w, "  truth %s (%d): %s\n", id, total, trueTemplate[id])
		for k, c := range preds {
			fmt.Fprintf(w, "      %4d -> %s\n", c, k)
		}
	}
}

// runFlood shows that memory stays flat however many distinct messages arrive: after
// max_patterns patterns every new kind of message lands in the overflow pattern.
func runFlood(w io.Writer, lines int) {
	cfg := logpatterns.DefaultConfig()
	e := logpatterns.NewExtractor(cfg)
	r := rand.New(rand.NewPCG(1, 1))
	var buf []byte
	step := lines / 10
	if step == 0 {
		step = lines
	}
	fmt.Fprintf(w, "%12s %9s %12s %10s %10s\n", "lines", "patterns", "overflow", "heap_MiB", "rss_MiB")
	start := time.Now()
	for i := 1; i <= lines; i++ {
		buf = buf[:0]
		for k, words := 0, 3+r.IntN(10); k < words; k++ {
			if k > 0 {
				buf = append(buf, ' ')
			}
			for range 3 + r.IntN(8) {
				buf = append(buf, byte('a'+r.IntN(26)))
			}
		}
		e.Add(string(buf))
		if i%step == 0 || i == lines {
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(w, "%12d %9d %12d %10.1f %10.1f\n", i, len(e.Patterns()), e.Overflow().Count, float64(ms.HeapInuse)/(1<<20), rssMiB())
		}
	}
	fmt.Fprintf(w, "%.0f lines/s\n", float64(lines)/time.Since(start).Seconds())
}

// rssMiB reads the resident set size from /proc/self/statm (Linux); 0 elsewhere.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return float64(pages*uint64(os.Getpagesize())) / (1 << 20)
}
