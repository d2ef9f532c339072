package tracer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/conntrack"
	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// The service-map tests build a node of their own: a "node" network namespace (the host's, for
// the tracer) with a bridge, pod namespaces wired to it by veth pairs, a Service as an iptables
// DNAT rule in the node's namespace (as kube-proxy sets it), and every workload a process in a
// cgroup of its own (a container for the tracer). The tracer reads conntrack in the node's
// namespace, as an agent with host networking does. What they check is what Coroot needs to
// draw an edge: a client's destination (or, behind NAT, actual_destination) equals a
// listen_addr its server reports.

const netHelperEnv = "CODEXRAY_TEST_NET"

// netHelper is a workload process of the service-map tests (see TestMain). It reads commands
// on stdin and answers each with one line:
//
//	listen ADDR  listens (IPv4 only for an IPv4 address; dual-stack for [::]) and echoes every
//	             byte it reads on accepted connections: "port N"
//	dial ADDR    connects, exchanges one byte and keeps the connection open: "ok" or "error …"
//
// It exits at the end of its input.
func netHelper() int {
	in := bufio.NewScanner(os.Stdin)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "listen":
			network := "tcp"
			if ap, err := netip.ParseAddrPort(arg); err == nil && ap.Addr().Is4() {
				network = "tcp4" // Go would listen on [::] for "tcp" and 0.0.0.0
			}
			ln, err := net.Listen(network, arg)
			if err != nil {
				fmt.Println("error", err)
				continue
			}
			go serveEcho(ln)
			fmt.Println("port", ln.Addr().(*net.TCPAddr).Port)
		case "dial":
			c, err := net.DialTimeout("tcp", arg, 5*time.Second)
			if err == nil {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err = c.Write([]byte{'x'}); err == nil {
					_, err = io.ReadFull(c, make([]byte, 1))
				}
			}
			if err != nil {
				fmt.Println("error", err)
				continue
			}
			conns = append(conns, c)
			fmt.Println("ok")
		default:
			fmt.Println("error unknown command", cmd)
		}
	}
	return 0
}

func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// testCgroup creates a cgroup v2 directory for one workload, registered as container id, and
// removes it at the end (after the processes in it were stopped: cleanups run last first).
func testCgroup(t *testing.T, reg *liveRegistry, name string) (dir string, id containers.ID) {
	t.Helper()
	dir = filepath.Join(unifiedRoot, fmt.Sprintf("codexray-test-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup: %v", err)
	}
	t.Cleanup(func() {
		// the killed processes leave the cgroup asynchronously
		var err error
		for i := 0; i < 100; i++ {
			if err = os.Remove(dir); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("removing cgroup: %v", err)
	})
	id = containers.ID("/test/" + name)
	reg.mu.Lock()
	reg.docker[cgroupInode(t, dir)] = &containers.Container{ID: id}
	reg.mu.Unlock()
	return dir, id
}

// intoCgroup moves a just-started process into cgroup dir, or kills it and fails.
func intoCgroup(t *testing.T, cmd *exec.Cmd, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("moving process %d into %s: %v", cmd.Process.Pid, dir, err)
	}
}

// workload is a netHelper process in a namespace and a cgroup of its own.
type workload struct {
	id  containers.ID
	in  io.WriteCloser
	out *bufio.Reader
}

func startWorkload(t *testing.T, reg *liveRegistry, ns *testutil.NetNS, name string) *workload {
	t.Helper()
	dir, id := testCgroup(t, reg, name)
	cmd := ns.Command(os.Args[0])
	cmd.Env = append(os.Environ(), netHelperEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	intoCgroup(t, cmd, dir) // before it opens any socket: it waits for a command
	return &workload{id: id, in: in, out: bufio.NewReader(out)}
}

func (w *workload) do(t *testing.T, format string, args ...any) string {
	t.Helper()
	cmd := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintln(w.in, cmd); err != nil {
		t.Fatalf("%s: %s: %v", w.id, cmd, err)
	}
	line, err := w.out.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %s: %v", w.id, cmd, err)
	}
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "error") {
		t.Fatalf("%s: %s: %s", w.id, cmd, line)
	}
	return line
}

