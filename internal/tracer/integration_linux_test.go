package tracer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

const unifiedRoot = "/sys/fs/cgroup/unified"

// cgroupInode is what bpf_get_current_cgroup_id returns for processes in dir.
func cgroupInode(t testing.TB, dir string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatalf("stat %s: %v", dir, err)
	}
	return st.Ino
}

// ownCgroupDir is this test process's cgroup v2 directory.
func ownCgroupDir(t testing.TB) string {
	t.Helper()
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return filepath.Join(unifiedRoot, rest)
		}
	}
	t.Fatal("no cgroup v2 entry in /proc/self/cgroup")
	return ""
}

// liveRegistry attributes the test's own cgroup to container "self" and every docker cgroup
// to "/docker/<id>", resolving docker cgroups on demand as the real registry does.
type liveRegistry struct {
	mu     sync.Mutex
	self   uint64
	docker map[uint64]*containers.Container
	// onlyDocker, when not nil, limits the on-demand resolution to these docker container ids:
	// the host is shared, and a test that counts events per container must not see other
	// runs' containers.
	onlyDocker map[string]bool
}

var selfContainer = &containers.Container{ID: "self"}

func (r *liveRegistry) ContainerIDByCgroupID(id uint64) (containers.ID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == r.self {
		return selfContainer.ID, true
	}
	if c, ok := r.docker[id]; ok {
		return c.ID, true
	}
	dirs, _ := filepath.Glob(filepath.Join(unifiedRoot, "docker", "*"))
	for _, d := range dirs {
		var st syscall.Stat_t
		if syscall.Stat(d, &st) == nil && st.Ino == id {
			if r.onlyDocker != nil && !r.onlyDocker[filepath.Base(d)] {
				return "", false
			}
			c := &containers.Container{ID: containers.ID("/docker/" + filepath.Base(d))}
			r.docker[id] = c
			return c.ID, true
		}
	}
	return "", false
}

// ContainerIDByPID resolves the process's cgroup v2 directory, as the real registry does: the
// tracer asks it for the holders of sockets that existed at start.
func (r *liveRegistry) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(unifiedRoot, rest), &st) != nil {
				return "", false
			}
			return r.ContainerIDByCgroupID(st.Ino)
		}
	}
	return "", false
}

func startTracer(t *testing.T, mutate func(*Options)) (*Tracer, *liveRegistry) {
	t.Helper()
	testutil.RequireRoot(t)
	reg := &liveRegistry{self: cgroupInode(t, ownCgroupDir(t)), docker: map[uint64]*containers.Container{}}
	opts := Options{Config: DefaultConfig(), Resolver: reg, EphemeralPorts: PortRange{Min: 1, Max: 1}}
	if mutate != nil {
		mutate(&opts)
	}
	tr := New(opts)
	err := tr.Start()
	testutil.SkipUnlessPrivileged(t, err == nil, "starting tracer: %v", err)
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr, reg
}

