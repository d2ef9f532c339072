package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// procTree builds a fixture procfs: per pid, an ns/net link, net/tcp{,6} and fd links.
type procTree struct {
	t    testing.TB
	root string
}

func newProcTree(t testing.TB) *procTree {
	t.Helper()
	root := t.TempDir()
	// Entries that are not processes are ignored.
	for _, d := range []string{"sys/net", "net"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("42", filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	return &procTree{t: t, root: root}
}

func (p *procTree) path(pid int, rest string) string {
	return filepath.Join(p.root, fmt.Sprint(pid), rest)
}

func (p *procTree) write(pid int, rest, content string) {
	p.t.Helper()
	path := p.path(pid, rest)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *procTree) link(pid int, rest, target string) {
	p.t.Helper()
	path := p.path(pid, rest)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		p.t.Fatal(err)
	}
}

// process adds pid in network namespace netns holding the given fd link targets.
func (p *procTree) process(pid int, netns uint32, fds ...string) {
	p.t.Helper()
	p.link(pid, "ns/net", fmt.Sprintf("net:[%d]", netns))
	if err := os.MkdirAll(p.path(pid, "fd"), 0o755); err != nil {
		p.t.Fatal(err)
	}
	for i, target := range fds {
		p.link(pid, fmt.Sprintf("fd/%d", i), target)
	}
}

func (p *procTree) tables(pid int, tcp, tcp6 string) {
	p.t.Helper()
	p.write(pid, "net/tcp", tcpHeader+tcp)
	if tcp6 != "" {
		p.write(pid, "net/tcp6", tcp6Header+tcp6)
	}
}

const (
	hostNS = 4026531840
	podNS  = 4026532001
)

var (
	webC = &containers.Container{ID: "/docker/web"}
	dbC  = &containers.Container{ID: "/docker/db"}
	podC = &containers.Container{ID: "/kubepods/pod1/api"}
	jobC = &containers.Container{ID: "/system.slice/job.service"}
)

// fixtureTree is a node with a host network namespace (web, db, a job whose namespace link is
// unreadable, a process of no container) and a pod with a namespace of its own.
func fixtureTree(t testing.TB) *procTree {
	t.Helper()
	p := newProcTree(t)
	const (
		listen = tcpListen
		est    = tcpEstablished
	)
	p.process(100, hostNS, "/dev/null", "socket:[1001]", "socket:[1002]", "socket:[1003]", "pipe:[77]", "socket:[1012]", "anon_inode:[eventfd]")
	p.tables(100,
		procNetLine(0, ap("0.0.0.0:8080"), ap("0.0.0.0:0"), listen, 1001, false)+
			procNetLine(1, ap("10.0.0.5:41000"), ap("10.0.0.9:5432"), est, 1002, false)+
			// accepted by web's listener: counted from accept events, not here
			procNetLine(2, ap("10.0.0.5:8080"), ap("10.0.0.77:50000"), est, 1003, false)+
			procNetLine(3, ap("10.0.0.5:41001"), ap("10.0.0.9:5432"), tcpTimeWait, 0, false)+
			procNetLine(4, ap("127.0.0.1:45001"), ap("0.0.0.0:0"), listen, 1004, false)+
			// nobody holds it
			procNetLine(5, ap("10.0.0.5:41002"), ap("10.0.0.9:5432"), est, 1005, false)+
			"   6: this line is garbage\n"+
			procNetLine(7, ap("10.0.0.5:44000"), ap("10.0.0.11:80"), est, 1013, false)+
			procNetLine(8, ap("10.0.0.5:44001"), ap("10.0.0.12:80"), est, 1020, false)+
			procNetLine(9, ap("10.0.0.5:44002"), ap("10.0.0.9:5432"), tcpSynSent, 1021, false),
		procNetLine(0, ap("[::]:9090"), ap("[::]:0"), listen, 1010, true)+
			procNetLine(1, ap("[::ffff:10.0.0.5]:42000"), ap("[::ffff:10.0.0.10]:6379"), est, 1011, true)+
			procNetLine(2, ap("[fd00::5]:43000"), ap("[fd00::10]:443"), tcpCloseWait, 1012, true))
	// db: a listener on an ephemeral port, folded to port 0
	p.process(101, hostNS, "socket:[1004]", "socket:[1010]", "socket:[1011]", "socket:[1021]")
	// a fork of web: shares its sockets, the first holder (lower pid) owns them
	p.process(102, hostNS, "socket:[1001]", "socket:[1002]")

	// the pod: same ports as the host, its own namespace; pid 201's tables are never read
	// (garbage would count as malformed)
	p.process(200, podNS, "socket:[2001]", "socket:[2002]", "socket:[2003]")
	p.tables(200,
		procNetLine(0, ap("0.0.0.0:8080"), ap("0.0.0.0:0"), listen, 2002, false)+
			procNetLine(1, ap("10.244.0.7:40000"), ap("10.96.0.1:443"), est, 2001, false)+
			procNetLine(2, ap("10.244.0.7:8080"), ap("10.244.0.1:51000"), est, 2003, false), "")
	p.process(201, podNS)
	p.tables(201, "garbage\ngarbage\n", "garbage\n")

	// exited between the listing and the reading: its own namespace has no tables left
	p.link(300, "ns/net", "net:[4026532999]")
	// fd "directory" that cannot be listed
	p.process(400, hostNS)
	if err := os.RemoveAll(p.path(400, "fd")); err != nil {
		t.Fatal(err)
	}
	p.write(400, "fd", "not a directory")
	// namespace link unreadable (as /proc/1/ns/net is here): its fds still count
	p.link(500, "ns/net", "permission denied")
	p.link(500, "fd/3", "socket:[1013]")
	// holds a connection but belongs to no container
	p.process(600, hostNS, "socket:[1020]")
	return p
}

// recordingKernel is a fake of the kernel side's seeded table.
type recordingKernel struct {
	added   map[uint64]ebpf.SocketTuple
	removed []ebpf.SocketTuple
	addErr  error
	onAdd   func(ebpf.SocketTuple)
}

func newRecordingKernel() *recordingKernel {
	return &recordingKernel{added: map[uint64]ebpf.SocketTuple{}}
}

func (k *recordingKernel) AddSeeded(s ebpf.SocketTuple, id uint64) error {
	if k.addErr != nil {
		return k.addErr
	}
	k.added[id] = s
	if k.onAdd != nil {
		k.onAdd(s)
	}
	return nil
}

func (k *recordingKernel) RemoveSeeded(s ebpf.SocketTuple) (bool, error) {
	for id, a := range k.added {
		if a == s {
			delete(k.added, id)
			k.removed = append(k.removed, s)
			return true, nil
		}
	}
	return false, nil
}

func (k *recordingKernel) idOf(t testing.TB, local, remote string) uint64 {
	t.Helper()
	for id, s := range k.added {
		if s.Local.String() == local && s.Remote.String() == remote {
			return id
		}
	}
	t.Fatalf("no seeded tuple %s → %s among %v", local, remote, k.added)
	return 0
}

func fixtureRegistry() *fakeRegistry {
	return &fakeRegistry{byPID: map[uint32]*containers.Container{
		100: webC, 101: dbC, 102: webC, 200: podC, 201: podC, 500: jobC,
	}}
}

func newSeedTracer(t testing.TB, mutate func(*Options)) *Tracer {
	t.Helper()
	opts := Options{
		Config:         DefaultConfig(),
		Resolver:       fixtureRegistry(),
		EphemeralPorts: PortRange{Min: 32768, Max: 60999},
		NAT:            &fakeNAT{m: map[netip.AddrPort]netip.AddrPort{ap("10.96.0.1:443"): ap("10.244.1.3:6443")}},
		Now:            (&clock{t: time.Unix(1700000000, 0)}).now,
	}
	if mutate != nil {
		mutate(&opts)
	}
	return New(opts)
}

// stateOf renders a container's state compactly and in a stable order.
func stateOf(tr *Tracer, id containers.ID) []string {
	var s ContainerStats
	if !tr.ContainerStats(id, &s) {
		return nil
	}
	var out []string
	for _, l := range s.Listens {
		out = append(out, fmt.Sprintf("listen %s open=%v inbound=%d", l.Address, l.Open, l.InboundConnections))
	}
	for _, d := range s.Destinations {
		out = append(out, fmt.Sprintf("dst %s actual %s active=%d connects=%d failed=%d retrans=%d", d.Destination,
			d.ActualDestination, d.ActiveConnections, d.SuccessfulConnects, d.FailedConnects, d.Retransmits))
	}
	sort.Strings(out)
	return out
}

func TestSeedFixture(t *testing.T) {
	tree := fixtureTree(t)
	kernel := newRecordingKernel()
	tr := newSeedTracer(t, nil)
	res, err := tr.seed(tree.root, kernel)
	if err != nil {
		t.Fatal(err)
	}
	res.Duration = 0
	if want := (SeedResult{Processes: 9, Namespaces: 2, Listens: 4, Connections: 5}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}

	want := map[containers.ID][]string{
		webC.ID: {
			"dst 10.0.0.9:5432 actual 10.0.0.9:5432 active=1 connects=0 failed=0 retrans=0",
			"dst [fd00::10]:443 actual [fd00::10]:443 active=1 connects=0 failed=0 retrans=0",
			"listen 0.0.0.0:8080 open=true inbound=0",
		},
		dbC.ID: {
			"dst 10.0.0.10:6379 actual 10.0.0.10:6379 active=1 connects=0 failed=0 retrans=0",
			"listen 127.0.0.1:0 open=true inbound=0",
			"listen [::]:9090 open=true inbound=0",
		},
		podC.ID: {
			"dst 10.96.0.1:443 actual 10.244.1.3:6443 active=1 connects=0 failed=0 retrans=0",
			"listen 0.0.0.0:8080 open=true inbound=0",
		},
		jobC.ID: {
			"dst 10.0.0.11:80 actual 10.0.0.11:80 active=1 connects=0 failed=0 retrans=0",
		},
	}
	for id, w := range want {
		if got := stateOf(tr, id); !slices.Equal(got, w) {
			t.Errorf("%s:\n got %q\nwant %q", id, got, w)
		}
	}
	if n := len(tr.ContainerIDs()); n != len(want) {
		t.Errorf("%d containers have state, want %d", n, len(want))
	}

	// The kernel side is given each connection as it sees it: namespace, the socket's own
	// family, v4-mapped addresses of an IPv6 socket kept.
	var tuples []string
	for id, s := range kernel.added {
		if id&seededSockBit == 0 {
			t.Errorf("seeded id %#x looks like a kernel address", id)
		}
		tuples = append(tuples, fmt.Sprintf("%d/%d %s → %s", s.NetNS, s.Family, s.Local, s.Remote))
	}
	sort.Strings(tuples)
	wantTuples := []string{
		"4026531840/10 [::ffff:10.0.0.5]:42000 → [::ffff:10.0.0.10]:6379",
		"4026531840/10 [fd00::5]:43000 → [fd00::10]:443",
		"4026531840/2 10.0.0.5:41000 → 10.0.0.9:5432",
		"4026531840/2 10.0.0.5:44000 → 10.0.0.11:80",
		"4026532001/2 10.244.0.7:40000 → 10.96.0.1:443",
	}
	if !slices.Equal(tuples, wantTuples) {
		t.Errorf("seeded tuples\n got %q\nwant %q", tuples, wantTuples)
	}

	st := tr.Stats()
	if st.SeedVanished != 1 || st.SeedUnreadable != 2 || st.SeedMalformed != 1 || st.Unattributed != 1 {
		t.Errorf("skipped input: vanished %d (want 1), unreadable %d (want 2), malformed %d (want 1), unattributed %d (want 1)",
			st.SeedVanished, st.SeedUnreadable, st.SeedMalformed, st.Unattributed)
	}
	if st.EventsProcessed != 0 {
		t.Errorf("seeding counted as %d events", st.EventsProcessed)
	}
}

// TestSeededLifecycle follows seeded connections through the events that may come after.
func TestSeededLifecycle(t *testing.T) {
	const dbDst = "10.0.0.9:5432"
	closeOf := func(sock uint64) *ebpf.Event {
		return &ebpf.Event{
			Type: ebpf.EventClose, Sock: sock, Flags: ebpf.FlagSeeded,
			Source: ap("10.0.0.5:41000"), Destination: ap(dbDst),
		}
	}
	tests := []struct {
		name   string
		events func(id uint64) []*ebpf.Event
		want   string // web's destination 10.0.0.9:5432
		index  int    // seeded connections still indexed
		kernel int    // tuples the kernel side still holds (of 5)
	}{
		{
			name:   "no event: open",
			events: func(uint64) []*ebpf.Event { return nil },
			want:   "active=1 connects=0 failed=0 retrans=0", index: 5, kernel: 5,
		},
		{
			name:   "close decrements once",
			events: func(id uint64) []*ebpf.Event { return []*ebpf.Event{closeOf(id), closeOf(id)} },
			want:   "active=0 connects=0 failed=0 retrans=0", index: 4, kernel: 5, // the kernel forgets on its own
		},
		{
			name: "retransmits count",
			events: func(id uint64) []*ebpf.Event {
				return []*ebpf.Event{{
					Type: ebpf.EventRetransmit, Sock: id, Flags: ebpf.FlagSeeded, CgroupID: 999,
					Source: ap("10.0.0.5:41000"), Destination: ap(dbDst),
				}}
			},
			want: "active=1 connects=0 failed=0 retrans=1", index: 5, kernel: 5,
		},
		{
			// established after attaching, before /proc was read: one connection, not two
			name: "connect of the same connection replaces it",
			events: func(id uint64) []*ebpf.Event {
				return []*ebpf.Event{
					{Type: ebpf.EventConnect, Sock: 0xffff888000000001, CgroupID: 1, Source: ap("10.0.0.5:41000"), Destination: ap(dbDst), Duration: time.Millisecond},
				}
			},
			want: "active=1 connects=1 failed=0 retrans=0", index: 4, kernel: 4,
		},
		{
			name: "replaced, then both closes",
			events: func(id uint64) []*ebpf.Event {
				return []*ebpf.Event{
					{Type: ebpf.EventConnect, Sock: 0xffff888000000001, CgroupID: 1, Source: ap("10.0.0.5:41000"), Destination: ap(dbDst)},
					{Type: ebpf.EventClose, Sock: 0xffff888000000001, Source: ap("10.0.0.5:41000"), Destination: ap(dbDst), BytesSent: 10},
					closeOf(id),
				}
			},
			want: "active=0 connects=1 failed=0 retrans=0", index: 4, kernel: 4,
		},
		{
			name: "connect of another connection to the same destination",
			events: func(id uint64) []*ebpf.Event {
				return []*ebpf.Event{
					{Type: ebpf.EventConnect, Sock: 0xffff888000000002, CgroupID: 1, Source: ap("10.0.0.5:41999"), Destination: ap(dbDst)},
					closeOf(id),
				}
			},
			want: "active=1 connects=1 failed=0 retrans=0", index: 4, kernel: 5,
		},
		{
			name: "connect with the same tuple from another container",
			events: func(id uint64) []*ebpf.Event {
				return []*ebpf.Event{
					{Type: ebpf.EventConnect, Sock: 0xffff888000000003, CgroupID: 2, Source: ap("10.0.0.5:41000"), Destination: ap(dbDst)},
				}
			},
			want: "active=1 connects=0 failed=0 retrans=0", index: 5, kernel: 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := fixtureTree(t)
			kernel := newRecordingKernel()
			tr := newSeedTracer(t, func(o *Options) {
				o.Resolver.(*fakeRegistry).byCgroup = map[uint64]*containers.Container{1: webC, 2: dbC}
			})
			if _, err := tr.seed(tree.root, kernel); err != nil {
				t.Fatal(err)
			}
			tr.mu.Lock()
			tr.kernel = kernel
			tr.mu.Unlock()
			id := kernel.idOf(t, "10.0.0.5:41000", dbDst)
			for _, ev := range tt.events(id) {
				tr.Handle(ev)
			}
			var s ContainerStats
			tr.ContainerStats(webC.ID, &s)
			d, ok := destOf(&s, dbDst)
			if !ok {
				t.Fatalf("no destination %s: %+v", dbDst, s)
			}
			got := fmt.Sprintf("active=%d connects=%d failed=%d retrans=%d", d.ActiveConnections, d.SuccessfulConnects, d.FailedConnects, d.Retransmits)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			tr.mu.Lock()
			index := len(tr.seededIndex)
			tr.mu.Unlock()
			if index != tt.index || len(kernel.added) != tt.kernel {
				t.Errorf("seeded index %d (want %d), kernel tuples %d (want %d)", index, tt.index, len(kernel.added), tt.kernel)
			}
			// Never negative, whatever arrives.
			tr.Handle(closeOf(id))
			tr.ContainerStats(webC.ID, &s)
			if d, _ := destOf(&s, dbDst); d.ActiveConnections < 0 {
				t.Errorf("active connections went negative: %+v", d)
			}
		})
	}
}

