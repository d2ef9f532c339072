package tracer

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/netns"
)

// Network namespaces of the listens tests: the host's (hostNS, of seed_test.go), db's and
// web's pods.
const (
	dbNS  = 4026532011
	webNS = 4026532012
)

// fakeAddresses answers NetNSAddresses from a map of namespaces, as netns.Reader would.
type fakeAddresses struct {
	mu    sync.Mutex
	addrs map[uint32][]netip.Addr
	err   map[uint32]error    // by namespace
	moved map[uint32]bool     // by pid: no longer in the namespace
	calls map[uint32][]uint32 // namespace → pids asked
}

func newFakeAddresses() *fakeAddresses {
	return &fakeAddresses{
		addrs: map[uint32][]netip.Addr{
			hostNS: addrList("127.0.0.1", "192.0.2.2", "::1", "fd00::2"),
			dbNS:   addrList("10.244.0.7", "127.0.0.1", "::1", "fd00:244::7"),
			webNS:  addrList("10.244.0.9", "127.0.0.1"),
		},
		err:   map[uint32]error{},
		moved: map[uint32]bool{},
		calls: map[uint32][]uint32{},
	}
}

func (f *fakeAddresses) Addresses(pid, ns uint32) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[ns] = append(f.calls[ns], pid)
	if f.moved[pid] {
		return nil, netns.ErrMoved
	}
	if err := f.err[ns]; err != nil {
		return nil, err
	}
	return slices.Clone(f.addrs[ns]), nil
}

func (f *fakeAddresses) set(ns uint32, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs[ns] = addrList(addrs...)
}

