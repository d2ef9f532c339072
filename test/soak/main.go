// Command soak runs the churn soak of issue 12: the built otelcol-codexray distribution runs as
// its own process with a short container retention while about 1,000 docker containers are
// created and removed over about 10 minutes; then the agent's state must return to where it
// was. It reports the agent's RSS, open descriptors, threads, Go goroutines (from the pprof
// extension's goroutine profile), the containers it tracks (codexray_containers_tracked) and
// reports (container_info series of the soak's containers), and its CPU time per container
// start, net of its idle CPU rate measured before the churn.
//
// Run it with `make soak` (root, the testbed's dockerd). It exits 1 when the containers the
// agent tracks or reports, its descriptors or its goroutines did not come back to their
// baseline, or when too many containers failed to start.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const image = "codexray-test/busybox:1"

type options struct {
	dist       string
	containers int
	duration   time.Duration
	retention  time.Duration
	warmup     time.Duration
	idle       time.Duration
	settle     time.Duration
	workers    int
}

func main() {
	var o options
	flag.StringVar(&o.dist, "dist", "_build/otelcol-codexray", "the built distribution")
	flag.IntVar(&o.containers, "containers", 1000, "containers to create and remove")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "over how long the containers are started")
	flag.DurationVar(&o.retention, "retention", 30*time.Second, "containers.retention of the agent")
	flag.DurationVar(&o.warmup, "warmup", time.Minute, "wait after the agent's start before the baseline")
	flag.DurationVar(&o.idle, "idle", 2*time.Minute, "window measuring the agent's idle CPU rate before the churn")
	// taskstats forgets a gone container's delay totals 5 minutes after its last process; the
	// log streams' stream_expiry is set to 1m below. The settle window covers both.
	flag.DurationVar(&o.settle, "settle", 7*time.Minute, "wait after the last container is gone before the final reading")
	flag.IntVar(&o.workers, "workers", 6, "docker run commands in flight at most")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// sample is one reading of the agent process.
type sample struct {
	at         time.Time
	cpuTicks   uint64 // utime+stime
	rssKB      uint64
	fds        int
	threads    int
	goroutines int
	heapLive   uint64          // Go heap allocated (live) right after a GC, bytes
	tracked    float64         // codexray_containers_tracked
	soakSeries int             // container_info series of this soak's containers
	others     map[string]bool // container.id of every other container_info series
}

func (s sample) String() string {
	return fmt.Sprintf("rss %.1f MiB, live heap after GC %.1f MiB, fds %d, threads %d, goroutines %d, containers tracked %.0f, soak containers reported %d",
		float64(s.rssKB)/1024, float64(s.heapLive)/(1<<20), s.fds, s.threads, s.goroutines, s.tracked, s.soakSeries)
}