// TestSeedWithdrawsClosedMeanwhile: a connection that closes after /proc was read but before
// the kernel side knew its tuple sends no close; the second reading withdraws it.
func TestSeedWithdrawsClosedMeanwhile(t *testing.T) {
	tree := fixtureTree(t)
	kernel := newRecordingKernel()
	closed := false
	kernel.onAdd = func(s ebpf.SocketTuple) {
		if s.Remote == ap("10.96.0.1:443") && !closed {
			closed = true
			b, err := os.ReadFile(tree.path(200, "net/tcp"))
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, l := range strings.SplitAfter(string(b), "\n") {
				if !strings.Contains(l, " 2001 ") {
					kept = append(kept, l)
				}
			}
			tree.write(200, "net/tcp", strings.Join(kept, ""))
		}
	}
	tr := newSeedTracer(t, nil)
	res, err := tr.seed(tree.root, kernel)
	if err != nil {
		t.Fatal(err)
	}
	if res.Connections != 4 || res.Withdrawn != 1 {
		t.Errorf("result %+v, want 4 connections and 1 withdrawn", res)
	}
	if got, want := stateOf(tr, podC.ID), []string{
		"dst 10.96.0.1:443 actual 10.244.1.3:6443 active=0 connects=0 failed=0 retrans=0",
		"listen 0.0.0.0:8080 open=true inbound=0",
	}; !slices.Equal(got, want) {
		t.Errorf("pod state\n got %q\nwant %q", got, want)
	}
	if len(kernel.removed) != 1 || kernel.removed[0].Remote != ap("10.96.0.1:443") || len(kernel.added) != 4 {
		t.Errorf("kernel side: removed %v, %d left", kernel.removed, len(kernel.added))
	}
}