func addrList(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// procWithCmdlines writes a fixture proc root with the given command lines (args joined by
// spaces here, NUL-separated in the file).
func procWithCmdlines(t *testing.T, cmdlines map[uint32]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, cmd := range cmdlines {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b := []byte(strings.ReplaceAll(cmd, " ", "\x00") + "\x00")
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

var dockerd = &containers.Container{ID: "/system.slice/docker.service"}

func newListensTracer(t *testing.T, addrs *fakeAddresses, cmdlines map[uint32]string) *Tracer {
	t.Helper()
	tr, _ := newTestTracer(t, func(o *Options) {
		o.Resolver = &fakeRegistry{byCgroup: map[uint64]*containers.Container{100: web, 200: db, 300: dockerd}}
		o.Addresses = addrs
		o.HostNetNS = hostNS
		o.Config.ProcRoot = procWithCmdlines(t, cmdlines)
	})
	return tr
}

func listenEv(typ ebpf.EventType, cgroup uint64, ns, pid uint32, addr string) *ebpf.Event {
	return &ebpf.Event{
		Type: typ, CgroupID: cgroup, NetNS: ns, PID: pid,
		Source: netip.MustParseAddrPort(addr), Destination: netip.MustParseAddrPort("0.0.0.0:0"),
	}
}

func refresh(t *testing.T, tr *Tracer) {
	t.Helper()
	if err := tr.Refresh(); err != nil {
		t.Fatal(err)
	}
}

// listenRows maps a container's reported listen addresses (proxied ones prefixed with their
// proxy) to their inbound counts, open listeners without inbound connections to 0, and
// addresses with inbound connections only to their count plus 1000.
func listenRows(t *testing.T, tr *Tracer, id containers.ID) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	var s ContainerStats
	if !tr.ContainerStats(id, &s) {
		return out
	}
	for _, l := range s.Listens {
		k := l.Address
		if l.Proxy != "" {
			k = l.Proxy + " " + k
		}
		if _, dup := out[k]; dup {
			t.Errorf("%s: address %s reported twice", id, k)
		}
		n := l.InboundConnections
		if !l.Open {
			n += 1000
		}
		out[k] = n
	}
	return out
}

// TestWildcardListensExpanded: wildcard listeners are reported at their namespace's addresses,
// loopback ones only in the host's namespace; the addresses follow the namespace over time.
func TestWildcardListensExpanded(t *testing.T) {
	addrs := newFakeAddresses()
	tr := newListensTracer(t, addrs, nil)
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 50, "0.0.0.0:5432"))
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 50, "[::]:6379"))
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 51, "127.0.0.1:9000")) // pod loopback: not reported
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 51, "10.244.0.7:8080"))
	tr.Handle(listenEv(ebpf.EventListenOpen, 100, hostNS, 60, "0.0.0.0:80"))
	tr.Handle(listenEv(ebpf.EventListenOpen, 100, hostNS, 60, "127.0.0.1:8081"))

	// Before the first Refresh nothing was read: wildcards as they are.
	if got, want := listenRows(t, tr, db.ID), map[string]uint64{"0.0.0.0:5432": 0, "[::]:6379": 0, "10.244.0.7:8080": 0}; !maps.Equal(got, want) {
		t.Errorf("db before Refresh: %v, want %v", got, want)
	}

	refresh(t, tr)
	want := map[string]uint64{
		"10.244.0.7:5432": 0,                          // 0.0.0.0: IPv4 addresses only, no loopback outside the host
		"10.244.0.7:6379": 0, "[fd00:244::7]:6379": 0, // [::]: every family
		"10.244.0.7:8080": 0,
	}
	if got := listenRows(t, tr, db.ID); !maps.Equal(got, want) {
		t.Errorf("db: %v, want %v", got, want)
	}
	if got, want := listenRows(t, tr, web.ID), map[string]uint64{"127.0.0.1:80": 0, "192.0.2.2:80": 0, "127.0.0.1:8081": 0}; !maps.Equal(got, want) {
		t.Errorf("host process: %v, want %v", got, want)
	}

	// Accepted connections count on the address they were accepted on: the listener's row.
	for i := 0; i < 3; i++ {
		tr.Handle(&ebpf.Event{
			Type: ebpf.EventAccept, CgroupID: 200, NetNS: dbNS,
			Source: netip.MustParseAddrPort("10.244.0.7:5432"), Destination: netip.MustParseAddrPort("10.244.0.9:40000"),
		})
	}
	want["10.244.0.7:5432"] = 3
	if got := listenRows(t, tr, db.ID); !maps.Equal(got, want) {
		t.Errorf("db after accepts: %v, want %v", got, want)
	}

	// The pod's namespace gains an address and loses its IPv6 one: the next Refresh follows.
	addrs.set(dbNS, "10.244.0.7", "10.244.0.8", "127.0.0.1")
	refresh(t, tr)
	want = map[string]uint64{
		"10.244.0.7:5432": 3, "10.244.0.8:5432": 0,
		"10.244.0.7:6379": 0, "10.244.0.8:6379": 0,
		"10.244.0.7:8080": 0,
	}
	if got := listenRows(t, tr, db.ID); !maps.Equal(got, want) {
		t.Errorf("db after the address change: %v, want %v", got, want)
	}

	// Only namespaces of open wildcard listeners are kept (and read).
	tr.Handle(listenEv(ebpf.EventListenClose, 100, hostNS, 60, "0.0.0.0:80"))
	refresh(t, tr)
	tr.mu.Lock()
	namespaces := slices.Sorted(maps.Keys(tr.namespaces))
	tr.mu.Unlock()
	if want := []uint32{dbNS}; !slices.Equal(namespaces, want) {
		t.Errorf("namespaces kept %v, want %v", namespaces, want)
	}
	if got, want := listenRows(t, tr, web.ID), map[string]uint64{"127.0.0.1:8081": 0}; !maps.Equal(got, want) {
		t.Errorf("host process after its wildcard closed: %v, want %v", got, want)
	}
}

