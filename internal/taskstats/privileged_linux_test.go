//go:build linux

package taskstats

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// requireTaskstats skips (or fails in CI) unless TASKSTATS answers here.
func requireTaskstats(t testing.TB) *Client {
	t.Helper()
	testutil.RequireRoot(t)
	c, err := Dial("/proc")
	testutil.SkipUnlessPrivileged(t, err == nil, "TASKSTATS unavailable: %v", err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientQueries(t *testing.T) {
	c := requireTaskstats(t)
	if ns := c.Namespace(); !ns.Host && ns.Note == "" {
		t.Errorf("fallback to the own namespace without a note: %+v", ns)
	}
	self := uint32(os.Getpid())
	// Burn a little CPU in two threads so the thread group has something to show.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); { //nolint:revive // burns CPU on purpose
			}
		}()
	}
	wg.Wait()
	g, err := c.TGID(self)
	if err != nil {
		t.Fatal(err)
	}
	if g.Version < 1 || g.CPURunRealTotal == 0 || g.CPUCount == 0 {
		t.Fatalf("TGID stats of the test process: %+v", g)
	}
	p, err := c.PID(self)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version >= 2 && (p.PID != self || p.Comm == "") {
		t.Fatalf("PID stats: pid %d comm %q", p.PID, p.Comm)
	}
	// The thread group's CPU time covers at least its leader's.
	if g.CPURunRealTotal < p.CPURunRealTotal {
		t.Fatalf("group run time %d below the leader's %d", g.CPURunRealTotal, p.CPURunRealTotal)
	}
	// A pid above pid_max can never exist.
	b, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	pidMax, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if _, err := c.TGID(uint32(pidMax) + 1); !errors.Is(err, ErrGone) {
		t.Fatalf("query for a pid above pid_max: %v, want ErrGone", err)
	}
}

