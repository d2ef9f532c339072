package tracer

import (
	"errors"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// fakeTables is the kernel side's connections and seeded maps as Refresh reads them.
type fakeTables struct {
	conns     map[uint64]ebpf.ConnectionCounters
	seeded    map[uint64]bool
	connsErr  error
	seededErr error
}

func (k *fakeTables) Connections(fn func(sock uint64, c *ebpf.ConnectionCounters)) error {
	for sock, c := range k.conns {
		fn(sock, &c)
	}
	return k.connsErr
}

func (k *fakeTables) SeededConnections(fn func(id uint64)) error {
	for id := range k.seeded {
		fn(id)
	}
	return k.seededErr
}

func activeTo(t *testing.T, tr *Tracer, id containers.ID, dst string) int64 {
	t.Helper()
	var s ContainerStats
	if !tr.ContainerStats(id, &s) {
		return -1
	}
	d, ok := destOf(&s, dst)
	if !ok {
		return -1
	}
	return d.ActiveConnections
}

// TestLostCloseReconciled: a connection the kernel side no longer knows (its close event did
// not fit into the ring buffer, or the LRU map evicted it) is closed after two Refreshes that
// miss it, so its destination and the container's state can expire.
func TestLostCloseReconciled(t *testing.T) {
	const dst = "10.0.0.1:80"
	tr, clk := newTestTracer(t, func(o *Options) { o.Config.DestinationTTL = time.Minute })
	tr.Handle(connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:40001", dst))
	tr.Handle(connectEv(ebpf.EventConnect, 2, 100, "10.0.0.5:40002", dst))
	k := &fakeTables{conns: map[uint64]ebpf.ConnectionCounters{1: {}, 2: {}}}
	refresh := func() {
		t.Helper()
		if err := tr.refresh(k); err != nil && k.connsErr == nil {
			t.Fatal(err)
		}
	}
	refresh()
	if got := activeTo(t, tr, web.ID, dst); got != 2 {
		t.Fatalf("active = %d, want 2", got)
	}

	// 1's close was lost; 2 is missing from one reading only (it raced with the iteration).
	delete(k.conns, 1)
	delete(k.conns, 2)
	refresh()
	if got := activeTo(t, tr, web.ID, dst); got != 2 {
		t.Errorf("after one miss: active = %d, want 2 (the close may still be in the ring buffer)", got)
	}
	k.conns[2] = ebpf.ConnectionCounters{}
	refresh()
	if got, lost := activeTo(t, tr, web.ID, dst), tr.Stats().ClosesLost; got != 1 || lost != 1 {
		t.Errorf("after two misses: active = %d (want 1), ClosesLost = %d (want 1)", got, lost)
	}
	// An incomplete reading of the kernel's map closes nothing.
	delete(k.conns, 2)
	k.connsErr = errors.New("iteration aborted")
	refresh()
	refresh()
	if got := activeTo(t, tr, web.ID, dst); got != 1 {
		t.Errorf("after failed readings: active = %d, want 1", got)
	}
	k.connsErr = nil
	refresh()
	refresh()
	if got, lost := activeTo(t, tr, web.ID, dst), tr.Stats().ClosesLost; got != 0 || lost != 2 {
		t.Errorf("active = %d (want 0), ClosesLost = %d (want 2)", got, lost)
	}
	// The late close event of a reconciled connection changes nothing.
	tr.Handle(connectEv(ebpf.EventClose, 1, 100, "10.0.0.5:40001", dst))
	if got := activeTo(t, tr, web.ID, dst); got != 0 {
		t.Errorf("late close: active = %d", got)
	}
	// Nothing open: the destination and then the container's state expire.
	clk.t = clk.t.Add(2 * time.Minute)
	refresh()
	if n := len(tr.Containers()); n != 0 {
		t.Errorf("%d containers retained after the lost closes were reconciled", n)
	}
}

// TestConnectOverwritesLostClose: a connect on a socket address the tracer still holds open
// means the earlier socket's close never arrived.
func TestConnectOverwritesLostClose(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	tr.Handle(connectEv(ebpf.EventConnect, 7, 100, "10.0.0.5:40001", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventConnect, 7, 100, "10.0.0.5:40002", "10.0.0.2:80"))
	if a, b := activeTo(t, tr, web.ID, "10.0.0.1:80"), activeTo(t, tr, web.ID, "10.0.0.2:80"); a != 0 || b != 1 {
		t.Errorf("active: old socket %d (want 0), new socket %d (want 1)", a, b)
	}
	if lost := tr.Stats().ClosesLost; lost != 1 {
		t.Errorf("ClosesLost = %d, want 1", lost)
	}
	tr.Handle(connectEv(ebpf.EventClose, 7, 100, "10.0.0.5:40002", "10.0.0.2:80"))
	if a, b := activeTo(t, tr, web.ID, "10.0.0.1:80"), activeTo(t, tr, web.ID, "10.0.0.2:80"); a != 0 || b != 0 {
		t.Errorf("after close: %d, %d", a, b)
	}
}

// TestSeededLostClose: the kernel deletes a seeded tuple at its close even when the close event
// found no room; the seeded connection missing from the seeded map is closed.
func TestSeededLostClose(t *testing.T) {
	const dbDst = "10.0.0.9:5432"
	kernel := newRecordingKernel()
	tr := newSeedTracer(t, nil)
	if _, err := tr.seed(fixtureTree(t).root, kernel); err != nil {
		t.Fatal(err)
	}
	k := &fakeTables{seeded: map[uint64]bool{}}
	for id := range kernel.added {
		k.seeded[id] = true
	}
	if err := tr.refresh(k); err != nil {
		t.Fatal(err)
	}
	if got := activeTo(t, tr, webC.ID, dbDst); got != 1 {
		t.Fatalf("active = %d, want 1", got)
	}
	delete(k.seeded, kernel.idOf(t, "10.0.0.5:41000", dbDst))
	for range 2 {
		if err := tr.refresh(k); err != nil {
			t.Fatal(err)
		}
	}
	if got, lost := activeTo(t, tr, webC.ID, dbDst), tr.Stats().ClosesLost; got != 0 || lost != 1 {
		t.Errorf("active = %d (want 0), ClosesLost = %d (want 1)", got, lost)
	}
	tr.mu.Lock()
	index := len(tr.seededIndex)
	tr.mu.Unlock()
	if index != len(k.seeded) {
		t.Errorf("seeded index holds %d, the kernel %d", index, len(k.seeded))
	}
	// The other seeded connections are still there.
	if got := stateOf(tr, webC.ID); len(got) == 0 {
		t.Error("web's state vanished")
	}
}

// TestOOMKillAttributedToVictim: mark_victim runs in the task that hit the OOM condition; its
// pid must never decide whose kill it was.
func TestOOMKillAttributedToVictim(t *testing.T) {
	tr, _ := newTestTracer(t, func(o *Options) {
		o.Registry.(*fakeRegistry).byPID[43] = web
	})
	// The victim's cgroup is unknown (already gone); the triggering task 42 is db's.
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 999, PID: 42, TargetPID: 43})
	if got := stats(t, tr, web.ID).OOMKills; got != 1 {
		t.Errorf("victim's container: %d OOM kills, want 1", got)
	}
	var s ContainerStats
	if tr.ContainerStats(db.ID, &s) && s.OOMKills != 0 {
		t.Errorf("triggering task's container got %d OOM kills", s.OOMKills)
	}
	// Neither the victim's cgroup nor its pid is known: unattributed, not the trigger's.
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 999, PID: 42, TargetPID: 44})
	if tr.ContainerStats(db.ID, &s) && s.OOMKills != 0 {
		t.Errorf("triggering task's container got %d OOM kills", s.OOMKills)
	}
	if u := tr.Stats().Unattributed; u != 1 {
		t.Errorf("Unattributed = %d, want 1", u)
	}
}