// TestLoopbackDestinationsOnlyFromHost: like coroot-node-agent, connections to loopback count
// only from the host's network namespace (before and after NAT).
func TestLoopbackDestinationsOnlyFromHost(t *testing.T) {
	addrs := newFakeAddresses()
	tr := newListensTracer(t, addrs, nil)
	tr.opts.NAT = &fakeNAT{m: map[netip.AddrPort]netip.AddrPort{
		netip.MustParseAddrPort("10.96.0.1:80"): netip.MustParseAddrPort("127.0.0.1:8080"),
	}}
	ev := func(typ ebpf.EventType, sock uint64, ns uint32, dst string) *ebpf.Event {
		return &ebpf.Event{
			Type: typ, Sock: sock, CgroupID: 100, NetNS: ns,
			Source: netip.MustParseAddrPort("10.244.0.9:40000"), Destination: netip.MustParseAddrPort(dst),
		}
	}
	tr.Handle(ev(ebpf.EventConnect, 1, webNS, "127.0.0.1:9000"))
	tr.Handle(ev(ebpf.EventConnect, 2, webNS, "[::1]:9000"))
	tr.Handle(ev(ebpf.EventConnect, 3, webNS, "10.96.0.1:80")) // NATed to loopback
	tr.Handle(ev(ebpf.EventConnectFailed, 4, webNS, "127.0.0.1:9001"))
	tr.Handle(ev(ebpf.EventRetransmit, 5, webNS, "127.0.0.1:9002"))
	tr.Handle(ev(ebpf.EventConnect, 6, webNS, "10.244.0.7:5432"))
	tr.Handle(ev(ebpf.EventConnect, 7, hostNS, "127.0.0.1:9000"))
	tr.Handle(ev(ebpf.EventConnectFailed, 8, hostNS, "127.0.0.1:9001"))
	var got []string
	for _, d := range stats(t, tr, web.ID).Destinations {
		got = append(got, d.Destination+">"+d.ActualDestination)
	}
	slices.Sort(got)
	if want := []string{"10.244.0.7:5432>10.244.0.7:5432", "127.0.0.1:9000>127.0.0.1:9000", "127.0.0.1:9001>127.0.0.1:9001"}; !slices.Equal(got, want) {
		t.Errorf("destinations %v, want %v", got, want)
	}
	if u := tr.Stats().Unattributed; u != 0 {
		t.Errorf("left-out loopback connections counted as unattributed: %d", u)
	}
}

const dockerProxyCmd = "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 15432 -container-ip 10.244.0.7 -container-port 5432"

// TestDockerProxyListens: a docker-proxy listener is reported on the container it forwards
// to, at its own (expanded) addresses, with proxy="dockerd"; its own container keeps it
// without the label. It follows the proxy's and the target's listeners over time.
func TestDockerProxyListens(t *testing.T) {
	addrs := newFakeAddresses()
	tr := newListensTracer(t, addrs, map[uint32]string{
		70: dockerProxyCmd,
		71: "/usr/bin/docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 16000 -container-ip 10.244.0.99 -container-port 6000",
		72: "/usr/bin/dockerd -H fd://",
	})
	tr.Handle(listenEv(ebpf.EventListenOpen, 300, hostNS, 70, "[::]:15432"))
	tr.Handle(listenEv(ebpf.EventListenOpen, 300, hostNS, 71, "127.0.0.1:16000")) // forwards to nobody known
	tr.Handle(listenEv(ebpf.EventListenOpen, 300, hostNS, 72, "127.0.0.1:2375"))
	refresh(t, tr)
	// The target does not listen yet: nothing proxied.
	if got := listenRows(t, tr, db.ID); len(got) != 0 {
		t.Errorf("db before listening: %v", got)
	}

	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 50, "0.0.0.0:5432"))
	refresh(t, tr)
	want := map[string]uint64{
		"10.244.0.7:5432":         0,
		"dockerd 127.0.0.1:15432": 0,
		"dockerd 192.0.2.2:15432": 0,
		"dockerd [::1]:15432":     0,
		"dockerd [fd00::2]:15432": 0,
	}
	if got := listenRows(t, tr, db.ID); !maps.Equal(got, want) {
		t.Errorf("db: %v, want %v", got, want)
	}
	ownWant := map[string]uint64{
		"127.0.0.1:15432": 0, "192.0.2.2:15432": 0, "[::1]:15432": 0, "[fd00::2]:15432": 0,
		"127.0.0.1:16000": 0, "127.0.0.1:2375": 0,
	}
	if got := listenRows(t, tr, dockerd.ID); !maps.Equal(got, ownWant) {
		t.Errorf("docker-proxy's own container: %v, want %v", got, ownWant)
	}

	// The target's listener closes: the proxied addresses go with it.
	tr.Handle(listenEv(ebpf.EventListenClose, 200, dbNS, 50, "0.0.0.0:5432"))
	refresh(t, tr)
	if got := listenRows(t, tr, db.ID); len(got) != 0 {
		t.Errorf("db after its listener closed: %v", got)
	}
	// It listens again, and then the proxy's listener closes.
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 50, "0.0.0.0:5432"))
	refresh(t, tr)
	if got := listenRows(t, tr, db.ID); !maps.Equal(got, want) {
		t.Errorf("db listening again: %v, want %v", got, want)
	}
	tr.Handle(listenEv(ebpf.EventListenClose, 300, hostNS, 70, "[::]:15432"))
	refresh(t, tr)
	if got, want := listenRows(t, tr, db.ID), map[string]uint64{"10.244.0.7:5432": 0}; !maps.Equal(got, want) {
		t.Errorf("db after the proxy closed: %v, want %v", got, want)
	}

	// A listener whose process is not docker-proxy is read once, not at every Refresh.
	tr.mu.Lock()
	l := tr.containers[dockerd.ID].listens[netip.MustParseAddrPort("127.0.0.1:2375")]
	classified, proxy := l.classified, l.proxy
	tr.mu.Unlock()
	if !classified || proxy != (dockerProxy{}) {
		t.Errorf("dockerd's own listener: classified %v, proxy %+v", classified, proxy)
	}
}

