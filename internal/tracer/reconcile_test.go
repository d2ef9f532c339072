package tracer

import (
	"errors"
	"maps"
	"slices"
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

// destTo returns the stats of container id's destination dst.
func destTo(t *testing.T, tr *Tracer, id containers.ID, dst string) DestinationStats {
	t.Helper()
	var s ContainerStats
	if !tr.ContainerStats(id, &s) {
		t.Fatalf("no state for %s", id)
	}
	d, ok := destOf(&s, dst)
	if !ok {
		t.Fatalf("no destination %s in %+v", dst, s.Destinations)
	}
	return d
}

func closeEv(sock uint64, sent, received uint64) *ebpf.Event {
	ev := connectEv(ebpf.EventClose, sock, 100, "10.0.0.5:40001", "10.0.0.1:80")
	ev.BytesSent, ev.BytesReceived = sent, received
	return ev
}

// TestLostCloseReconciled: a connection the kernel side no longer knows (its close event did
// not fit into the ring buffer, or the LRU map evicted it) is closed once two Refreshes in a
// row, and at least closeLostMinAge, missed it, so its destination and the container's state
// can expire; it is counted lost when no late close came within closeLostTombstoneTTL.
func TestLostCloseReconciled(t *testing.T) {
	const dst = "10.0.0.1:80"
	tr, clk := newTestTracer(t, func(o *Options) { o.Config.DestinationTTL = 10 * time.Minute })
	tr.Handle(connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:40001", dst))
	tr.Handle(connectEv(ebpf.EventConnect, 2, 100, "10.0.0.5:40002", dst))
	k := &fakeTables{conns: map[uint64]ebpf.ConnectionCounters{1: {}, 2: {}}}
	refresh := func(after time.Duration) {
		t.Helper()
		clk.t = clk.t.Add(after)
		if err := tr.refresh(k); err != nil && k.connsErr == nil {
			t.Fatal(err)
		}
	}
	check := func(when string, active int64, lost uint64) {
		t.Helper()
		if got, gotLost := activeTo(t, tr, web.ID, dst), tr.Stats().ClosesLost; got != active || gotLost != lost {
			t.Errorf("%s: active = %d (want %d), ClosesLost = %d (want %d)", when, got, active, gotLost, lost)
		}
	}
	refresh(0)
	check("both open", 2, 0)

	// 1's close was lost; 2 is missing from one reading only (it raced with the iteration).
	delete(k.conns, 1)
	delete(k.conns, 2)
	refresh(10 * time.Second)
	check("after one miss", 2, 0)
	k.conns[2] = ebpf.ConnectionCounters{}
	refresh(10 * time.Second)
	check("1 missed twice, for 10s (its close may still be in the ring buffer)", 2, 0)
	refresh(closeLostMinAge)
	check("1 missed for longer than closeLostMinAge", 1, 0)

	// An incomplete reading of the kernel's map closes nothing.
	delete(k.conns, 2)
	k.connsErr = errors.New("iteration aborted")
	refresh(closeLostMinAge)
	refresh(closeLostMinAge)
	check("after failed readings", 1, 0)
	k.connsErr = nil
	refresh(time.Second)
	refresh(closeLostMinAge)
	check("2 missed for longer than closeLostMinAge", 0, 0)

	// 1's close never comes: counted lost when its tombstone expires. 2's comes late.
	refresh(closeLostTombstoneTTL - closeLostMinAge - time.Second)
	check("1's tombstone expired", 0, 1)
	tr.Handle(closeEv(2, 0, 0))
	refresh(closeLostTombstoneTTL)
	check("2 closed late", 0, 1)
	tr.mu.Lock()
	tombstones := len(tr.lostCloses)
	tr.mu.Unlock()
	if tombstones != 0 {
		t.Errorf("%d tombstones left", tombstones)
	}
	// A close event after the tombstone expired changes nothing.
	tr.Handle(closeEv(1, 500, 500))
	if d := destTo(t, tr, web.ID, dst); d.ActiveConnections != 0 || d.BytesSent != 0 {
		t.Errorf("close after the tombstone expired: %+v", d)
	}
	// Nothing open: the destination and then the container's state expire.
	refresh(11 * time.Minute)
	if n := len(tr.ContainerIDs()); n != 0 {
		t.Errorf("%d containers retained after the lost closes were reconciled", n)
	}
}

// TestLateCloseWhileReaderLags: when the event reader lags more than two collection intervals
// behind the kernel, a connection that closed normally is missing from the kernel's map before
// its close event is applied; it is neither closed as lost nor does it lose its final bytes.
func TestLateCloseWhileReaderLags(t *testing.T) {
	const dst = "10.0.0.1:80"
	tests := []struct {
		name     string
		interval time.Duration // between Refreshes
		misses   int           // Refreshes that miss it before its close event is applied
		active   int64         // active connections just before the close event
	}{
		{"two short intervals", 10 * time.Second, 2, 1},
		{"four short intervals", 5 * time.Second, 4, 1},
		{"reconciled before the close came", 20 * time.Second, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, clk := newTestTracer(t, nil)
			tr.Handle(connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:40001", dst))
			k := &fakeTables{conns: map[uint64]ebpf.ConnectionCounters{1: {BytesSent: 100, BytesReceived: 10}}}
			if err := tr.refresh(k); err != nil {
				t.Fatal(err)
			}
			// It closes after sending 50 bytes more; the close event waits in the ring buffer.
			delete(k.conns, 1)
			for range tc.misses {
				clk.t = clk.t.Add(tc.interval)
				if err := tr.refresh(k); err != nil {
					t.Fatal(err)
				}
			}
			if got := activeTo(t, tr, web.ID, dst); got != tc.active {
				t.Errorf("before the close event: active = %d, want %d", got, tc.active)
			}
			tr.Handle(closeEv(1, 150, 30))
			d := destTo(t, tr, web.ID, dst)
			if d.ActiveConnections != 0 || d.BytesSent != 150 || d.BytesReceived != 30 {
				t.Errorf("after the close event: active %d, sent %d, received %d; want 0, 150, 30",
					d.ActiveConnections, d.BytesSent, d.BytesReceived)
			}
			clk.t = clk.t.Add(10 * time.Minute)
			if err := tr.refresh(k); err != nil {
				t.Fatal(err)
			}
			if lost := tr.Stats().ClosesLost; lost != 0 {
				t.Errorf("ClosesLost = %d, want 0: its close came", lost)
			}
		})
	}
}

// TestLostCloseTombstonesBounded: lost closes beyond maxCloseLostTombstones are counted at
// once instead of waiting for a late close.
func TestLostCloseTombstonesBounded(t *testing.T) {
	const extra = 3
	tr, clk := newTestTracer(t, nil)
	k := &fakeTables{conns: map[uint64]ebpf.ConnectionCounters{}}
	for sock := uint64(1); sock <= maxCloseLostTombstones+extra; sock++ {
		tr.Handle(connectEv(ebpf.EventConnect, sock, 100, "10.0.0.5:40001", "10.0.0.1:80"))
	}
	for range closeLostAfter {
		if err := tr.refresh(k); err != nil {
			t.Fatal(err)
		}
		clk.t = clk.t.Add(closeLostMinAge)
	}
	if err := tr.refresh(k); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	tombstones := len(tr.lostCloses)
	tr.mu.Unlock()
	if got, lost := activeTo(t, tr, web.ID, "10.0.0.1:80"), tr.Stats().ClosesLost; got != 0 || lost != extra || tombstones != maxCloseLostTombstones {
		t.Errorf("active = %d (want 0), ClosesLost = %d (want %d), tombstones %d (want %d)",
			got, lost, extra, tombstones, maxCloseLostTombstones)
	}
}

// TestConnectOverwritesLostClose: a connect on a socket address the tracer still holds open
// (or holds the tombstone of) means the earlier socket's close never arrived.
func TestConnectOverwritesLostClose(t *testing.T) {
	tr, clk := newTestTracer(t, nil)
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

	// Reconciled, then its address taken by a new connection: lost at once, and the new
	// connection's close is its own.
	tr.Handle(connectEv(ebpf.EventConnect, 8, 100, "10.0.0.5:40003", "10.0.0.1:80"))
	k := &fakeTables{conns: map[uint64]ebpf.ConnectionCounters{}}
	for range closeLostAfter + 1 {
		if err := tr.refresh(k); err != nil {
			t.Fatal(err)
		}
		clk.t = clk.t.Add(closeLostMinAge)
	}
	tr.Handle(connectEv(ebpf.EventConnect, 8, 100, "10.0.0.5:40004", "10.0.0.2:80"))
	if lost := tr.Stats().ClosesLost; lost != 2 {
		t.Errorf("ClosesLost = %d, want 2", lost)
	}
	tr.Handle(closeEv(8, 0, 0))
	if a, b := activeTo(t, tr, web.ID, "10.0.0.1:80"), activeTo(t, tr, web.ID, "10.0.0.2:80"); a != 0 || b != 0 {
		t.Errorf("after the reused address closed: %d, %d", a, b)
	}
	clk.t = clk.t.Add(closeLostTombstoneTTL)
	if err := tr.refresh(k); err != nil {
		t.Fatal(err)
	}
	if lost := tr.Stats().ClosesLost; lost != 2 {
		t.Errorf("ClosesLost = %d after the tombstone TTL, want still 2", lost)
	}
}

// TestSeededLostClose: the kernel deletes a seeded tuple at its close even when the close event
// found no room; the seeded connection missing from the seeded map is closed, and a late close
// event carrying its id is not lost.
func TestSeededLostClose(t *testing.T) {
	const dbDst = "10.0.0.9:5432"
	kernel := newRecordingKernel()
	clk := &clock{t: time.Unix(1700000000, 0)}
	tr := newSeedTracer(t, func(o *Options) { o.Now = clk.now })
	if _, err := tr.seed(fixtureTree(t).root, kernel); err != nil {
		t.Fatal(err)
	}
	k := &fakeTables{seeded: map[uint64]bool{}}
	for id := range kernel.added {
		k.seeded[id] = true
	}
	refresh := func(after time.Duration) {
		t.Helper()
		clk.t = clk.t.Add(after)
		if err := tr.refresh(k); err != nil {
			t.Fatal(err)
		}
	}
	refresh(0)
	if got := activeTo(t, tr, webC.ID, dbDst); got != 1 {
		t.Fatalf("active = %d, want 1", got)
	}
	lostID := kernel.idOf(t, "10.0.0.5:41000", dbDst)
	lateID := kernel.idOf(t, "[::ffff:10.0.0.5]:42000", "[::ffff:10.0.0.10]:6379")
	delete(k.seeded, lostID)
	delete(k.seeded, lateID)
	refresh(time.Second)
	refresh(closeLostMinAge)
	if got := activeTo(t, tr, webC.ID, dbDst); got != 0 {
		t.Errorf("active = %d, want 0", got)
	}
	tr.Handle(&ebpf.Event{Type: ebpf.EventClose, Sock: lateID})
	refresh(closeLostTombstoneTTL)
	if lost := tr.Stats().ClosesLost; lost != 1 {
		t.Errorf("ClosesLost = %d, want 1", lost)
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
		o.Resolver.(*fakeRegistry).byPID[43] = web
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

// TestAcceptCountsOnLocalAddress: accepted connections count on the address they were
// accepted on (ephemeral ports folded), whatever listener accepted them.
func TestAcceptCountsOnLocalAddress(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	accept := func(local string) {
		tr.Handle(connectEv(ebpf.EventAccept, 9, 200, local, "10.0.0.5:40001"))
	}
	tr.Handle(connectEv(ebpf.EventListenOpen, 1, 200, "0.0.0.0:8080", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 2, 200, "[::]:9090", "[::]:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 4, 200, "127.0.0.1:7000", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 5, 200, "10.0.0.7:45000", "0.0.0.0:0")) // ephemeral: folded to port 0
	accept("127.0.0.1:8080")
	accept("10.1.2.3:8080")
	accept("10.1.2.3:8080")
	accept("10.1.2.3:9090")  // IPv4 on a dual-stack wildcard listener
	accept("[fd00::1]:9090") // IPv6 on it
	accept("127.0.0.1:7000") // on the exact listener's own row
	accept("10.0.0.7:45000") // ephemeral ports fold on both sides
	accept("10.0.0.7:6000")  // no listener known
	type row struct {
		open    bool
		inbound uint64
	}
	got := map[string]row{}
	for _, l := range stats(t, tr, db.ID).Listens {
		got[l.Address] = row{l.Open, l.InboundConnections}
	}
	want := map[string]row{
		"0.0.0.0:8080": {true, 0}, "[::]:9090": {true, 0}, // namespace never read: wildcards as they are
		"127.0.0.1:8080": {false, 1}, "10.1.2.3:8080": {false, 2}, "10.1.2.3:9090": {false, 1}, "[fd00::1]:9090": {false, 1},
		"127.0.0.1:7000": {true, 1}, "10.0.0.7:0": {true, 1}, "10.0.0.7:6000": {false, 1},
	}
	if !maps.Equal(got, want) {
		t.Errorf("listen addresses %v, want %v", got, want)
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
	if err := tr.Refresh(); err != nil {
		t.Fatal(err)
	}
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
	if i := slices.IndexFunc(s.Listens, func(l ListenStats) bool { return l.Address == "127.0.0.1:8080" }); i < 0 ||
		s.Listens[i].InboundConnections != 1 || !s.Listens[i].Start.Equal(t1) {
		t.Errorf("after expiry: %+v", s.Listens)
	}
	if s.OOMKills != 1 || !s.OOMKillsStart.Equal(t1) {
		t.Errorf("after retention: %d OOM kills since %v, want since %v", s.OOMKills, s.OOMKillsStart, t1)
	}
}