// TestAcceptFoldsOntoListener: the accepted socket's local address is folded onto the
// container's listener for that port.
func TestAcceptFoldsOntoListener(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	accept := func(local string) {
		tr.Handle(connectEv(ebpf.EventAccept, 9, 200, local, "10.0.0.5:40001"))
	}
	tr.Handle(connectEv(ebpf.EventListenOpen, 1, 200, "0.0.0.0:8080", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 2, 200, "[::]:9090", "[::]:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 3, 200, "0.0.0.0:7000", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 4, 200, "127.0.0.1:7000", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 5, 200, "10.0.0.7:45000", "0.0.0.0:0")) // ephemeral: folded to port 0
	accept("127.0.0.1:8080")
	accept("10.1.2.3:8080")
	accept("10.1.2.3:9090")  // IPv4 on a dual-stack wildcard listener
	accept("[fd00::1]:9090") // IPv6 on it
	accept("127.0.0.1:7000") // the exact listener wins over the wildcard
	accept("10.0.0.7:7000")  // only the wildcard matches
	accept("10.0.0.7:45000") // ephemeral ports fold on both sides
	accept("10.0.0.7:6000")  // no listener known: the local address itself
	got := map[string]uint64{}
	for _, l := range stats(t, tr, db.ID).Listens {
		got[l.Address] = l.InboundConnections
	}
	want := map[string]uint64{
		"0.0.0.0:8080": 2, "[::]:9090": 2, "0.0.0.0:7000": 1, "127.0.0.1:7000": 1, "10.0.0.7:0": 1, "10.0.0.7:6000": 1,
	}
	if len(got) != len(want) {
		t.Errorf("listen addresses %v, want %v", got, want)
	}
	for addr, n := range want {
		if got[addr] != n {
			t.Errorf("%s: %d inbound, want %d (all: %v)", addr, got[addr], n, got)
		}
	}
}

// TestCountersRestartUnderNewStart: state forgotten after destination_ttl or
// oom_kill_retention counts from zero again, under the time it was created again.
func TestCountersRestartUnderNewStart(t *testing.T) {
	tr, clk := newTestTracer(t, func(o *Options) {
		o.Config.DestinationTTL = time.Minute
		o.Config.OOMKillRetention = time.Minute
	})
	t0 := clk.t
	tr.Handle(connectEv(ebpf.EventConnectFailed, 1, 100, "10.0.0.5:1", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventConnectFailed, 1, 100, "10.0.0.5:1", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventListenClose, 2, 100, "0.0.0.0:8080", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventAccept, 3, 100, "127.0.0.1:8080", "127.0.0.1:50000"))
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 100, TargetPID: 7})
	s := stats(t, tr, web.ID)
	if d := findDest(t, s, "10.0.0.1:80", "10.0.0.1:80"); d.FailedConnects != 2 || !d.Start.Equal(t0) {
		t.Errorf("before expiry: %+v", d)
	}
	if len(s.Listens) != 1 || s.Listens[0].InboundConnections != 1 || !s.Listens[0].Start.Equal(t0) {
		t.Errorf("before expiry: %+v", s.Listens)
	}
	if s.OOMKills != 1 || !s.OOMKillsStart.Equal(t0) {
		t.Errorf("before expiry: %d OOM kills since %v", s.OOMKills, s.OOMKillsStart)
	}

	clk.t = clk.t.Add(2 * time.Minute)
	tr.Refresh()
	t1 := clk.t.Add(time.Second)
	clk.t = t1
	tr.Handle(connectEv(ebpf.EventConnectFailed, 1, 100, "10.0.0.5:1", "10.0.0.1:80"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 2, 100, "0.0.0.0:8080", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventAccept, 3, 100, "127.0.0.1:8080", "127.0.0.1:50000"))
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 100, TargetPID: 7})
	s = stats(t, tr, web.ID)
	if d := findDest(t, s, "10.0.0.1:80", "10.0.0.1:80"); d.FailedConnects != 1 || !d.Start.Equal(t1) {
		t.Errorf("after expiry: %+v, want 1 failed since %v", d, t1)
	}
	if len(s.Listens) != 1 || s.Listens[0].InboundConnections != 1 || !s.Listens[0].Start.Equal(t1) {
		t.Errorf("after expiry: %+v", s.Listens)
	}
	if s.OOMKills != 1 || !s.OOMKillsStart.Equal(t1) {
		t.Errorf("after retention: %d OOM kills since %v, want since %v", s.OOMKills, s.OOMKillsStart, t1)
	}
}
