// Command connbench measures what the eBPF tracer costs: it runs the same number of loopback
// connect/accept/close cycles in a child process with and without the tracer (and, with -l7,
// the L7 capture) loaded in this process, and reports the throughput ratio and the agent's CPU
// seconds per 10,000 connections (this process's rusage while the traced child runs: the event
// readers, the tracer's state updates, conntrack lookups, L7 parsing and aggregation).
//
// With -http it measures HTTP/1.1 keep-alive instead: wrk against a Go net/http server in a
// child process, rounds without and with the agent (tracer and L7 capture) interleaved, and
// reports the requests/s ratio, the agent's CPU per 100,000 requests, and the agent's RSS when
// idle and after -http-requests requests.
//
//	go run ./cmd/connbench -n 50000
//	go run ./cmd/connbench -http
//
// Needs root.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/tracer"
)

func main() {
	n := flag.Int("n", 50000, "connect/accept/close cycles per run")
	rounds := flag.Int("rounds", 2, "untraced+traced run pairs; throughputs are averaged")
	nat := flag.Bool("conntrack", true, "resolve actual destinations through conntrack, as by default")
	child := flag.Bool("child", false, "internal: run the cycles and print the elapsed seconds")
	withL7 := flag.Bool("l7", true, "load the L7 capture with the tracer")
	httpMode := flag.Bool("http", false, "measure HTTP keep-alive requests instead of connections")
	httpSeconds := flag.Int("http-seconds", 4, "seconds of load per -http round")
	httpRounds := flag.Int("http-rounds", 5, "untraced+traced -http round pairs")
	httpRequests := flag.Int("http-requests", 1000000, "requests before the -http RSS is read")
	httpServer := flag.String("http-server", "go", "the -http server: go (net/http) or nginx")
	bpfStats := flag.Bool("bpf-stats", false, "-http: report each kernel program's runs and time per request (BPF statistics on)")
	cpuProfile := flag.String("cpuprofile", "", "-http: write the agent's CPU profile over the runs to this file")
	serve := flag.Bool("serve", false, "internal: serve HTTP on loopback and print the address")
	flag.Parse()
	if *serve {
		if err := serveHTTP(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *httpMode {
		o := httpOptions{
			secs: *httpSeconds, rounds: *httpRounds, rssRequests: *httpRequests, nat: *nat,
			server: *httpServer, bpfStats: *bpfStats, cpuProfile: *cpuProfile,
		}
		if err := runHTTP(o); err != nil {
			fmt.Fprintln(os.Stderr, "connbench:", err)
			os.Exit(1)
		}
		return
	}
	if *child {
		if err := cycles(*n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(*n, *rounds, *nat, *withL7); err != nil {
		fmt.Fprintln(os.Stderr, "connbench:", err)
		os.Exit(1)
	}
}

// cycles dials and closes n connections to a local listener. Closing with SO_LINGER 0 (RST)
// keeps 50,000 cycles from exhausting ephemeral ports with TIME_WAIT sockets.
func cycles(n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return fmt.Errorf("cycle %d: %w", i, err)
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	fmt.Println(time.Since(start).Seconds())
	return nil
}

func runChild(n int) (float64, error) {
	out, err := exec.Command("/proc/self/exe", "-child", "-n", strconv.Itoa(n)).Output()
	if err != nil {
		return 0, fmt.Errorf("child: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// everyone attributes every event to one container, so the tracer does its full work.
type everyone struct{}

const bench containers.ID = "bench"

func (everyone) ContainerIDByCgroupID(uint64) (containers.ID, bool) { return bench, true }
func (everyone) ContainerIDByPID(uint32) (containers.ID, bool)      { return bench, true }

func run(n, rounds int, nat, withL7 bool) error {
	cfg := tracer.DefaultConfig()
	cfg.Conntrack = nat
	var untraced, traced, agentCPU float64
	var processed, lost uint64
	for r := 0; r < rounds; r++ {
		secs, err := runChild(n)
		if err != nil {
			return err
		}
		untraced += float64(n) / secs

		tr, lt, err := startAgent(cfg, withL7)
		if err != nil {
			return err
		}
		before, cpu0 := tr.Stats().EventsProcessed, cpuSeconds()
		secs, err = runChild(n)
		if err != nil {
			_ = closeAgent(tr, lt)
			return err
		}
		// let the reader catch up before reading CPU time
		for i := 0; i < 50; i++ {
			time.Sleep(20 * time.Millisecond)
			if tr.Stats().EventsProcessed-before >= uint64(4*n) {
				break
			}
		}
		agentCPU += cpuSeconds() - cpu0
		st := tr.Stats()
		processed += st.EventsProcessed - before
		lost += st.EventsLost
		var s tracer.ContainerStats
		tr.ContainerStats(bench, &s)
		if err := closeAgent(tr, lt); err != nil {
			return err
		}
		traced += float64(n) / secs
	}
	untraced /= float64(rounds)
	traced /= float64(rounds)
	fmt.Printf("L7 capture:                   %v\n", withL7)
	fmt.Printf("cycles per run:               %d (x%d rounds)\n", n, rounds)
	fmt.Printf("untraced:                     %.0f conn/s\n", untraced)
	fmt.Printf("traced:                       %.0f conn/s\n", traced)
	fmt.Printf("throughput ratio:             %.3f\n", traced/untraced)
	fmt.Printf("agent CPU per 10k conns:      %.3f s\n", agentCPU/float64(rounds)/float64(n)*10000)
	fmt.Printf("events processed / lost:      %d / %d\n", processed, lost)
	return nil
}
