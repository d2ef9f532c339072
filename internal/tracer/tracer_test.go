package tracer

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(dialHelperEnv); addr != "" {
		os.Exit(dialHelper(addr))
	}
	if addrs := os.Getenv(seedHelperEnv); addrs != "" {
		os.Exit(seedHelper(addrs))
	}
	if os.Getenv(netHelperEnv) != "" {
		os.Exit(netHelper())
	}
	goleak.VerifyTestMain(m)
}

// fakeRegistry resolves containers from fixed maps.
type fakeRegistry struct {
	byCgroup map[uint64]*containers.Container
	byPID    map[uint32]*containers.Container
}

func (r *fakeRegistry) ContainerIDByCgroupID(id uint64) (containers.ID, bool) {
	return idOf(r.byCgroup[id])
}

func (r *fakeRegistry) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	return idOf(r.byPID[pid])
}

func idOf(c *containers.Container) (containers.ID, bool) {
	if c == nil {
		return "", false
	}
	return c.ID, true
}

type fakeNAT struct {
	m   map[netip.AddrPort]netip.AddrPort
	err error
}

func (n *fakeNAT) ActualDestination(_, dst netip.AddrPort) (netip.AddrPort, bool, error) {
	if n.err != nil {
		return dst, false, n.err
	}
	if a, ok := n.m[dst]; ok {
		return a, true, nil
	}
	return dst, false, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var (
	web = &containers.Container{ID: "/docker/web"}
	db  = &containers.Container{ID: "/docker/db"}
)

func newTestTracer(t *testing.T, mutate func(*Options)) (*Tracer, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg := DefaultConfig()
	opts := Options{
		Config: cfg,
		Resolver: &fakeRegistry{
			byCgroup: map[uint64]*containers.Container{100: web, 200: db},
			byPID:    map[uint32]*containers.Container{42: db},
		},
		NAT: &fakeNAT{m: map[netip.AddrPort]netip.AddrPort{
			netip.MustParseAddrPort("10.96.0.10:5432"): netip.MustParseAddrPort("10.244.0.7:5432"),
		}},
		EphemeralPorts: PortRange{Min: 32768, Max: 60999},
		Now:            clk.now,
	}
	if mutate != nil {
		mutate(&opts)
	}
	return New(opts), clk
}

func connectEv(typ ebpf.EventType, sock, cgroup uint64, src, dst string) *ebpf.Event {
	return &ebpf.Event{
		Type: typ, Sock: sock, CgroupID: cgroup, Duration: 3 * time.Millisecond,
		Source: netip.MustParseAddrPort(src), Destination: netip.MustParseAddrPort(dst),
	}
}

func stats(t *testing.T, tr *Tracer, id containers.ID) ContainerStats {
	t.Helper()
	var s ContainerStats
	if !tr.ContainerStats(id, &s) {
		t.Fatalf("no state for %s", id)
	}
	return s
}

func findDest(t *testing.T, s ContainerStats, dst, actual string) DestinationStats {
	t.Helper()
	for _, d := range s.Destinations {
		if d.Destination == dst && d.ActualDestination == actual {
			return d
		}
	}
	t.Fatalf("no destination %s/%s in %+v", dst, actual, s.Destinations)
	return DestinationStats{}
}

func TestConnectionLifecycle(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	tr.Handle(connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:40001", "10.96.0.10:5432"))
	tr.Handle(connectEv(ebpf.EventConnect, 2, 100, "10.0.0.5:40002", "10.96.0.10:5432"))
	tr.UpdateConnection(1, &ebpf.ConnectionCounters{BytesSent: 100, BytesReceived: 1000, SRTTMicros: 400})
	tr.UpdateConnection(2, &ebpf.ConnectionCounters{BytesSent: 10, SRTTMicros: 200})

	d := findDest(t, stats(t, tr, web.ID), "10.96.0.10:5432", "10.244.0.7:5432")
	if d.SuccessfulConnects != 2 || d.ActiveConnections != 2 || d.ConnectionTime != 6*time.Millisecond ||
		d.BytesSent != 110 || d.BytesReceived != 1000 {
		t.Errorf("open: %+v", d)
	}

	// counters keep growing while open, then the close event carries the final values
	tr.UpdateConnection(1, &ebpf.ConnectionCounters{BytesSent: 150, BytesReceived: 1000})
	closeEv := connectEv(ebpf.EventClose, 1, 100, "10.0.0.5:40001", "10.96.0.10:5432")
	closeEv.BytesSent, closeEv.BytesReceived = 170, 1500
	tr.Handle(closeEv)
	tr.Handle(closeEv) // a duplicate close changes nothing
	d = findDest(t, stats(t, tr, web.ID), "10.96.0.10:5432", "10.244.0.7:5432")
	if d.ActiveConnections != 1 || d.BytesSent != 180 || d.BytesReceived != 1500 {
		t.Errorf("after close: %+v", d)
	}
	if err := tr.Refresh(); err != nil {
		t.Fatal(err)
	}
	s := stats(t, tr, web.ID)
	if len(s.Latency) != 1 || s.Latency[0].DestinationIP != "10.244.0.7" || s.Latency[0].RTT != 200*time.Microsecond {
		t.Errorf("latency %+v", s.Latency)
	}
}

func TestFailedConnectsAndRetransmits(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	tr.Handle(connectEv(ebpf.EventConnectFailed, 1, 100, "10.0.0.5:40001", "10.0.0.9:80"))
	tr.Handle(connectEv(ebpf.EventRetransmit, 2, 100, "10.0.0.5:40002", "10.0.0.9:80")) // SYN retransmit
	tr.Handle(connectEv(ebpf.EventConnect, 3, 100, "10.0.0.5:40003", "10.0.0.9:80"))
	tr.Handle(connectEv(ebpf.EventRetransmit, 3, 0, "10.0.0.5:40003", "10.0.0.9:80")) // by connection
	in := connectEv(ebpf.EventRetransmit, 4, 100, "10.0.0.5:80", "10.0.0.7:50000")
	in.Flags = ebpf.FlagInbound
	tr.Handle(in) // inbound: no destination
	d := findDest(t, stats(t, tr, web.ID), "10.0.0.9:80", "10.0.0.9:80")
	if d.FailedConnects != 1 || d.Retransmits != 2 || d.SuccessfulConnects != 1 {
		t.Errorf("%+v", d)
	}
	if n := len(stats(t, tr, web.ID).Destinations); n != 1 {
		t.Errorf("%d destinations, want 1", n)
	}
}

func TestListenAndInbound(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	tr.Handle(connectEv(ebpf.EventListenOpen, 1, 200, "0.0.0.0:5432", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 2, 200, "127.0.0.1:45000", "0.0.0.0:0")) // ephemeral
	tr.Handle(connectEv(ebpf.EventListenOpen, 3, 200, "127.0.0.1:45001", "0.0.0.0:0")) // folded with the above
	for i := 0; i < 3; i++ {
		tr.Handle(connectEv(ebpf.EventAccept, uint64(10+i), 200, "10.0.0.7:5432", "10.0.0.5:40001"))
	}
	tr.Handle(connectEv(ebpf.EventListenClose, 2, 200, "127.0.0.1:45000", "0.0.0.0:0"))
	got := map[string]ListenStats{}
	for _, l := range stats(t, tr, db.ID).Listens {
		got[l.Address] = l
	}
	start := time.Unix(1_700_000_000, 0)
	want := map[string]ListenStats{
		// a namespace never read: the wildcard as it is
		"0.0.0.0:5432": {Address: "0.0.0.0:5432", Open: true, Start: start},
		// accepted connections count on the address they were accepted on
		"10.0.0.7:5432": {Address: "10.0.0.7:5432", InboundConnections: 3, Start: start},
		// the closed listener (no inbound connections) is not reported
	}
	if len(got) != len(want) {
		t.Fatalf("listens %+v", got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v want %+v", k, got[k], w)
		}
	}
}

func TestDestinationLimitAndExpiry(t *testing.T) {
	tr, clk := newTestTracer(t, func(o *Options) {
		o.Config.MaxDestinationsPerContainer = 2
		o.Config.DestinationTTL = time.Minute
	})
	tr.Handle(connectEv(ebpf.EventConnectFailed, 1, 100, "10.0.0.5:1", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventConnect, 2, 100, "10.0.0.5:2", "10.0.0.2:80"))
	tr.Handle(connectEv(ebpf.EventConnectFailed, 3, 100, "10.0.0.5:3", "10.0.0.3:80")) // over the limit
	if n := len(stats(t, tr, web.ID).Destinations); n != 2 {
		t.Fatalf("%d destinations, want 2", n)
	}
	if s := tr.Stats(); s.DroppedByLimit != 1 {
		t.Errorf("DroppedByLimit = %d", s.DroppedByLimit)
	}

	clk.t = clk.t.Add(2 * time.Minute)
	if err := tr.Refresh(); err != nil {
		t.Fatal(err)
	}
	s := stats(t, tr, web.ID) // the open connection's destination stays
	if len(s.Destinations) != 1 || s.Destinations[0].Destination != "10.0.0.2:80" {
		t.Errorf("after expiry: %+v", s.Destinations)
	}
	if st := tr.Stats(); st.Expired != 1 {
		t.Errorf("Expired = %d", st.Expired)
	}
	tr.Handle(connectEv(ebpf.EventClose, 2, 100, "10.0.0.5:2", "10.0.0.2:80"))
	clk.t = clk.t.Add(2 * time.Minute)
	if err := tr.Refresh(); err != nil {
		t.Fatal(err)
	}
	var cs ContainerStats
	if tr.ContainerStats(web.ID, &cs) {
		t.Errorf("container state survived expiry: %+v", cs)
	}
}

func TestOOMKillRetention(t *testing.T) {
	tr, clk := newTestTracer(t, func(o *Options) {
		o.Config.DestinationTTL = time.Minute
		o.Config.OOMKillRetention = 10 * time.Minute
	})
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 100, PID: 1, TargetPID: 7})
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 999, PID: 1, TargetPID: 42}) // by victim pid
	if got := stats(t, tr, web.ID).OOMKills; got != 1 {
		t.Errorf("web OOM kills = %d", got)
	}
	if got := stats(t, tr, db.ID).OOMKills; got != 1 {
		t.Errorf("db OOM kills = %d", got)
	}
	clk.t = clk.t.Add(5 * time.Minute)
	if err := tr.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := stats(t, tr, web.ID).OOMKills; got != 1 {
		t.Errorf("retained OOM kills = %d", got)
	}
	if n := len(tr.ContainerIDs()); n != 2 {
		t.Errorf("%d retained containers", n)
	}
	clk.t = clk.t.Add(6 * time.Minute)
	if err := tr.Refresh(); err != nil {
		t.Fatal(err)
	}
	if n := len(tr.ContainerIDs()); n != 0 {
		t.Errorf("%d containers after retention", n)
	}
}