// TestDockerProxyEphemeralHostPort: dockerd publishes random ports from the ephemeral range;
// the proxy's own listener is folded to port 0 like any other, the proxied address keeps the
// port clients dial.
func TestDockerProxyEphemeralHostPort(t *testing.T) {
	addrs := newFakeAddresses()
	tr := newListensTracer(t, addrs, map[uint32]string{
		70: "/usr/bin/docker-proxy -proto tcp -host-ip 192.0.2.2 -host-port 49153 -container-ip 10.244.0.7 -container-port 5432",
	})
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 50, "0.0.0.0:5432"))
	tr.Handle(listenEv(ebpf.EventListenOpen, 300, hostNS, 70, "192.0.2.2:49153"))
	refresh(t, tr)
	if got, want := listenRows(t, tr, db.ID), map[string]uint64{"10.244.0.7:5432": 0, "dockerd 192.0.2.2:49153": 0}; !maps.Equal(got, want) {
		t.Errorf("db: %v, want %v", got, want)
	}
	if got, want := listenRows(t, tr, dockerd.ID), map[string]uint64{"192.0.2.2:0": 0}; !maps.Equal(got, want) {
		t.Errorf("docker-proxy's own container: %v, want %v", got, want)
	}
}

// TestNamespaceReadFailures: a namespace that cannot be read is counted; its wildcards stay as
// they are until a reading succeeds, then keep the last good addresses. A listener process
// that left the namespace makes the next one be asked.
func TestNamespaceReadFailures(t *testing.T) {
	addrs := newFakeAddresses()
	addrs.err[dbNS] = fmt.Errorf("netns: listing addresses: %w", os.ErrPermission)
	tr := newListensTracer(t, addrs, nil)
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 50, "0.0.0.0:5432"))
	refresh(t, tr)
	if got, want := listenRows(t, tr, db.ID), map[string]uint64{"0.0.0.0:5432": 0}; !maps.Equal(got, want) {
		t.Errorf("unreadable: %v, want %v", got, want)
	}
	if n := tr.Stats().NetNSUnreadable; n != 1 {
		t.Errorf("NetNSUnreadable = %d, want 1", n)
	}

	delete(addrs.err, dbNS)
	refresh(t, tr)
	want := map[string]uint64{"10.244.0.7:5432": 0}
	if got := listenRows(t, tr, db.ID); !maps.Equal(got, want) {
		t.Errorf("readable again: %v, want %v", got, want)
	}

	addrs.err[dbNS] = errors.New("netns: listing addresses: timeout")
	refresh(t, tr)
	if got := listenRows(t, tr, db.ID); !maps.Equal(got, want) {
		t.Errorf("failing again: %v, want the last addresses %v", got, want)
	}
	if n := tr.Stats().NetNSUnreadable; n != 2 {
		t.Errorf("NetNSUnreadable = %d, want 2", n)
	}

	// pid 50 left (its pid now in another namespace), pid 51 listens there too.
	delete(addrs.err, dbNS)
	addrs.moved[50] = true
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 51, "0.0.0.0:6379"))
	addrs.set(dbNS, "10.244.0.8")
	refresh(t, tr)
	if got, want := listenRows(t, tr, db.ID), map[string]uint64{"10.244.0.8:5432": 0, "10.244.0.8:6379": 0}; !maps.Equal(got, want) {
		t.Errorf("read through the second listener: %v, want %v", got, want)
	}
	if n := tr.Stats().NetNSUnreadable; n != 2 {
		t.Errorf("NetNSUnreadable = %d, want still 2", n)
	}
}