// waitStats refreshes until cond holds for container id, or fails after timeout.
func waitStats(t *testing.T, tr *Tracer, id containers.ID, timeout time.Duration, what string, cond func(*ContainerStats) bool) ContainerStats {
	t.Helper()
	var s ContainerStats
	deadline := time.Now().Add(timeout)
	for {
		if err := tr.Refresh(); err != nil {
			t.Fatal(err)
		}
		if tr.ContainerStats(id, &s) && cond(&s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; state %+v; tracer stats %+v", what, timeout, s, tr.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func destOf(s *ContainerStats, dst string) (DestinationStats, bool) {
	for _, d := range s.Destinations {
		if d.Destination == dst {
			return d, true
		}
	}
	return DestinationStats{}, false
}

// echoServer accepts connections and echoes half of what it reads.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n/2]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

func TestTracerLoopbackTCP(t *testing.T) {
	tr, _ := startTracer(t, nil)
	ln := echoServer(t)
	dst := ln.Addr().String()

	const short = 5
	for i := 0; i < short; i++ {
		c, err := net.Dial("tcp", dst)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	s := waitStats(t, tr, selfContainer.ID, 5*time.Second, "successful connects", func(s *ContainerStats) bool {
		d, ok := destOf(s, dst)
		return ok && d.SuccessfulConnects == short && d.ActiveConnections == 0
	})
	d, _ := destOf(&s, dst)
	if d.ActualDestination != dst || d.ConnectionTime <= 0 || d.ConnectionTime > short*time.Second {
		t.Errorf("destination %+v", d)
	}

	// A long-lived connection: counters grow while it is open.
	c, err := net.Dial("tcp", dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange := func(n int) {
		if _, err := c.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, n/2)); err != nil {
			t.Fatal(err)
		}
	}
	exchange(1000)
	waitStats(t, tr, selfContainer.ID, 5*time.Second, "bytes of the open connection", func(s *ContainerStats) bool {
		d, _ := destOf(s, dst)
		return d.ActiveConnections == 1 && d.BytesSent == 1000 && d.BytesReceived == 500
	})
	exchange(4000)
	s = waitStats(t, tr, selfContainer.ID, 5*time.Second, "bytes growing while open", func(s *ContainerStats) bool {
		d, _ := destOf(s, dst)
		return d.ActiveConnections == 1 && d.BytesSent == 5000 && d.BytesReceived == 2500
	})
	var rtt time.Duration
	for _, l := range s.Latency {
		if l.DestinationIP == "127.0.0.1" {
			rtt = l.RTT
		}
	}
	if rtt <= 0 || rtt > time.Second {
		t.Errorf("latency to 127.0.0.1 = %s (%+v)", rtt, s.Latency)
	}

	// The listener and its inbound connections belong to the same cgroup.
	for _, l := range s.Listens {
		if l.Address == dst {
			if !l.Open || l.InboundConnections != short+1 {
				t.Errorf("listen %+v", l)
			}
			goto listened
		}
	}
	t.Errorf("listen address %s missing: %+v", dst, s.Listens)
listened:

	// A closed port: failed connect.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	if c, err := net.Dial("tcp", closedAddr); err == nil {
		c.Close()
		t.Fatal("dial to a closed port succeeded")
	}
	waitStats(t, tr, selfContainer.ID, 5*time.Second, "failed connect", func(s *ContainerStats) bool {
		d, ok := destOf(s, closedAddr)
		return ok && d.FailedConnects == 1 && d.SuccessfulConnects == 0
	})
}

func iptables(t *testing.T, table string, spec ...string) {
	t.Helper()
	out, err := exec.Command("iptables", append([]string{"-t", table, "-I"}, spec...)...).CombinedOutput()
	testutil.SkipUnlessPrivileged(t, err == nil, "iptables: %v: %s", err, out)
	t.Cleanup(func() {
		if out, err := exec.Command("iptables", append([]string{"-t", table, "-D"}, spec...)...).CombinedOutput(); err != nil {
			t.Errorf("removing iptables rule: %v: %s", err, out)
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestTracerRetransmits(t *testing.T) {
	tr, _ := startTracer(t, nil)
	port := freePort(t)
	iptables(t, "filter", "INPUT", "-p", "tcp", "-d", testutil.RuleIP, "--dport", strconv.Itoa(port), "-j", "DROP")
	dst := net.JoinHostPort(testutil.RuleIP, strconv.Itoa(port))
	// SYN retransmits at ~1 s and ~3 s
	if c, err := net.DialTimeout("tcp", dst, 3500*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("dial through a DROP rule succeeded")
	}
	waitStats(t, tr, selfContainer.ID, 5*time.Second, "SYN retransmits", func(s *ContainerStats) bool {
		d, ok := destOf(s, dst)
		return ok && d.Retransmits >= 2
	})
}

func TestTracerActualDestinationDNAT(t *testing.T) {
	tr, _ := startTracer(t, nil)
	ln := echoServer(t)
	target := ln.Addr().(*net.TCPAddr).Port
	dialled := freePort(t)
	iptables(t, "nat", "OUTPUT", "-p", "tcp", "-d", testutil.RuleIP, "--dport", strconv.Itoa(dialled),
		"-j", "DNAT", "--to-destination", fmt.Sprintf("127.0.0.1:%d", target))
	dst := net.JoinHostPort(testutil.RuleIP, strconv.Itoa(dialled))
	c, err := net.Dial("tcp", dst)
	if err != nil {
		t.Fatalf("dial through DNAT: %v", err)
	}
	defer c.Close()
	s := waitStats(t, tr, selfContainer.ID, 5*time.Second, "NATed connect", func(s *ContainerStats) bool {
		d, ok := destOf(s, dst)
		return ok && d.SuccessfulConnects == 1
	})
	d, _ := destOf(&s, dst)
	if want := fmt.Sprintf("127.0.0.1:%d", target); d.ActualDestination != want {
		t.Errorf("actual_destination = %s, want %s", d.ActualDestination, want)
	}
}

func TestTracerOOMKill(t *testing.T) {
	testutil.RequireDocker(t)
	tr, reg := startTracer(t, nil)
	// The host is shared: other runs OOM-kill containers of their own meanwhile, and those stay
	// unattributed here.
	reg.mu.Lock()
	reg.onlyDocker = map[string]bool{}
	reg.mu.Unlock()
	// The victim allocates only once its cgroup is known. The kill's event may be applied after
	// docker has removed the dead container's cgroup (the reader seeds first, then polls the
	// ring buffer), and then only a cgroup id known before attributes it, as the real
	// registry knows a container from its scans and exec events before it dies.
	out, err := exec.Command("docker", "run", "-d", "--label", "codexray-test=1", "--network", "none",
		"-m", "20m", "--memory-swap", "20m", testutil.DockerImage,
		"sh", "-c", "until [ -e /tmp/go ]; do sleep 0.05; done; tail /dev/zero").Output()
	if err != nil {
		t.Fatalf("docker run: %v", err)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	reg.mu.Lock()
	reg.onlyDocker[id] = true
	reg.mu.Unlock()
	out, err = exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", id).Output()
	if err != nil {
		t.Fatalf("docker inspect: %v", err)
	}
	pid, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 32)
	if err != nil {
		t.Fatalf("container pid %q: %v", out, err)
	}
	if got, ok := reg.ContainerIDByPID(uint32(pid)); !ok || got != containers.ID("/docker/"+id) {
		t.Fatalf("the victim's cgroup resolves to %q, %v", got, ok)
	}
	if out, err := exec.Command("docker", "exec", id, "touch", "/tmp/go").CombinedOutput(); err != nil {
		t.Fatalf("docker exec: %v\n%s", err, out)
	}
	want := containers.ID("/docker/" + id)
	waitStats(t, tr, want, 30*time.Second, "OOM kill", func(s *ContainerStats) bool { return s.OOMKills == 1 })

	// The kernel event can be faster than dockerd's bookkeeping: wait for the exit.
	var status string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}} {{.State.OOMKilled}}", id).Output()
		if status = strings.TrimSpace(string(out)); strings.HasPrefix(status, "false") {
			break
		}
	}
	if status != "false true" {
		t.Errorf("docker says running/OOMKilled = %q", status)
	}
	// Only that container: no other state carries an OOM kill.
	for _, id := range tr.ContainerIDs() {
		var s ContainerStats
		if tr.ContainerStats(id, &s) && s.OOMKills > 0 && id != want {
			t.Errorf("OOM kill attributed to %s too", id)
		}
	}
}

func TestTracerStartTwice(t *testing.T) {
	tr, _ := startTracer(t, nil)
	if err := tr.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
}

// Drain applies what the kernel wrote before it returns: the connects made just before a stop
// are counted by the last collection, though the reader would see them only at its next poll
// (the kernel side wakes it only when much is pending).
func TestTracerDrainAppliesPendingEvents(t *testing.T) {
	tr, _ := startTracer(t, nil)
	<-tr.Seeded()
	ln := echoServer(t)
	dst := ln.Addr().String()
	for round := range 5 {
		const n = 20
		for i := 0; i < n; i++ {
			c, err := net.Dial("tcp", dst)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		tr.Drain(time.Second)
		var s ContainerStats
		tr.ContainerStats(selfContainer.ID, &s)
		if d, _ := destOf(&s, dst); d.SuccessfulConnects != uint64(n*(round+1)) {
			t.Fatalf("round %d: %d connects applied right after Drain, %d made", round, d.SuccessfulConnects, n*(round+1))
		}
	}
}