// Forget drops a gone container's TCP state at once, whatever destination_ttl says; an OOM
// kill count within oom_kill_retention stays, under its start, and only it, until it expires.
func TestForget(t *testing.T) {
	tr, clk := newTestTracer(t, func(o *Options) { o.Config.OOMKillRetention = 10 * time.Minute })
	tr.Handle(connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:1", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventClose, 1, 100, "10.0.0.5:1", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventConnect, 2, 200, "10.0.0.6:1", "10.0.0.1:80"))
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 100, PID: 1, TargetPID: 7})
	before := stats(t, tr, web.ID)
	if before.OOMKills != 1 || len(before.Destinations) != 1 {
		t.Fatalf("before: %+v", before)
	}
	if got := tr.OOMKillsRetained(); len(got) != 1 || got[0] != web.ID {
		t.Fatalf("OOM kills retained: %v", got)
	}

	clk.t = clk.t.Add(time.Minute)
	tr.Forget([]containers.ID{web.ID, db.ID, "/docker/unknown"})
	after := stats(t, tr, web.ID)
	if after.OOMKills != 1 || !after.OOMKillsStart.Equal(before.OOMKillsStart) || len(after.Destinations) != 0 || len(after.Listens) != 0 {
		t.Fatalf("after Forget: %+v", after)
	}
	var cs ContainerStats
	if tr.ContainerStats(db.ID, &cs) {
		t.Fatalf("db without an OOM kill kept: %+v", cs)
	}
	clk.t = clk.t.Add(10 * time.Minute)
	if got := tr.OOMKillsRetained(); len(got) != 0 {
		t.Fatalf("OOM kills retained past oom_kill_retention: %v", got)
	}
	tr.Forget([]containers.ID{web.ID})
	if ids := tr.ContainerIDs(); len(ids) != 0 {
		t.Fatalf("held after the OOM retention: %v", ids)
	}
}