func (w *workload) listen(t *testing.T, addr string) uint16 {
	t.Helper()
	var port uint16
	if _, err := fmt.Sscanf(w.do(t, "listen %s", addr), "port %d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

// inNetNS runs fn on an OS thread inside ns; the thread is thrown away if it cannot return to
// its own namespace.
func inNetNS(t *testing.T, ns *testutil.NetNS, fn func()) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		var own, target int
		if own, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return
		}
		defer unix.Close(own)
		if target, err = unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return
		}
		defer unix.Close(target)
		if err = unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			return
		}
		fn()
		if unix.Setns(own, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	wg.Wait()
	if err != nil {
		t.Fatalf("entering %s: %v", ns.Name, err)
	}
}

// testNode is the node the service-map tests build: its namespace (the tracer's "host") with
// bridge br0 at 10.201.0.1/24, and pods attached to it.
type testNode struct {
	ns  *testutil.NetNS
	tr  *Tracer
	reg *liveRegistry
	nat *conntrack.Resolver
}

// newTestNode builds the node and starts the tracer on it.
func newTestNode(t *testing.T) *testNode {
	t.Helper()
	n := buildTestNode(t)
	n.start(t)
	return n
}

// buildTestNode builds the node; its workloads are attributed from the start, the tracer
// starts at start.
func buildTestNode(t *testing.T) *testNode {
	t.Helper()
	testutil.RequireRoot(t)
	node := testutil.NewNetNS(t, "node")
	node.IP(t, "link", "add", "br0", "type", "bridge")
	node.IP(t, "addr", "add", "10.201.0.1/24", "dev", "br0")
	node.IP(t, "link", "set", "br0", "up")
	node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// A Service's backend on the client's bridge answers over the bridge: the reply must pass
	// the node's conntrack to be un-NATed, as kube-proxy requires.
	node.Run(t, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
	var nat *conntrack.Resolver
	var natErr error
	inNetNS(t, node, func() { nat, natErr = conntrack.Open() })
	testutil.SkipUnlessPrivileged(t, natErr == nil, "conntrack in the node's namespace: %v", natErr)
	t.Cleanup(func() { _ = nat.Close() })
	return &testNode{ns: node, nat: nat, reg: &liveRegistry{self: cgroupInode(t, ownCgroupDir(t)), docker: map[uint64]*containers.Container{}}}
}

// start starts the tracer, attributing through the node's registry, and waits until it has
// read the sockets already open.
func (n *testNode) start(t *testing.T) {
	t.Helper()
	tr, _ := startTracer(t, func(o *Options) {
		o.Resolver = n.reg
		o.NAT = n.nat
		o.HostNetNS = n.ns.Inode
	})
	select {
	case <-tr.Seeded():
	case <-time.After(30 * time.Second):
		t.Fatal("the sockets open before start were never read")
	}
	n.tr = tr
}

// pod creates a pod namespace; wire attaches it to the node's bridge as ip (in 10.201.0.0/24).
func (n *testNode) pod(t *testing.T, name string) *testutil.NetNS {
	t.Helper()
	return testutil.NewNetNS(t, name)
}

func (n *testNode) wire(t *testing.T, pod *testutil.NetNS, hostSide, ip string) {
	t.Helper()
	testutil.Veth(t, n.ns, hostSide, pod, "eth0")
	n.ns.IP(t, "link", "set", hostSide, "master", "br0")
	pod.IP(t, "addr", "add", ip+"/24", "dev", "eth0")
	pod.IP(t, "route", "add", "default", "via", "10.201.0.1")
}

// podPair wires a server pod (10.201.0.2) and a client pod (10.201.0.3) to the node and starts
// the server listening on 0.0.0.0. It returns the server, its port and the client's namespace.
func (n *testNode) podPair(t *testing.T) (*workload, uint16, *testutil.NetNS) {
	t.Helper()
	srvNS, cliNS := n.pod(t, "srv"), n.pod(t, "cli")
	n.wire(t, srvNS, "vsrv", "10.201.0.2")
	n.wire(t, cliNS, "vcli", "10.201.0.3")
	server := startWorkload(t, n.reg, srvNS, "server")
	port := server.listen(t, "0.0.0.0:0")
	return server, port, cliNS
}

// listenAddrs returns the open listen addresses a container reports, by proxy label.
func listenAddrs(s *ContainerStats, proxy string) []string {
	var out []string
	for _, l := range s.Listens {
		if l.Open && l.Proxy == proxy {
			out = append(out, l.Address)
		}
	}
	slices.Sort(out)
	return out
}

// waitListener waits until the tracer knows container id's open listener at addr (as the
// socket is bound), whatever it reports for it.
func (n *testNode) waitListener(t *testing.T, id containers.ID, addr string) {
	t.Helper()
	key := netip.MustParseAddrPort(addr)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n.tr.mu.Lock()
		s := n.tr.containers[id]
		open := s != nil && s.listens[key] != nil && s.listens[key].open && s.listens[key].listener
		n.tr.mu.Unlock()
		if open {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the tracer never saw the listener on %s", id, addr)
		}
	}
}