type agent struct {
	pid               int
	metricsURL, pprof string
	heap              string
	namePrefix        string
	proc              *exec.Cmd
	exited            chan struct{}
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (the agent loads eBPF programs and reads every process)")
	}
	if err := exec.Command("docker", "image", "inspect", image).Run(); err != nil {
		return fmt.Errorf("dockerd with %s not available (scripts/testbed.sh up): %w", image, err)
	}
	dist, err := filepath.Abs(o.dist)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dist); err != nil {
		return fmt.Errorf("distribution not built (make build): %w", err)
	}
	work, err := os.MkdirTemp("", "codexray-soak-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	a, err := startAgent(o, dist, work)
	if err != nil {
		return err
	}
	defer a.stop()
	label := fmt.Sprintf("codexray-soak=%d", os.Getpid())
	defer removeLeftovers(label)

	logf("agent pid %d running; warming up for %s", a.pid, o.warmup)
	if err := a.sleep(o.warmup); err != nil {
		return err
	}
	idle0, err := a.sample()
	if err != nil {
		return err
	}
	if err := a.sleep(o.idle); err != nil {
		return err
	}
	base, err := a.sample()
	if err != nil {
		return err
	}
	idleRate := float64(base.cpuTicks-idle0.cpuTicks) / base.at.Sub(idle0.at).Seconds() // ticks per second
	logf("baseline: %s; idle CPU %.2f%% of a core", base, idleRate/clockTicks()*100)

	// Churn: start containers at an even pace, each logging a line, living ~2 s, removed by
	// dockerd (--rm) when it exits.
	var started, failed atomic.Int64
	peak := base
	var peakMu sync.Mutex
	churnStart := time.Now()
	sem := make(chan struct{}, o.workers)
	var wg sync.WaitGroup
	stopSampling := make(chan struct{})
	samplingDone := make(chan struct{})
	go func() {
		defer close(samplingDone)
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				s, err := a.sample()
				if err != nil {
					continue
				}
				peakMu.Lock()
				peak = maxSample(peak, s)
				peakMu.Unlock()
				logf("churn: %d started, %d failed; %s", started.Load(), failed.Load(), s)
			}
		}
	}()
	for i := 0; i < o.containers; i++ {
		if d := time.Until(churnStart.Add(time.Duration(i) * o.duration / time.Duration(o.containers))); d > 0 {
			time.Sleep(d)
		}
		select {
		case <-a.exited:
			return errors.New("the agent exited during the churn")
		default:
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("%s%d", a.namePrefix, i)
			out, err := exec.Command("docker", "run", "-d", "--rm", "--network", "none", "--label", "codexray-test=1",
				"--label", label, "--name", name, "-m", "32m", "--cpus", "0.2", image,
				"sh", "-c", fmt.Sprintf("echo soak container %d up; sleep 2; echo soak container %d done", i, i)).CombinedOutput()
			if err != nil {
				failed.Add(1)
				if failed.Load() <= 3 {
					logf("docker run %s: %v: %s", name, err, strings.TrimSpace(string(out)))
				}
				return
			}
			started.Add(1)
		}()
	}
	wg.Wait()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
		if strings.TrimSpace(string(out)) == "" || time.Now().After(deadline) {
			break
		}
	}
	churnEnd, err := a.sample()
	if err != nil {
		return err
	}
	close(stopSampling)
	<-samplingDone
	peak = maxSample(peak, churnEnd)
	churnSeconds := churnEnd.at.Sub(churnStart).Seconds()
	logf("churn done in %.0f s: %d started, %d failed; %s", churnSeconds, started.Load(), failed.Load(), churnEnd)

	logf("settling for %s (retention %s, stream expiry 1m, delay totals 5m)", o.settle, o.retention)
	var final sample
	for end := time.Now().Add(o.settle); time.Now().Before(end); {
		if err := a.sleep(min(time.Minute, time.Until(end))); err != nil {
			return err
		}
		if final, err = a.sample(); err != nil {
			return err
		}
		logf("settle: %s", final)
	}

	cpuChurn := float64(churnEnd.cpuTicks-base.cpuTicks) / clockTicks()
	cpuNet := cpuChurn - idleRate/clockTicks()*churnSeconds
	n := float64(started.Load())
	fmt.Printf("\nchurn soak: %d containers started (%d failed) over %.0f s, retention %s, settle %s\n",
		started.Load(), failed.Load(), churnSeconds, o.retention, o.settle)
	fmt.Printf("| | baseline | peak during churn | after settle | final ÷ baseline |\n|---|---|---|---|---|\n")
	row := func(name string, b, p, f float64, format string) {
		fmt.Printf("| %s | "+format+" | "+format+" | "+format+" | %.3f |\n", name, b, p, f, f/b)
	}
	row("RSS (MiB)", float64(base.rssKB)/1024, float64(peak.rssKB)/1024, float64(final.rssKB)/1024, "%.1f")
	row("Go live heap after GC (MiB)", float64(base.heapLive)/(1<<20), float64(peak.heapLive)/(1<<20), float64(final.heapLive)/(1<<20), "%.1f")
	row("open fds", float64(base.fds), float64(peak.fds), float64(final.fds), "%.0f")
	row("threads", float64(base.threads), float64(peak.threads), float64(final.threads), "%.0f")
	row("goroutines", float64(base.goroutines), float64(peak.goroutines), float64(final.goroutines), "%.0f")
	row("codexray_containers_tracked", base.tracked, peak.tracked, final.tracked, "%.0f")
	fmt.Printf("| soak containers reported (container_info) | %d | %d | %d | |\n", base.soakSeries, peak.soakSeries, final.soakSeries)
	fmt.Printf("agent CPU during the churn: %.2f s (idle rate %.3f%% of a core); net of idle: %.2f s = %.1f ms per container start\n",
		cpuChurn, idleRate/clockTicks()*100, cpuNet, cpuNet/n*1000)

	var problems []string
	if failed.Load() > int64(o.containers)/20 {
		problems = append(problems, fmt.Sprintf("%d of %d containers failed to start", failed.Load(), o.containers))
	}
	if final.soakSeries != 0 {
		problems = append(problems, fmt.Sprintf("%d soak containers still reported", final.soakSeries))
	}
	if peak.soakSeries == 0 {
		problems = append(problems, "no soak container was ever reported")
	}
	// Other users of the machine start and stop containers too: those that appeared since the
	// baseline explain a higher count, nothing else does.
	var appeared, vanished []string
	for id := range final.others {
		if !base.others[id] {
			appeared = append(appeared, id)
		}
	}
	for id := range base.others {
		if !final.others[id] {
			vanished = append(vanished, id)
		}
	}
	if len(appeared)+len(vanished) > 0 {
		fmt.Printf("containers of other users of the machine (not the soak's): %d appeared since the baseline, %d vanished (e.g. %v)\n",
			len(appeared), len(vanished), appeared[:min(3, len(appeared))])
	}
	if final.tracked > base.tracked+float64(len(appeared)) {
		problems = append(problems, fmt.Sprintf("containers tracked %.0f, baseline %.0f, %d others appeared", final.tracked, base.tracked, len(appeared)))
	}
	if final.fds > base.fds+5 {
		problems = append(problems, fmt.Sprintf("open fds %d, baseline %d", final.fds, base.fds))
	}
	if final.goroutines > base.goroutines+5 {
		problems = append(problems, fmt.Sprintf("goroutines %d, baseline %d", final.goroutines, base.goroutines))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Println("no leak: tracked containers, descriptors and goroutines back to their baseline")
	return nil
}