func TestUnattributedAndNATErrors(t *testing.T) {
	tr, _ := newTestTracer(t, func(o *Options) { o.NAT = &fakeNAT{err: errors.New("netlink down")} })
	tr.Handle(connectEv(ebpf.EventConnect, 1, 555, "10.0.0.5:1", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventConnect, 2, 100, "10.0.0.5:2", "10.96.0.10:5432"))
	s := tr.Stats()
	if s.Unattributed != 1 || s.NATErrors != 1 || s.EventsProcessed != 2 {
		t.Errorf("stats %+v", s)
	}
	findDest(t, stats(t, tr, web.ID), "10.96.0.10:5432", "10.96.0.10:5432")
}

func TestProcessEvents(t *testing.T) {
	var got []ProcessEvent
	tr, _ := newTestTracer(t, func(o *Options) { o.OnProcess = func(e ProcessEvent) { got = append(got, e) } })
	tr.Handle(&ebpf.Event{Type: ebpf.EventProcessFork, PID: 10, TargetPID: 11, CgroupID: 100})
	tr.Handle(&ebpf.Event{Type: ebpf.EventProcessExec, PID: 11, TargetPID: 11, CgroupID: 100})
	tr.Handle(&ebpf.Event{Type: ebpf.EventProcessExit, PID: 11, TargetPID: 11, CgroupID: 100})
	want := []ProcessEvent{
		{Type: ebpf.EventProcessFork, PID: 11, ParentPID: 10, CgroupID: 100},
		{Type: ebpf.EventProcessExec, PID: 11, CgroupID: 100},
		{Type: ebpf.EventProcessExit, PID: 11, CgroupID: 100},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in      string
		want    PortRange
		wantErr bool
	}{
		{"32768\t60999\n", PortRange{32768, 60999}, false},
		{"1024 65535", PortRange{1024, 65535}, false},
		{"60999 32768", PortRange{}, true},
		{"0 10", PortRange{}, true},
		{"70000 80000", PortRange{}, true},
		{"1", PortRange{}, true},
	}
	for _, tt := range tests {
		got, err := parsePortRange(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%q: got %v, %v", tt.in, got, err)
		}
	}
}