// TestSeedWithdrawStopsAtClose: once Close asked seeding to stop, it no longer reads /proc
// again nor touches the kernel's seeded map to withdraw what closed meanwhile.
func TestSeedWithdrawStopsAtClose(t *testing.T) {
	tree := fixtureTree(t)
	kernel := newRecordingKernel()
	stop := make(chan struct{})
	kernel.onAdd = func(s ebpf.SocketTuple) {
		if s.Remote != ap("10.96.0.1:443") {
			return
		}
		// The connection closes (so withdrawing would remove it), and Close comes.
		b, err := os.ReadFile(tree.path(200, "net/tcp"))
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if !strings.Contains(l, " 2001 ") {
				kept = append(kept, l)
			}
		}
		tree.write(200, "net/tcp", strings.Join(kept, ""))
		close(stop)
	}
	tr := newSeedTracer(t, nil)
	tr.seedStop = stop
	if _, err := tr.seed(tree.root, kernel); !errors.Is(err, errSeedStopped) {
		t.Errorf("seed = %v, want errSeedStopped", err)
	}
	if len(kernel.removed) != 0 {
		t.Errorf("withdrew %v from the kernel side after Close", kernel.removed)
	}
}

func TestSeedLimitsAndFailures(t *testing.T) {
	t.Run("destination limit", func(t *testing.T) {
		tr := newSeedTracer(t, func(o *Options) { o.Config.MaxDestinationsPerContainer = 1 })
		kernel := newRecordingKernel()
		if _, err := tr.seed(fixtureTree(t).root, kernel); err != nil {
			t.Fatal(err)
		}
		// web: one of two destinations; db: one of two listens
		var s ContainerStats
		tr.ContainerStats(webC.ID, &s)
		if len(s.Destinations) != 1 || s.Destinations[0].ActiveConnections != 1 {
			t.Errorf("web destinations %+v", s.Destinations)
		}
		if st := tr.Stats(); st.DroppedByLimit != 2 {
			t.Errorf("dropped by limit %d, want 2", st.DroppedByLimit)
		}
		if len(kernel.added) != 4 {
			t.Errorf("kernel told about %d connections, want the 4 kept", len(kernel.added))
		}
	})
	t.Run("kernel refuses", func(t *testing.T) {
		tr := newSeedTracer(t, nil)
		kernel := newRecordingKernel()
		kernel.addErr = errors.New("map full")
		res, err := tr.seed(fixtureTree(t).root, kernel)
		if err != nil {
			t.Fatal(err)
		}
		if res.Connections != 0 || res.Listens != 4 {
			t.Errorf("result %+v", res)
		}
		var s ContainerStats
		tr.ContainerStats(webC.ID, &s)
		for _, d := range s.Destinations {
			if d.ActiveConnections != 0 {
				t.Errorf("counted although its close would go unseen: %+v", d)
			}
		}
	})
	t.Run("no proc root", func(t *testing.T) {
		tr := newSeedTracer(t, nil)
		if _, err := tr.seed(filepath.Join(t.TempDir(), "missing"), newRecordingKernel()); !os.IsNotExist(err) {
			t.Errorf("err = %v, want not-exist", err)
		}
	})
	t.Run("no sockets: fds are not read", func(t *testing.T) {
		p := newProcTree(t)
		p.process(1, hostNS, "socket:[5]")
		p.tables(1, "", "")
		p.write(2, "fd", "not a directory") // would count as unreadable if listed
		p.link(2, "ns/net", fmt.Sprintf("net:[%d]", hostNS))
		tr := newSeedTracer(t, nil)
		res, err := tr.seed(p.root, newRecordingKernel())
		if err != nil {
			t.Fatal(err)
		}
		if res.Processes != 2 || res.Namespaces != 1 || res.Listens+res.Connections != 0 || tr.Stats().SeedUnreadable != 0 {
			t.Errorf("result %+v, stats %+v", res, tr.Stats())
		}
	})
}