// TestNamespaceAddressCap: at most maxNamespaceAddrs addresses per namespace; the others are
// counted when a reading finds a different number of them.
func TestNamespaceAddressCap(t *testing.T) {
	addrs := newFakeAddresses()
	many := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("10.1.%d.%d", i/200, 1+i%200))
		}
		return out
	}
	addrs.set(dbNS, many(maxNamespaceAddrs+6)...)
	tr := newListensTracer(t, addrs, nil)
	tr.Handle(listenEv(ebpf.EventListenOpen, 200, dbNS, 50, "0.0.0.0:5432"))
	refresh(t, tr)
	refresh(t, tr)
	if n := len(listenRows(t, tr, db.ID)); n != maxNamespaceAddrs {
		t.Errorf("%d addresses reported, want %d", n, maxNamespaceAddrs)
	}
	if n := tr.Stats().NamespaceAddrsDropped; n != 6 {
		t.Errorf("NamespaceAddrsDropped = %d, want 6 (one reading's worth)", n)
	}
	addrs.set(dbNS, many(maxNamespaceAddrs+7)...)
	refresh(t, tr)
	if n := tr.Stats().NamespaceAddrsDropped; n != 13 {
		t.Errorf("NamespaceAddrsDropped = %d, want 13", n)
	}
}

// TestSeededListenNamespace: a listener found at start is expanded like one seen listening.
func TestSeededListenNamespace(t *testing.T) {
	addrs := newFakeAddresses()
	tr := newListensTracer(t, addrs, nil)
	tr.mu.Lock()
	tr.listening(tr.listen(tr.state(db.ID), netip.MustParseAddrPort("0.0.0.0:5432"), tr.now()), dbNS, 50)
	tr.mu.Unlock()
	refresh(t, tr)
	if got, want := listenRows(t, tr, db.ID), map[string]uint64{"10.244.0.7:5432": 0}; !maps.Equal(got, want) {
		t.Errorf("seeded listener: %v, want %v", got, want)
	}
	if got := addrs.calls[dbNS]; !slices.Equal(got, []uint32{50}) {
		t.Errorf("namespace read through pids %v, want [50]", got)
	}
}

