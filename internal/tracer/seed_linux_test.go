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
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

const seedHelperEnv = "CODEXRAY_TEST_SEED"

// seedHelper is the child of TestTracerSeedsExistingSockets (see TestMain). Once moved into
// its cgroup ("go" on stdin) it listens on 127.0.0.1 and connects to each address of addrs
// (comma-separated), prints "<listen address> <local address of each connection>...", then
// closes the connections at "close" and exits at end of input.
func seedHelper(addrs string) int {
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ln.Close()
	out := []string{ln.Addr().String()}
	var conns []net.Conn
	for _, addr := range strings.Split(addrs, ",") {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		conns = append(conns, c)
		out = append(out, c.LocalAddr().String())
	}
	fmt.Println(strings.Join(out, " "))
	if _, err := in.ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, c := range conns {
		c.Close()
	}
	fmt.Println("closed")
	_, _ = io.Copy(io.Discard, in)
	return 0
}

// TestTracerSeedsExistingSockets: a listener and connections (IPv4 and IPv6) opened by a child
// in a cgroup of its own before the tracer starts are found at start, attributed to that
// cgroup's container, and the kernel side reports their close, which the tracer applies once.
func TestTracerSeedsExistingSockets(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(unifiedRoot, fmt.Sprintf("codexray-test-seed-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing cgroup: %v", err)
		}
	})
	servers := []net.Listener{echoServer(t)}
	if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln6.Close()
		servers = append(servers, echoServer6(t))
	} else {
		t.Logf("no IPv6 loopback, IPv4 only: %v", err)
	}
	var dsts []string
	for _, s := range servers {
		dsts = append(dsts, s.Addr().String())
	}

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), seedHelperEnv+"="+strings.Join(dsts, ","))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("moving the child into its cgroup: %v", err)
	}
	fmt.Fprintln(stdin, "go")
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 1+len(dsts) {
		t.Fatalf("child printed %q", line)
	}
	listenAddr := fields[0]

	// Only now does the tracer start: everything above happened before it.
	child := &containers.Container{ID: "codexray-test-seed"}
	tr, _ := startTracer(t, func(o *Options) {
		reg := o.Resolver.(*liveRegistry)
		reg.docker[cgroupInode(t, dir)] = child
	})

	s := waitStats(t, tr, child.ID, 5*time.Second, "seeded listener and connections", func(s *ContainerStats) bool {
		for _, dst := range dsts {
			if d, ok := destOf(s, dst); !ok || d.ActiveConnections != 1 {
				return false
			}
		}
		return true
	})
	for _, dst := range dsts {
		d, _ := destOf(&s, dst)
		if d.SuccessfulConnects != 0 || d.ActualDestination != dst {
			t.Errorf("seeded connection counted as a connect or NATed: %+v", d)
		}
	}
	if !hasOpenListen(&s, listenAddr) {
		t.Errorf("listen address %s not open: %+v", listenAddr, s.Listens)
	}
	// The test's accepted ends of those connections are inbound: no destination of its own.
	var self ContainerStats
	if tr.ContainerStats(selfContainer.ID, &self) {
		for i := range dsts {
			if _, ok := destOf(&self, fields[1+i]); ok {
				t.Errorf("accepted connection from %s seeded as outbound", fields[1+i])
			}
		}
	}

	fmt.Fprintln(stdin, "close")
	if line, err := out.ReadString('\n'); err != nil || line != "closed\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	waitStats(t, tr, child.ID, 5*time.Second, "close of seeded connections from the kernel side", func(s *ContainerStats) bool {
		for _, dst := range dsts {
			if d, ok := destOf(s, dst); !ok || d.ActiveConnections != 0 || d.SuccessfulConnects != 0 {
				return false
			}
		}
		return true
	})
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	exited = true
	waitStats(t, tr, child.ID, 5*time.Second, "listener closed by the kernel side", func(s *ContainerStats) bool {
		return !hasOpenListen(s, listenAddr) // it was open above
	})
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, dst := range dsts {
		for id, c := range tr.connections {
			if c.seeded != nil && c.key.dst.String() == dst {
				t.Errorf("seeded connection %#x to %s still open", id, dst)
			}
		}
	}
}

func hasOpenListen(s *ContainerStats, addr string) bool {
	for _, l := range s.Listens {
		if l.Address == addr && l.Open {
			return true
		}
	}
	return false
}

// echoServer6 is echoServer on the IPv6 loopback.
func echoServer6(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln
}

// BenchmarkSeedHostProc reads this machine's own /proc with 1,000 extra loopback connections
// open (2,000 established sockets and a listener), without telling a kernel side.
func BenchmarkSeedHostProc(b *testing.B) {
	testutil.RequireRoot(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	defer func() { ln.Close(); <-done }()
	go func() {
		defer close(done)
		var accepted []net.Conn
		defer func() {
			for _, c := range accepted {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted = append(accepted, c)
		}
	}()
	var dialled []net.Conn
	for i := 0; i < 1000; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		dialled = append(dialled, c)
	}
	defer func() {
		for _, c := range dialled {
			c.Close()
		}
	}()
	self := &containers.Container{ID: "self"}
	reg := &fakeRegistry{byPID: map[uint32]*containers.Container{uint32(os.Getpid()): self}}
	b.ReportAllocs()
	for b.Loop() {
		tr := New(Options{Config: DefaultConfig(), Resolver: reg, EphemeralPorts: PortRange{Min: 1, Max: 1}})
		res, err := tr.seed("/proc", nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.Connections < 1000 {
			b.Fatalf("result %+v", res)
		}
	}
}
