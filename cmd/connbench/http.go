package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/codexray/codexray-node-agent/internal/l7tracer"
	"github.com/codexray/codexray-node-agent/internal/tracer"
)

// startAgent starts the tracer and, with withL7, the L7 capture on top of it, attributing
// everything to one container so that both do their full work.
func startAgent(cfg tracer.Config, withL7 bool) (*tracer.Tracer, *l7tracer.Tracer, error) {
	tr := tracer.New(tracer.Options{Config: cfg, Resolver: everyone{}})
	if err := tr.Start(); err != nil {
		return nil, nil, err
	}
	<-tr.Seeded()
	if !withL7 {
		return tr, nil, nil
	}
	lt := l7tracer.New(l7tracer.Options{Config: l7tracer.DefaultConfig(), Resolver: everyone{}, Connections: tr})
	if err := lt.Start(tr.Probe()); err != nil {
		_ = tr.Close()
		return nil, nil, err
	}
	return tr, lt, nil
}

func closeAgent(tr *tracer.Tracer, lt *l7tracer.Tracer) error {
	var err error
	if lt != nil {
		err = lt.Close()
	}
	if e := tr.Close(); err == nil {
		err = e
	}
	return err
}

// serveHTTP is the child that serves small keep-alive responses.
func serveHTTP() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
}

var wrkRequests = regexp.MustCompile(`(\d+) requests in`)

// load runs wrk for secs and returns the requests it completed and its CPU seconds plus the
// server's over the run.
func load(addr string, serverPid int, secs int) (requests float64, cpu float64, err error) {
	srv0 := procCPU(serverPid)
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	out, err := exec.Command("wrk", "-t1", "-c8", fmt.Sprintf("-d%ds", secs), "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %w: %s", err, out)
	}
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
	m := wrkRequests.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("wrk output without a request count: %s", out)
	}
	n, _ := strconv.ParseFloat(string(m[1]), 64)
	wrkCPU := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()).Seconds()
	return n, wrkCPU + procCPU(serverPid) - srv0, nil
}

// procCPU returns a process's user+system CPU seconds from /proc/<pid>/stat.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// rssMiB returns this process's resident set size.
func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func runHTTP(secs, rounds, rssRequests int, nat bool) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not installed (scripts/install-deps.sh test installs it): %w", err)
	}
	srv := exec.Command("/proc/self/exe", "-serve")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return err
	}
	addr = strings.TrimSpace(addr)

	cfg := tracer.DefaultConfig()
	cfg.Conntrack = nat
	var ratios, cpuRatios, agentPer100k []float64
	var untracedRate, tracedRate []float64
	for r := 0; r < rounds; r++ {
		n0, cpu0, err := load(addr, srv.Process.Pid, secs)
		if err != nil {
			return err
		}
		tr, lt, err := startAgent(cfg, true)
		if err != nil {
			return err
		}
		a0 := cpuSeconds()
		n1, cpu1, err := load(addr, srv.Process.Pid, secs)
		if err != nil {
			_ = closeAgent(tr, lt)
			return err
		}
		time.Sleep(300 * time.Millisecond) // the readers catch up
		agent := cpuSeconds() - a0
		if err := closeAgent(tr, lt); err != nil {
			return err
		}
		untracedRate = append(untracedRate, n0/float64(secs))
		tracedRate = append(tracedRate, n1/float64(secs))
		ratios = append(ratios, n1/n0)
		// CPU per request of the workload (wrk + server, syscalls and BPF programs included)
		// without the agent ÷ with it (plus the agent's own): what the ratio is on a CPU-bound node.
		cpuRatios = append(cpuRatios, (cpu0/n0)/((cpu1+agent)/n1))
		agentPer100k = append(agentPer100k, agent/n1*100000)
	}
	fmt.Printf("HTTP/1.1 keep-alive, wrk -t1 -c8, %d s per run, %d rounds (untraced, traced) interleaved\n", secs, rounds)
	fmt.Printf("untraced req/s per round:     %.0f\n", untracedRate)
	fmt.Printf("traced req/s per round:       %.0f\n", tracedRate)
	fmt.Printf("throughput ratio per round:   %.3f (median %.3f)\n", ratios, median(ratios))
	fmt.Printf("CPU-time ratio per round:     %.3f (median %.3f)\n", cpuRatios, median(cpuRatios))
	fmt.Printf("agent CPU per 100k requests:  %.3f s (median; per round %.3f)\n", median(agentPer100k), agentPer100k)

	// RSS: idle with the agent running, then after rssRequests requests.
	tr, lt, err := startAgent(cfg, true)
	if err != nil {
		return err
	}
	defer func() { _ = closeAgent(tr, lt) }()
	time.Sleep(2 * time.Second)
	idle := rssMiB()
	var done float64
	for done < float64(rssRequests) {
		n, _, err := load(addr, srv.Process.Pid, secs)
		if err != nil {
			return err
		}
		done += n
	}
	time.Sleep(500 * time.Millisecond)
	st := lt.Stats()
	fmt.Printf("agent RSS idle / after %.0f requests: %.1f MiB / %.1f MiB (+%.1f MiB); requests paired %d, segments lost %d\n",
		done, idle, rssMiB(), rssMiB()-idle, st.Tracker.Requests, st.Kernel.Lost)
	return nil
}