// collectExits runs an ExitListener until stop and returns the notifications for tgid.
func TestExitListener(t *testing.T) {
	requireTaskstats(t)
	l, err := ListenExits("/proc")
	testutil.SkipUnlessPrivileged(t, err == nil, "exit listener: %v", err)
	var (
		mu   sync.Mutex
		seen []Reply
		done = make(chan error, 1)
	)
	go func() { done <- l.Run(func(r *Reply) { mu.Lock(); seen = append(seen, *r); mu.Unlock() }) }()
	defer func() {
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	cmd := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		for _, r := range seen {
			if r.PID != pid {
				continue
			}
			mu.Unlock()
			s := r.Task
			if s.PPID != uint32(os.Getpid()) || s.Comm != "sh" || s.CPURunRealTotal == 0 {
				t.Fatalf("exit record: ppid %d comm %q run %d", s.PPID, s.Comm, s.CPURunRealTotal)
			}
			if s.Version >= 12 && (s.Flag&AGroup == 0 || s.TGID != pid) {
				t.Fatalf("single-threaded exit without AGROUP: flag %#x tgid %d", s.Flag, s.TGID)
			}
			if l.Overruns() != 0 {
				t.Logf("overruns: %d", l.Overruns())
			}
			return
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no exit notification for pid %d", pid)
}

// dockerResolver attributes processes to the test's docker containers by /proc/<pid>/cgroup.
type dockerResolver struct {
	mu  sync.Mutex
	ids []string
}

func (r *dockerResolver) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
}

func (r *dockerResolver) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup")
	if err != nil {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.ids {
		if strings.Contains(string(b), "/docker/"+id) {
			return containers.ID("/docker/" + id), true
		}
	}
	return "", false
}

func runContainer(t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{"run", "-d", "--label", "codexray-test=1", "--network", "none"}, args...)
	out, err := exec.Command("docker", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	return id
}

func newTestCollector(t *testing.T, cfg Config, r Resolver) *Collector {
	t.Helper()
	c, err := NewCollector(cfg, r, zaptest.NewLogger(t))
	testutil.SkipUnlessPrivileged(t, err == nil, "taskstats collector: %v", err)
	c.Start()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := c.Status().ExitListenerErr; err != nil {
		t.Fatalf("exit listener: %v", err)
	}
	return c
}

func mustCollect(t *testing.T, c *Collector) {
	t.Helper()
	if err := c.Collect(time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestDockerCPUDelay(t *testing.T) {
	testutil.RequireDocker(t)
	res := &dockerResolver{}
	busy := runContainer(t, "--cpus", "0.2", testutil.DockerImage, "sh", "-c",
		"for i in 1 2 3; do (while :; do :; done) & done; wait")
	idle := runContainer(t, testutil.DockerImage, "sh", "-c", "while :; do sleep 1; done")
	res.add(busy)
	res.add(idle)
	c := newTestCollector(t, DefaultConfig(), res)

	time.Sleep(500 * time.Millisecond) // let the loops start
	mustCollect(t, c)
	b0, ok := c.ContainerDelays(containers.ID("/docker/" + busy))
	if !ok {
		t.Fatalf("busy container not collected; status %+v", c.Status())
	}
	i0, _ := c.ContainerDelays(containers.ID("/docker/" + idle))
	time.Sleep(4 * time.Second)
	mustCollect(t, c)
	b1, _ := c.ContainerDelays(containers.ID("/docker/" + busy))
	i1, ok := c.ContainerDelays(containers.ID("/docker/" + idle))
	if !ok {
		t.Fatal("idle container not collected")
	}
	t.Logf("busy: %.3fs → %.3fs; idle: %.3fs → %.3fs", b0.CPU, b1.CPU, i0.CPU, i1.CPU)
	if b1.CPU-b0.CPU < 1 {
		t.Errorf("CPU delay of 3 loops under --cpus 0.2 grew by %.3fs in 4s, want ≥ 1s", b1.CPU-b0.CPU)
	}
	// The idle container's few wakeups also wait for a CPU when the machine is busy (CI and
	// other tests share 2 cores), so its bound is relative to the throttled container's growth.
	if idleGrowth, busyGrowth := i1.CPU-i0.CPU, b1.CPU-b0.CPU; idleGrowth > 0.1*busyGrowth {
		t.Errorf("idle container's CPU delay grew by %.3fs, more than a tenth of the busy one's %.3fs", idleGrowth, busyGrowth)
	}
	if st := c.Status(); st.Counters.LiveProcesses < 5 {
		t.Errorf("status %+v", st)
	}
}

// setDelayacct sets kernel.task_delayacct and restores the old value at cleanup.
func setDelayacct(t *testing.T, on bool) {
	t.Helper()
	path := delayacctPath("/proc")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(path, old, 0o644) })
}

func TestDockerDiskDelay(t *testing.T) {
	testutil.RequireDocker(t)
	setDelayacct(t, true) // before the workload: switching it mid-IO credits bogus delays
	res := &dockerResolver{}
	id := runContainer(t, testutil.DockerImage, "sh", "-c",
		"dd if=/dev/zero of=/tmp/f bs=1M count=16 2>/dev/null; sync; "+
			"while :; do dd if=/tmp/f of=/dev/null bs=4k iflag=direct 2>/dev/null; done")
	res.add(id)
	c := newTestCollector(t, DefaultConfig(), res)
	if st := c.Status(); !st.TaskDelayacct {
		t.Fatalf("status says delay accounting is off: %+v", st)
	}
	time.Sleep(time.Second)
	mustCollect(t, c)
	d0, _ := c.ContainerDelays(containers.ID("/docker/" + id))
	time.Sleep(3 * time.Second)
	mustCollect(t, c)
	d1, ok := c.ContainerDelays(containers.ID("/docker/" + id))
	t.Logf("disk delay %.4fs → %.4fs, cpu %.4fs → %.4fs; %+v", d0.Disk, d1.Disk, d0.CPU, d1.CPU, c.Status().Counters)
	if !ok || d1.Disk <= d0.Disk || d1.Disk <= 0 {
		t.Fatalf("disk delay did not grow: %.6f → %.6f (known %v)", d0.Disk, d1.Disk, ok)
	}
	// Each dd is short-lived: most of the growth comes through the exit listener.
	if d1.Disk > 3*4 { // cannot exceed wall time × processes
		t.Fatalf("implausible disk delay %.3fs", d1.Disk)
	}
}

func TestDelayacctStatus(t *testing.T) {
	requireTaskstats(t)
	t.Run("off and left off", func(t *testing.T) {
		setDelayacct(t, false)
		c := newTestCollector(t, DefaultConfig(), &dockerResolver{})
		st := c.Status()
		if st.TaskDelayacct || !strings.Contains(st.TaskDelayacctNote, "enable_task_delayacct") {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("switched on by the option", func(t *testing.T) {
		setDelayacct(t, false)
		cfg := DefaultConfig()
		cfg.EnableTaskDelayacct = true
		c := newTestCollector(t, cfg, &dockerResolver{})
		b, _ := os.ReadFile(delayacctPath("/proc"))
		if st := c.Status(); !st.TaskDelayacct || strings.TrimSpace(string(b)) != "1" {
			t.Fatalf("status %+v, sysctl %q", st, b)
		}
	})
	t.Run("switched by an operator after start", func(t *testing.T) {
		setDelayacct(t, false)
		c := newTestCollector(t, DefaultConfig(), &dockerResolver{})
		if st := c.Status(); st.TaskDelayacct {
			t.Fatalf("status %+v", st)
		}
		setDelayacct(t, true)
		if st := c.Status(); !st.TaskDelayacct {
			t.Fatalf("kernel.task_delayacct=1 now, status still %+v", st)
		}
	})
}

// Processes born and gone between two collections count through the exit listener.
func TestDockerShortLivedProcesses(t *testing.T) {
	testutil.RequireDocker(t)
	res := &dockerResolver{}
	// The anchor shell sleeps; after 2 s it starts three CPU burners that live 2 s under a
	// 0.2 CPU limit, reaps them and goes back to sleep.
	id := runContainer(t, "--cpus", "0.2", testutil.DockerImage, "sh", "-c",
		"sleep 2; for i in 1 2 3; do timeout 2 sh -c 'while :; do :; done' & done; wait; while :; do sleep 1; done")
	res.add(id)
	c := newTestCollector(t, DefaultConfig(), res)
	mustCollect(t, c) // before the burners start
	d0, ok := c.ContainerDelays(containers.ID("/docker/" + id))
	if !ok {
		t.Fatal("container not collected")
	}
	time.Sleep(5500 * time.Millisecond) // burners started and gone
	mustCollect(t, c)
	d1, _ := c.ContainerDelays(containers.ID("/docker/" + id))
	t.Logf("cpu delay %.3fs → %.3fs; status %+v", d0.CPU, d1.CPU, c.Status().Counters)
	if n := c.Status().Counters.Exits; n < 3 {
		t.Errorf("%d exits folded into containers, want ≥ 3 (the burners)", n)
	}
	if d1.CPU-d0.CPU < 1 {
		t.Fatalf("burners that lived between two collections added %.3fs of CPU delay, want ≥ 1s", d1.CPU-d0.CPU)
	}
}

// A socket buffer too small for a burst of exits overruns; the listener counts it and goes on.
func TestExitListenerOverrun(t *testing.T) {
	requireTaskstats(t)
	l, err := ListenExits("/proc")
	testutil.SkipUnlessPrivileged(t, err == nil, "exit listener: %v", err)
	if err := l.conn.SetReadBuffer(1); err != nil { // the kernel rounds it up to its minimum
		t.Fatal(err)
	}
	// Not receiving yet: 50 exits pile up in a buffer that holds a couple.
	if out, err := exec.Command("/bin/sh", "-c", "for i in $(seq 50); do /bin/true; done").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	received := make(chan struct{}, 1000)
	done := make(chan error, 1)
	go func() {
		done <- l.Run(func(*Reply) {
			select {
			case received <- struct{}{}:
			default:
			}
		})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for l.Overruns() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The listener still works after the overrun.
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-received:
	case <-time.After(5 * time.Second):
		t.Error("nothing received after the overrun")
	}
	l.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if l.Overruns() == 0 {
		t.Fatal("no overrun counted")
	}
	t.Logf("overruns %d", l.Overruns())
}

// fakeProcRoot returns a proc root whose 1/ns/net is target.
func fakeProcRoot(t *testing.T, target string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(root+"/1/ns", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, root+"/1/ns/net"); err != nil {
		t.Fatal(err)
	}
	return root
}

// The socket is opened in whatever namespace <proc_root>/1/ns/net is: the agent's own (no
// setns needed), another one (entered on a locked thread), or none readable (own, with a note).
func TestDialNamespaces(t *testing.T) {
	requireTaskstats(t)
	t.Run("same namespace as the agent", func(t *testing.T) {
		c, err := Dial(fakeProcRoot(t, "/proc/self/ns/net"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ns := c.Namespace(); !ns.Host || ns.Note != "" {
			t.Fatalf("namespace %+v", ns)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		c, err := Dial(fakeProcRoot(t, "/nonexistent/net"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ns := c.Namespace(); ns.Host || !strings.Contains(ns.Note, "agent's own network namespace") {
			t.Fatalf("namespace %+v", ns)
		}
		if _, err := c.TGID(uint32(os.Getpid())); err != nil { // ours is the host's here
			t.Fatal(err)
		}
	})
	t.Run("another namespace is entered", func(t *testing.T) {
		const name = "codexray-taskstats-test"
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			testutil.SkipUnlessPrivileged(t, false, "ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
		root := fakeProcRoot(t, "/run/netns/"+name)
		l, err := ListenExits(root)
		if err != nil {
			t.Fatal(err)
		}
		if ns := l.Namespace(); !ns.Host {
			t.Fatalf("namespace %+v", ns)
		}
		// Queries answer in any namespace, but the kernel delivers exit notifications in the
		// initial one only: a listener that really sits in the new namespace hears nothing.
		got := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- l.Run(func(*Reply) {
				select {
				case got <- struct{}{}:
				default:
				}
			})
		}()
		for range 5 {
			if err := exec.Command("/bin/true").Run(); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-got:
			t.Error("exit notification received by a socket outside the initial network namespace")
		case <-time.After(time.Second):
		}
		l.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The thread that entered the namespace went back (or died): a new listener opened
		// from this goroutine's namespace hears exits again.
		TestExitListener(t)
	})
}