// waitListens refreshes until container id reports exactly want (proxy "" or ProxyDockerd)
// among its listen addresses with port.
func (n *testNode) waitListens(t *testing.T, id containers.ID, proxy string, port uint16, want ...string) {
	t.Helper()
	slices.Sort(want)
	suffix := fmt.Sprintf(":%d", port)
	got := func(s *ContainerStats) []string {
		var out []string
		for _, a := range listenAddrs(s, proxy) {
			if strings.HasSuffix(a, suffix) {
				out = append(out, a)
			}
		}
		return out
	}
	var last []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := n.tr.Refresh(); err != nil {
			t.Fatal(err)
		}
		var s ContainerStats
		n.tr.ContainerStats(id, &s)
		if last = got(&s); slices.Equal(last, want) || len(want) == 0 && len(last) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: listen addresses (proxy %q) on port %d: %v, want %v; all: %+v; stats %+v", id, proxy, port, last, want, s.Listens, n.tr.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDestination waits until container id reports a successful connect to dst and returns
// its actual destination.
func (n *testNode) waitDestination(t *testing.T, id containers.ID, dst string) DestinationStats {
	t.Helper()
	s := waitStats(t, n.tr, id, 10*time.Second, "connect to "+dst, func(s *ContainerStats) bool {
		d, ok := destOf(s, dst)
		return ok && d.SuccessfulConnects > 0
	})
	d, _ := destOf(&s, dst)
	return d
}

// reports asserts that container id reports addr as an open listen address with proxy.
func (n *testNode) reports(t *testing.T, id containers.ID, proxy, addr, what string) {
	t.Helper()
	if err := n.tr.Refresh(); err != nil {
		t.Fatal(err)
	}
	var s ContainerStats
	n.tr.ContainerStats(id, &s)
	if !slices.Contains(listenAddrs(&s, proxy), addr) {
		t.Errorf("%s: %s is not a listen_addr (proxy %q) of %s: %+v", what, addr, proxy, id, s.Listens)
	}
}

// TestServiceMapContainerToContainer: a pod dials another pod's address; the server listens on
// 0.0.0.0 and gets its address only after it started listening (a namespace wired late, then
// readdressed while the listener lives on).
func TestServiceMapContainerToContainer(t *testing.T) {
	n := newTestNode(t)
	srvNS, cliNS := n.pod(t, "srv"), n.pod(t, "cli")
	server := startWorkload(t, n.reg, srvNS, "server")
	port := server.listen(t, "0.0.0.0:0")
	// Only loopback so far, and a pod's loopback names nothing outside it.
	n.waitListener(t, server.id, fmt.Sprintf("0.0.0.0:%d", port))
	n.waitListens(t, server.id, "", port)

	n.wire(t, srvNS, "vsrv", "10.201.0.2")
	n.waitListens(t, server.id, "", port, fmt.Sprintf("10.201.0.2:%d", port))

	n.wire(t, cliNS, "vcli", "10.201.0.3")
	client := startWorkload(t, n.reg, cliNS, "client")
	dst := fmt.Sprintf("10.201.0.2:%d", port)
	client.do(t, "dial %s", dst)
	d := n.waitDestination(t, client.id, dst)
	if d.ActualDestination != dst {
		t.Errorf("actual_destination %s, want %s (no NAT)", d.ActualDestination, dst)
	}
	n.reports(t, server.id, "", d.Destination, "container to container")

	// The pod is readdressed; the listener outlives the change.
	srvNS.Run(t, "sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1")
	srvNS.IP(t, "addr", "add", "10.201.0.12/24", "dev", "eth0")
	srvNS.IP(t, "addr", "del", "10.201.0.2/24", "dev", "eth0")
	srvNS.IP(t, "route", "replace", "default", "via", "10.201.0.1")
	n.waitListens(t, server.id, "", port, fmt.Sprintf("10.201.0.12:%d", port))
	dst = fmt.Sprintf("10.201.0.12:%d", port)
	client.do(t, "dial %s", dst)
	d = n.waitDestination(t, client.id, dst)
	n.reports(t, server.id, "", d.Destination, "after readdressing")

	// The client pod's own loopback traffic is not a destination (as in coroot-node-agent).
	local := client.listen(t, "127.0.0.1:0")
	client.do(t, "dial 127.0.0.1:%d", local)
	n.waitListener(t, client.id, fmt.Sprintf("127.0.0.1:%d", local))
	n.waitListens(t, client.id, "", local) // nor is its loopback listener reported
	var s ContainerStats
	n.tr.ContainerStats(client.id, &s)
	if d, ok := destOf(&s, fmt.Sprintf("127.0.0.1:%d", local)); ok {
		t.Errorf("a pod's loopback connection counted: %+v", d)
	}
}

// TestServiceMapContainerToHost: a pod dials the node's address; the node's process listens on
// [::] and is reported at every address of the node's namespace, loopback included.
func TestServiceMapContainerToHost(t *testing.T) {
	n := newTestNode(t)
	hostProc := startWorkload(t, n.reg, n.ns, "hostproc")
	port := hostProc.listen(t, "[::]:0")
	n.waitListens(t, hostProc.id, "", port,
		fmt.Sprintf("10.201.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port))

	cliNS := n.pod(t, "cli")
	n.wire(t, cliNS, "vcli", "10.201.0.3")
	client := startWorkload(t, n.reg, cliNS, "client")
	dst := fmt.Sprintf("10.201.0.1:%d", port)
	client.do(t, "dial %s", dst)
	d := n.waitDestination(t, client.id, dst)
	n.reports(t, hostProc.id, "", d.ActualDestination, "container to host")

	// The node's own loopback traffic counts: its loopback listens are reported too.
	local := fmt.Sprintf("127.0.0.1:%d", port)
	hostProc.do(t, "dial %s", local)
	d = n.waitDestination(t, hostProc.id, local)
	n.reports(t, hostProc.id, "", d.Destination, "host loopback")
}

// TestServiceMapServiceNAT: a pod dials a Service IP that the node DNATs to a pod; the
// client's actual_destination is the backend's listen address.
func TestServiceMapServiceNAT(t *testing.T) {
	n := newTestNode(t)
	server, port, cliNS := n.podPair(t)
	backend := fmt.Sprintf("10.201.0.2:%d", port)
	n.waitListens(t, server.id, "", port, backend)

	const service = "10.202.0.10:80"
	n.ns.Run(t, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-d", "10.202.0.10", "--dport", "80",
		"-j", "DNAT", "--to-destination", backend)
	client := startWorkload(t, n.reg, cliNS, "client")
	client.do(t, "dial %s", service)
	d := n.waitDestination(t, client.id, service)
	if d.ActualDestination != backend {
		t.Fatalf("actual_destination %s, want the backend %s", d.ActualDestination, backend)
	}
	n.reports(t, server.id, "", d.ActualDestination, "Service NAT")
}

// TestServiceMapDockerProxy: a published port served by docker-proxy, dockerd's userland
// proxy. The testbed's dockerd runs without networking (--bridge=none, --iptables=false: its
// containers use --network none), so it never starts one; the test starts the real
// /usr/sbin/docker-proxy with dockerd's arguments itself, in a cgroup of its own, forwarding
// the node's port to a pod. A pod dialling the node's address reaches the pod behind the proxy
// and Coroot needs that pod to report the address with proxy="dockerd".
func TestServiceMapDockerProxy(t *testing.T) {
	n := newTestNode(t)
	server, port, cliNS := n.podPair(t)
	n.waitListens(t, server.id, "", port, fmt.Sprintf("10.201.0.2:%d", port))

	// The node's namespace is the test's own: any port is free there.
	const published = 18080
	proxyID, stop := n.dockerProxy(t, published, "10.201.0.2", port)
	// docker-proxy listens on the node's addresses and keeps them without the label.
	hostAddrs := []string{fmt.Sprintf("10.201.0.1:%d", published), fmt.Sprintf("127.0.0.1:%d", published)}
	n.waitListens(t, proxyID, "", published, hostAddrs...)
	// The pod it forwards to reports them with proxy="dockerd".
	n.waitListens(t, server.id, ProxyDockerd, published, hostAddrs...)

	client := startWorkload(t, n.reg, cliNS, "client")
	dst := fmt.Sprintf("10.201.0.1:%d", published)
	client.do(t, "dial %s", dst)
	d := n.waitDestination(t, client.id, dst)
	n.reports(t, server.id, ProxyDockerd, d.ActualDestination, "through docker-proxy")

	// The proxy stops: the pod no longer reports its addresses.
	stop()
	n.waitListens(t, server.id, ProxyDockerd, published)
	n.waitListens(t, server.id, "", port, fmt.Sprintf("10.201.0.2:%d", port))
}

// dockerProxy runs the real docker-proxy in the node's namespace, in a cgroup of its own,
// forwarding the node's port published to ip:port. It returns the proxy's container and a
// function that stops it.
func (n *testNode) dockerProxy(t *testing.T, published uint16, ip string, port uint16) (containers.ID, func()) {
	t.Helper()
	const dockerProxy = "/usr/sbin/docker-proxy"
	_, statErr := os.Stat(dockerProxy)
	testutil.SkipUnlessPrivileged(t, statErr == nil, "docker-proxy (Debian's docker.io) not installed: %v", statErr)
	dir, proxyID := testCgroup(t, n.reg, "dockerd")
	// sh waits until it is in its cgroup, then becomes docker-proxy (same pid). docker-proxy
	// reports readiness on fd 3, a pipe from dockerd, and closes it: without one it would
	// close its own listener.
	cmd := n.ns.Command("sh", "-c", `read go && exec "$0" "$@" 3>/dev/null`, dockerProxy, "-proto", "tcp",
		"-host-ip", "0.0.0.0", "-host-port", strconv.Itoa(int(published)),
		"-container-ip", ip, "-container-port", strconv.Itoa(int(port)))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	}
	t.Cleanup(stop)
	intoCgroup(t, cmd, dir)
	if _, err := fmt.Fprintln(in, "go"); err != nil {
		t.Fatal(err)
	}
	return proxyID, stop
}

// TestServiceMapAgentRestart: the workloads, the proxy and a connection exist before the
// tracer starts (an agent restarted on a busy node): their listen addresses are expanded and
// the open connection's destination matches, from the first collections on.
func TestServiceMapAgentRestart(t *testing.T) {
	n := buildTestNode(t)
	server, port, cliNS := n.podPair(t)
	const published = 18081
	proxyID, _ := n.dockerProxy(t, published, "10.201.0.2", port)
	client := startWorkload(t, n.reg, cliNS, "client")
	dst := fmt.Sprintf("10.201.0.2:%d", port)
	client.do(t, "dial %s", dst)
	// the proxy listens once it has read "go"
	proxied := fmt.Sprintf("10.201.0.1:%d", published)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if exec.Command("ip", "netns", "exec", n.ns.Name, "sh", "-c", fmt.Sprintf("ss -Hltn 'sport = :%d' | grep -q .", published)).Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("docker-proxy never listened")
		}
	}

	n.start(t)
	n.waitListens(t, server.id, "", port, dst)
	n.waitListens(t, server.id, ProxyDockerd, published, proxied, fmt.Sprintf("127.0.0.1:%d", published))
	n.waitListens(t, proxyID, "", published, proxied, fmt.Sprintf("127.0.0.1:%d", published))
	s := waitStats(t, n.tr, client.id, 10*time.Second, "the connection open before start", func(s *ContainerStats) bool {
		d, ok := destOf(s, dst)
		return ok && d.ActiveConnections == 1
	})
	d, _ := destOf(&s, dst)
	n.reports(t, server.id, "", d.ActualDestination, "connection open before start")
}