func TestParseDockerProxy(t *testing.T) {
	tests := []struct {
		cmd      string
		want     string
		hostPort uint16
	}{
		{dockerProxyCmd, "10.244.0.7:5432", 15432},
		{"docker-proxy -container-ip=172.17.0.2 -container-port=80", "172.17.0.2:80", 0},
		{"/usr/libexec/docker/docker-proxy --proto tcp --host-ip :: --host-port=49153 --container-ip fd00::5 --container-port 443 --use-listen-fd", "[fd00::5]:443", 49153},
		{"docker-proxy -container-ip 172.17.0.2 -container-port 80 -host-port x", "172.17.0.2:80", 0},
		{"/usr/bin/docker-proxy -proto udp -container-ip 172.17.0.2 -container-port 53", "", 0},
		{"/usr/bin/docker-proxy -proto sctp -container-ip 172.17.0.2 -container-port 53", "", 0},
		{"/usr/bin/docker-proxy -container-ip 172.17.0.2", "", 0},
		{"/usr/bin/docker-proxy -container-ip 172.17.0.2 -container-port 0", "", 0},
		{"/usr/bin/docker-proxy -container-ip 172.17.0.2 -container-port 70000", "", 0},
		{"/usr/bin/docker-proxy -container-ip nothost -container-port 80", "", 0},
		{"/usr/bin/docker-proxy -container-ip fe80::1%eth0 -container-port 80", "", 0},
		{"/usr/bin/docker-proxy -container-port 80 -container-ip", "", 0},
		{"/usr/bin/not-docker-proxy -container-ip 172.17.0.2 -container-port 80", "", 0},
		{"/usr/bin/dockerd -H fd://", "", 0},
		{"docker-proxy", "", 0},
		{"", "", 0},
	}
	for _, tt := range tests {
		cmdline := []byte(strings.ReplaceAll(tt.cmd, " ", "\x00") + "\x00")
		got, ok := parseDockerProxy(cmdline)
		if tt.want == "" {
			if ok {
				t.Errorf("%q: parsed as %+v", tt.cmd, got)
			}
			continue
		}
		if !ok || got.to.String() != tt.want || got.hostPort != tt.hostPort {
			t.Errorf("%q: %s port %d, %v; want %s port %d", tt.cmd, got.to, got.hostPort, ok, tt.want, tt.hostPort)
		}
	}
}

func FuzzParseDockerProxy(f *testing.F) {
	f.Add([]byte(strings.ReplaceAll(dockerProxyCmd, " ", "\x00")))
	f.Add([]byte("docker-proxy\x00--container-ip=::ffff:1.2.3.4\x00--container-port=1"))
	f.Add([]byte("docker-proxy\x00-\x00--\x00-="))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseDockerProxy(b)
		to := p.to
		if ok && (!to.IsValid() || to.Port() == 0 || to.Addr().Is4In6() || to.Addr().Zone() != "") {
			t.Fatalf("accepted %q as forwarding to %s", b, to)
		}
		if !ok && p != (dockerProxy{}) {
			t.Fatalf("refused %q with a result %+v", b, p)
		}
	})
}

// BenchmarkListenRefresh: one collection's listen work on a node of 100 pods, each in its own
// namespace of 3 addresses with 3 wildcard and 2 specific listeners: Refresh (namespaces read
// through a fake reader, command lines classified once) and every container's ContainerStats.
func BenchmarkListenRefresh(b *testing.B) {
	addrs := &fakeAddresses{addrs: map[uint32][]netip.Addr{}, err: map[uint32]error{}, moved: map[uint32]bool{}, calls: map[uint32][]uint32{}}
	byCgroup := map[uint64]*containers.Container{}
	for i := 0; i < 100; i++ {
		ns := uint32(5000 + i)
		addrs.addrs[ns] = addrList(fmt.Sprintf("10.244.%d.7", i), "127.0.0.1", fmt.Sprintf("fd00::%x", i+1))
		byCgroup[uint64(1000+i)] = &containers.Container{ID: containers.ID(fmt.Sprintf("/k8s/ns/pod%d/app", i))}
	}
	tr := New(Options{
		Config:         Config{ProcRoot: b.TempDir()},
		Resolver:       &fakeRegistry{byCgroup: byCgroup},
		Addresses:      addrs,
		HostNetNS:      hostNS,
		EphemeralPorts: PortRange{Min: 32768, Max: 60999},
	})
	for i := 0; i < 100; i++ {
		ns, cg, pid := uint32(5000+i), uint64(1000+i), uint32(10000+i)
		for _, a := range []string{"0.0.0.0:8080", "[::]:9090", "0.0.0.0:9100", fmt.Sprintf("10.244.%d.7:5432", i), "127.0.0.1:6060"} {
			tr.Handle(listenEv(ebpf.EventListenOpen, cg, ns, pid, a))
		}
	}
	var s ContainerStats
	b.ReportAllocs()
	for b.Loop() {
		if err := tr.Refresh(); err != nil {
			b.Fatal(err)
		}
		for _, c := range byCgroup {
			tr.ContainerStats(c.ID, &s)
		}
	}
}
