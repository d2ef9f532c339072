// Command codexray-logpatterns analyses a log file offline with the agent's pattern engine.
//
//	codexray-logpatterns [flags] [file]     (reads stdin without a file)
//
// By default it joins multi-line messages (stack traces) and prints one block per pattern,
// most frequent first: count, level, pattern hash and template, then a sample message. As in
// the agent, the file is one stream: its header layout (time, host, pid, level, logger) is
// learnt from its first lines and left out of the templates.
// With -assign it treats every input line as one message and prints, for each input line,
// "<pattern_hash>\t<template>" with the final template of the pattern the line joined, so
// the output can be scored line by line against labelled data.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/codexray/codexray-node-agent/internal/logpatterns"
)

func main() {
	cfg := logpatterns.DefaultConfig()
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	assign := flag.Bool("assign", false, "print <pattern_hash>\\t<template> for every input line, one message per line")
	flag.IntVar(&cfg.MaxPatterns, "max-patterns", cfg.MaxPatterns, "patterns kept before the overflow bucket")
	flag.IntVar(&cfg.MaxMessageLength, "max-message-length", cfg.MaxMessageLength, "bytes of a message analysed")
	flag.IntVar(&cfg.SampleLength, "sample-length", cfg.SampleLength, "bytes of the sample kept per pattern")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags] [file]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "codexray-logpatterns:", err)
		os.Exit(2)
	}
	if flag.NArg() > 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := analyse(flag.Arg(0), *cpuProfile, *assign, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "codexray-logpatterns:", err)
		os.Exit(1)
	}
}

// analyse reads path (standard input when empty) and writes the patterns or assignments to
// standard output, under a CPU profile written to cpuProfile when set.
func analyse(path, cpuProfile string, assign bool, cfg logpatterns.Config) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	in := io.Reader(os.Stdin)
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }() // read only: nothing to lose
		in = f
	}
	out := bufio.NewWriter(os.Stdout)
	var err error
	if assign {
		err = runAssign(in, out, cfg)
	} else {
		err = runSummary(in, out, cfg)
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// eachLine calls f with every line of r without its line ending; lines of any length work.
// The string f gets is a view of the reader's buffer, valid only during the call: the
// joiner copies what it keeps and the extractor clones what it keeps.
func eachLine(r io.Reader, f func(string)) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			continue
		}
		line := chunk
		if len(long) > 0 {
			long = append(long, chunk...)
			line = long
		}
		for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
			line = line[:len(line)-1]
		}
		if len(line) > 0 || len(chunk) > 0 {
			f(unsafe.String(unsafe.SliceData(line), len(line)))
		}
		long = long[:0]
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func runAssign(r io.Reader, w io.Writer, cfg logpatterns.Config) error {
	e := logpatterns.NewExtractor(cfg)
	var assigned []*logpatterns.Pattern
	if err := eachLine(r, func(l string) {
		p, _ := e.Add(l)
		assigned = append(assigned, p)
	}); err != nil {
		return err
	}
	for _, p := range assigned {
		if _, err := fmt.Fprintf(w, "%s\t%s\n", p.Hash, p.Template); err != nil {
			return err
		}
	}
	return nil
}

func runSummary(r io.Reader, w io.Writer, cfg logpatterns.Config) error {
	e := logpatterns.NewExtractor(cfg)
	j := logpatterns.NewJoiner(logpatterns.DefaultJoinerConfig())
	// Offline there is no clock worth waiting for: messages complete when the next starts.
	var now time.Time
	messages := 0
	add := func(m logpatterns.Message) {
		e.Add(m.Text)
		messages++
	}
	if err := eachLine(r, func(l string) {
		if m, ok := j.Add(l, now); ok {
			add(m)
		}
	}); err != nil {
		return err
	}
	if m, ok := j.FlushAll(); ok {
		add(m)
	}
	ps := e.Patterns()
	sort.SliceStable(ps, func(a, b int) bool { return ps[a].Count > ps[b].Count })
	if _, err := fmt.Fprintf(w, "%d messages, %d patterns, %d truncated, %d continuation lines dropped\n\n", messages, len(ps), e.Truncated(), j.Dropped()); err != nil {
		return err
	}
	for _, p := range ps {
		if _, err := fmt.Fprintf(w, "%8d  %-8s  %s  %s\n", p.Count, p.Level, p.Hash, p.Template); err != nil {
			return err
		}
		if p.Sample == "" {
			continue
		}
		if _, err := fmt.Fprintf(w, "          sample: %s\n", strings.ReplaceAll(p.Sample, "\n", "\n                  ")); err != nil {
			return err
		}
	}
	return nil
}