// BenchmarkSeed reads 2,000 sockets (1,000 outbound connections, 1,000 accepted ones of 20
// listeners) held by 200 processes in 10 network namespaces.
func BenchmarkSeed(b *testing.B) {
	p := newProcTree(b)
	reg := &fakeRegistry{byPID: map[uint32]*containers.Container{}}
	inode := uint64(10000)
	for ns := 0; ns < 10; ns++ {
		var tcp strings.Builder
		fds := make([][]string, 20)
		for i := 0; i < 200; i++ {
			inode++
			proc := i % 20
			switch {
			case i < 2:
				tcp.WriteString(procNetLine(i, ap(fmt.Sprintf("10.0.%d.1:%d", ns, 8080+i)), ap("0.0.0.0:0"), tcpListen, inode, false))
			case i%2 == 0:
				tcp.WriteString(procNetLine(i, ap(fmt.Sprintf("10.0.%d.1:%d", ns, 40000+i)), ap(fmt.Sprintf("10.1.%d.%d:5432", i/250, i%250)), tcpEstablished, inode, false))
			default:
				tcp.WriteString(procNetLine(i, ap(fmt.Sprintf("10.0.%d.1:8080", ns)), ap(fmt.Sprintf("10.2.%d.%d:%d", i/250, i%250, 50000+i)), tcpEstablished, inode, false))
			}
			fds[proc] = append(fds[proc], fmt.Sprintf("socket:[%d]", inode), "/dev/null")
		}
		for proc := 0; proc < 20; proc++ {
			pid := 1000 + ns*100 + proc
			p.process(pid, uint32(5000+ns), fds[proc]...)
			reg.byPID[uint32(pid)] = &containers.Container{ID: containers.ID(fmt.Sprintf("/pod/%d", ns))}
		}
		p.tables(1000+ns*100, tcp.String(), "")
	}
	b.ReportAllocs()
	for b.Loop() {
		tr := New(Options{Config: DefaultConfig(), Resolver: reg, EphemeralPorts: PortRange{Min: 32768, Max: 60999}})
		res, err := tr.seed(p.root, newRecordingKernel())
		if err != nil {
			b.Fatal(err)
		}
		if res.Connections != 990 || res.Listens != 20 {
			b.Fatalf("result %+v", res)
		}
	}
}