func TestCloseWithoutStart(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkHandleConnectClose(b *testing.B) {
	tr := New(Options{
		Config:         DefaultConfig(),
		Resolver:       &fakeRegistry{byCgroup: map[uint64]*containers.Container{100: web}},
		EphemeralPorts: PortRange{Min: 32768, Max: 60999},
	})
	open := connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:40001", "10.0.0.1:80")
	closeEv := connectEv(ebpf.EventClose, 1, 100, "10.0.0.5:40001", "10.0.0.1:80")
	b.ReportAllocs()
	for b.Loop() {
		tr.Handle(open)
		tr.Handle(closeEv)
	}
}

type countingNAT struct {
	fakeNAT
	lookups int
}

func (n *countingNAT) ActualDestination(src, dst netip.AddrPort) (netip.AddrPort, bool, error) {
	n.lookups++
	return n.fakeNAT.ActualDestination(src, dst)
}

func TestNATLookupsCachedForUnNATedDestinations(t *testing.T) {
	nat := &countingNAT{fakeNAT: fakeNAT{m: map[netip.AddrPort]netip.AddrPort{
		netip.MustParseAddrPort("10.96.0.10:5432"): netip.MustParseAddrPort("10.244.0.7:5432"),
	}}}
	tr, clk := newTestTracer(t, func(o *Options) { o.NAT = nat })
	// SYN retransmits of connections not yet established are looked up by their event.
	for i := 0; i < 3; i++ {
		tr.Handle(connectEv(ebpf.EventRetransmit, uint64(i), 100, "10.0.0.5:1", "10.0.0.1:80"))
		tr.Handle(connectEv(ebpf.EventRetransmit, uint64(i), 100, "10.0.0.5:1", "10.96.0.10:5432"))
	}
	if nat.lookups != 4 { // 1 for the plain destination, 3 for the NATed one
		t.Errorf("%d lookups, want 4", nat.lookups)
	}
	clk.t = clk.t.Add(notNATedRecheck + time.Second)
	tr.Handle(connectEv(ebpf.EventRetransmit, 9, 100, "10.0.0.5:1", "10.0.0.1:80"))
	if nat.lookups != 5 {
		t.Errorf("%d lookups after the recheck interval, want 5", nat.lookups)
	}
	d := findDest(t, stats(t, tr, web.ID), "10.96.0.10:5432", "10.244.0.7:5432")
	if d.Retransmits != 3 {
		t.Errorf("%+v", d)
	}
	// Failed connects need no lookup: they count per destination.
	tr.Handle(connectEv(ebpf.EventConnectFailed, 10, 100, "10.0.0.5:1", "10.96.0.10:5432"))
	if nat.lookups != 5 {
		t.Errorf("%d lookups after a failed connect, want 5", nat.lookups)
	}
	if d := findDest(t, stats(t, tr, web.ID), "10.96.0.10:5432", "10.96.0.10:5432"); d.FailedConnects != 1 {
		t.Errorf("%+v", d)
	}
}