func maxSample(a, b sample) sample {
	a.rssKB, a.fds, a.threads = max(a.rssKB, b.rssKB), max(a.fds, b.fds), max(a.threads, b.threads)
	a.goroutines, a.tracked, a.soakSeries = max(a.goroutines, b.goroutines), max(a.tracked, b.tracked), max(a.soakSeries, b.soakSeries)
	a.heapLive = max(a.heapLive, b.heapLive)
	return a
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// soakConfig is the default configuration with the retentions shortened so a soak can see the
// state go, and the two debug endpoints the soak reads.
const soakConfig = `receivers:
  codexray:
    containers:
      retention: %s
      # The shells of other users of a shared machine come and go as cgroups of their own
      # (this VM's /process_api/<id>): not part of the churn, only noise in the counts.
      include_other_cgroups: false
    logs:
      stream_expiry: 1m
    cloud:
      enabled: false
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    metric_expiration: 1m
    resource_constant_labels:
      included: [container.id, codexray.container.id, container.name, container.image.name, container.runtime.name, k8s.pod.name, k8s.pod.uid, k8s.namespace.name, k8s.container.name, host.name]
  debug:
    verbosity: basic
extensions:
  pprof:
    endpoint: 127.0.0.1:%d
service:
  extensions: [pprof]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [codexray]
      exporters: [prometheus]
    logs:
      receivers: [codexray]
      exporters: [debug]
`

func startAgent(o options, dist, work string) (*agent, error) {
	promPort, err := freePort()
	if err != nil {
		return nil, err
	}
	pprofPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(work, "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(soakConfig, o.retention, promPort, pprofPort)), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(work, "agent.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(dist, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &agent{
		pid: cmd.Process.Pid, proc: cmd, exited: make(chan struct{}),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort),
		pprof:      fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", pprofPort),
		heap:       fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1", pprofPort),
		namePrefix: fmt.Sprintf("codexray-soak-%d-", os.Getpid()),
	}
	go func() { _ = cmd.Wait(); close(a.exited) }()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if _, err := a.sample(); err == nil {
			return a, nil
		} else if time.Now().After(deadline) {
			a.stop()
			data, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("agent not ready within 60 s: %w\n%s", err, tailOf(string(data), 3000))
		}
		select {
		case <-a.exited:
			data, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("agent exited: %s\n%s", cmd.ProcessState, tailOf(string(data), 3000))
		default:
		}
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (a *agent) stop() {
	select {
	case <-a.exited:
		return
	default:
	}
	_ = syscall.Kill(a.pid, syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-a.pid, syscall.SIGKILL)
		<-a.exited
	}
}

// sleep waits, failing early if the agent exits.
func (a *agent) sleep(d time.Duration) error {
	select {
	case <-a.exited:
		return errors.New("the agent exited")
	case <-time.After(d):
		return nil
	}
}

func (a *agent) sample() (sample, error) {
	s := sample{at: time.Now(), others: map[string]bool{}}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.pid))
	if err != nil {
		return s, err
	}
	// Fields after the command (which may hold spaces) in parentheses: utime is field 14,
	// stime 15 of the whole line.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %q", a.pid, stat)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	s.cpuTicks = ut + st
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.rssKB, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", a.pid))
	if err != nil {
		return s, err
	}
	s.threads = len(tasks)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := get(ctx, a.pprof)
	if err != nil {
		return s, err
	}
	first, _, _ := strings.Cut(body, "\n")
	if _, err := fmt.Sscanf(first, "goroutine profile: total %d", &s.goroutines); err != nil {
		return s, fmt.Errorf("goroutine profile: %q: %w", first, err)
	}
	// The heap profile with gc=1 runs a collection first; its trailer prints runtime.MemStats.
	body, err = get(ctx, a.heap)
	if err != nil {
		return s, err
	}
	if _, rest, ok := strings.Cut(body, "# HeapAlloc = "); ok {
		v, _, _ := strings.Cut(rest, "\n")
		s.heapLive, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	}
	body, err = get(ctx, a.metricsURL)
	if err != nil {
		return s, err
	}
	found := false
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "codexray_containers_tracked"):
			fs := strings.Fields(line)
			s.tracked, _ = strconv.ParseFloat(fs[len(fs)-1], 64)
			found = true
		case strings.HasPrefix(line, "container_info{") && strings.Contains(line, `container_name="`+a.namePrefix):
			s.soakSeries++
		case strings.HasPrefix(line, "container_info{"):
			if _, rest, ok := strings.Cut(line, `container_id="`); ok {
				id, _, _ := strings.Cut(rest, `"`)
				s.others[id] = true
			}
		}
	}
	if !found {
		return s, errors.New("no codexray_containers_tracked in the scrape yet")
	}
	return s, nil
}

func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || v <= 0 {
		return 100
	}
	return v
}

func removeLeftovers(label string) {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}
