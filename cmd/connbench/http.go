package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	cebpf "github.com/cilium/ebpf"

	"github.com/codexray/codexray-node-agent/internal/ebpf"
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

// httpServer is the server wrk loads: a child process of this one.
type httpServer struct {
	name string
	addr string
	cmd  *exec.Cmd
	dir  string // nginx's prefix, removed at stop
}

// startGoServer starts this binary's -serve child (Go net/http).
func startGoServer() (*httpServer, error) {
	cmd := exec.Command("/proc/self/exe", "-serve")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return &httpServer{name: "Go net/http", addr: strings.TrimSpace(addr), cmd: cmd}, nil
}

// startNginx starts nginx (one worker, no access log) on a free loopback port, answering every
// request with the same 5-byte body as the Go server.
func startNginx() (*httpServer, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx not installed (scripts/install-deps.sh test installs it): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	dir, err := os.MkdirTemp("", "connbench-nginx-")
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 100000000;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		location / { default_type text/plain; return 200 "hello"; }
	}
}
`, dir, addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	srv := &httpServer{name: "nginx", addr: addr, cmd: cmd, dir: dir}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return srv, nil
		}
		if i == 100 {
			srv.stop()
			return nil, fmt.Errorf("nginx did not listen on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *httpServer) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// cpu returns the CPU seconds of the server process and of its children (nginx's worker).
func (s *httpServer) cpu() float64 {
	pid := s.cmd.Process.Pid
	total := procCPU(pid)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		if child, err := strconv.Atoi(f); err == nil {
			total += procCPU(child)
		}
	}
	return total
}

var wrkRequests = regexp.MustCompile(`(\d+) requests in`)

// load runs wrk for secs and returns the requests it completed and its CPU seconds plus the
// server's over the run.
func load(srv *httpServer, secs int) (requests float64, cpu float64, err error) {
	srv0 := srv.cpu()
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	out, err := exec.Command("wrk", "-t1", "-c8", fmt.Sprintf("-d%ds", secs), "http://"+srv.addr+"/").CombinedOutput()
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
	return n, wrkCPU + srv.cpu() - srv0, nil
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

// httpOptions are the -http flags.
type httpOptions struct {
	secs, rounds, rssRequests int
	nat                       bool
	server                    string // "go" or "nginx"
	bpfStats                  bool   // per-program kernel time per request (costs two clock reads per run)
	cpuProfile                string // the agent's CPU profile over the traced runs
}

// programStats is the kernel programs' counts of both parts of the agent, by "tcp:" or "l7:"
// and the tracepoint.
func programStats(tr *tracer.Tracer, lt *l7tracer.Tracer) map[string]ebpf.ProgramStats {
	all := map[string]ebpf.ProgramStats{}
	if p := tr.Probe(); p != nil {
		if st, err := p.ProgramStats(); err == nil {
			for k, v := range st {
				all["tcp:"+k] = v
			}
		}
	}
	if lt != nil {
		if st, err := lt.ProgramStats(); err == nil {
			for k, v := range st {
				all["l7:"+k] = v
			}
		}
	}
	return all
}

func runHTTP(o httpOptions) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not installed (scripts/install-deps.sh test installs it): %w", err)
	}
	var srv *httpServer
	var err error
	switch o.server {
	case "go":
		srv, err = startGoServer()
	case "nginx":
		srv, err = startNginx()
	default:
		err = fmt.Errorf("unknown -http-server %q (go, nginx)", o.server)
	}
	if err != nil {
		return err
	}
	defer srv.stop()

	if o.bpfStats {
		c, err := ebpf.EnableProgramStats()
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	cfg := tracer.DefaultConfig()
	cfg.Conntrack = o.nat
	var ratios, cpuRatios, agentPer100k, workPerReq []float64
	var untracedRate, tracedRate []float64
	progTime := map[string]time.Duration{}
	progRuns := map[string]uint64{}
	var tracedRequests float64
	others := 0
	for r := 0; r < o.rounds; r++ {
		others = max(others, otherAgents())
		var n0, cpu0, n1, cpu1, agent float64
		var before, after map[string]ebpf.ProgramStats
		untraced := func() (err error) {
			n0, cpu0, err = load(srv, o.secs)
			return err
		}
		traced := func() error {
			tr, lt, err := startAgent(cfg, true)
			if err != nil {
				return err
			}
			// The start-up's garbage (BTF, program loading) is collected before the load, not
			// during it: an agent runs for days, and this is its steady state.
			runtime.GC()
			before = programStats(tr, lt)
			a0 := cpuSeconds()
			n1, cpu1, err = load(srv, o.secs)
			if err != nil {
				_ = closeAgent(tr, lt)
				return err
			}
			after = programStats(tr, lt)
			time.Sleep(300 * time.Millisecond) // the readers catch up
			agent = cpuSeconds() - a0
			return closeAgent(tr, lt)
		}
		// Odd rounds run the traced half first, so that neither half is always the one right
		// after the agent's start or stop.
		first, second := untraced, traced
		if r%2 == 1 {
			first, second = traced, untraced
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		others = max(others, otherAgents())
		for k, v := range after {
			progTime[k] += v.Runtime - before[k].Runtime
			progRuns[k] += v.Runs - before[k].Runs
		}
		tracedRequests += n1
		untracedRate = append(untracedRate, n0/float64(o.secs))
		tracedRate = append(tracedRate, n1/float64(o.secs))
		ratios = append(ratios, n1/n0)
		// CPU per request of the workload (wrk + server, syscalls and BPF programs included)
		// without the agent ÷ with it (plus the agent's own): what the ratio is on a CPU-bound node.
		cpuRatios = append(cpuRatios, (cpu0/n0)/((cpu1+agent)/n1))
		agentPer100k = append(agentPer100k, agent/n1*100000)
		workPerReq = append(workPerReq, cpu0/n0*1e6)
	}
	fmt.Printf("HTTP/1.1 keep-alive against %s, wrk -t1 -c8, %d s per run, %d rounds (untraced and traced, alternating which goes first)\n", srv.name, o.secs, o.rounds)
	fmt.Printf("untraced req/s per round:     %.0f\n", untracedRate)
	fmt.Printf("traced req/s per round:       %.0f\n", tracedRate)
	fmt.Printf("throughput ratio per round:   %.3f (median %.3f)\n", ratios, median(ratios))
	fmt.Printf("CPU-time ratio per round:     %.3f (median %.3f)\n", cpuRatios, median(cpuRatios))
	fmt.Printf("workload CPU per request:     %.1f µs untraced (median)\n", median(workPerReq))
	fmt.Printf("agent CPU per 100k requests:  %.3f s (median; per round %.3f)\n", median(agentPer100k), agentPer100k)
	fmt.Printf("other agents' socket programs loaded: at most %d (0 for a clean measurement)\n", others)
	if o.bpfStats {
		names := make([]string, 0, len(progTime))
		for k := range progTime {
			names = append(names, k)
		}
		sort.Strings(names)
		var total time.Duration
		for _, k := range names {
			if progRuns[k] == 0 {
				continue
			}
			total += progTime[k]
			fmt.Printf("  %-28s %6.2f runs/request  %5.0f ns/run  %6.2f µs/request\n", k,
				float64(progRuns[k])/tracedRequests, float64(progTime[k])/float64(progRuns[k]),
				float64(progTime[k])/tracedRequests/1e3)
		}
		fmt.Printf("  %-28s %34.2f µs/request (program time only)\n", "kernel programs", float64(total)/tracedRequests/1e3)
	}
	if o.rssRequests <= 0 {
		return nil
	}

	// RSS: idle with the agent running, then after rssRequests requests.
	tr, lt, err := startAgent(cfg, true)
	if err != nil {
		return err
	}
	defer func() { _ = closeAgent(tr, lt) }()
	time.Sleep(2 * time.Second)
	idle := rssMiB()
	var done float64
	for done < float64(o.rssRequests) {
		n, _, err := load(srv, o.secs)
		if err != nil {
			return err
		}
		done += n
	}
	time.Sleep(500 * time.Millisecond)
	st := lt.Stats()
	if st.Kernel.Lost > 0 {
		err = errors.New("segments were lost")
	}
	fmt.Printf("agent RSS idle / after %.0f requests: %.1f MiB / %.1f MiB (+%.1f MiB); requests paired %d, segments lost %d\n",
		done, idle, rssMiB(), rssMiB()-idle, st.Tracker.Requests, st.Kernel.Lost)
	return err
}

// otherAgents counts the agent programs (the TCP tracer's "on_…", the L7 capture's "l7_…")
// loaded by other processes: other agents on the machine run them for every socket operation
// (or, for older builds, every syscall) of the benchmark's processes too, which makes both
// halves of a round slower. Called while this process has none loaded.
func otherAgents() int {
	n := 0
	for id := cebpf.ProgramID(0); ; {
		next, err := cebpf.ProgramGetNextID(id)
		if err != nil {
			return n
		}
		id = next
		p, err := cebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && (strings.HasPrefix(info.Name, "l7_sock_") || strings.HasPrefix(info.Name, "l7_sys_exit") || info.Name == "on_sock_send_le") {
			n++
		}
		_ = p.Close()
	}
}
