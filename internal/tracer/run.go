package tracer

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/conntrack"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/netns"
	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// run is the kernel attachment of a started tracer.
type run struct {
	probe  *ebpf.Probe
	nat    *conntrack.Resolver // opened by Start, closed by Close
	addrs  *netns.Reader       // likewise
	stop   chan struct{}       // closed by Close: seeding gives up
	seeded chan struct{}       // closed once seeding finished or gave up
	// flushed gets a signal when the reader has applied every event of a Drain's flush.
	flushed chan struct{}
	done    sync.WaitGroup
}

// MissingTracepoints lists the optional tracepoints the kernel lacks (nil before Start).
func (t *Tracer) MissingTracepoints() []string {
	if r := t.run.Load(); r != nil {
		return r.probe.Missing
	}
	return nil
}

// Start loads the BPF programs, opens conntrack when configured and starts the goroutine that
// reads events. That goroutine first records the sockets open before the programs were
// attached (seed.go: a walk of every process's sockets, possibly slow on a busy node) and only
// then reads the first event, so Start returns at once and no event is applied before the
// seeding it may replace or close; Seeded tells when it is done. A kernel that cannot run the
// tracer yields an error wrapping ebpf.ErrUnsupported or ebpf.ErrPermission; the tracer then
// stays empty and Close is still safe. A conntrack that cannot be opened is logged and
// actual_destination falls back to destination.
func (t *Tracer) Start() error {
	if t.run.Load() != nil {
		return errors.New("tracer already started")
	}
	probe, err := ebpf.Load(ebpf.LoadOptions{RingBufferSize: t.opts.Config.RingBufferSize})
	if err != nil {
		return fmt.Errorf("starting eBPF tracer: %w", err)
	}
	if len(probe.Missing) > 0 {
		t.opts.Logger.Warn("kernel lacks optional tracepoints: TCP byte counters and latency stay empty",
			zap.Strings("missing", probe.Missing))
	}
	r := &run{probe: probe}
	if t.opts.NAT == nil && t.opts.Config.Conntrack {
		nat, err := conntrack.Open()
		if err != nil {
			t.opts.Logger.Warn("conntrack unavailable: actual_destination will equal destination", zap.Error(err))
		} else {
			r.nat = nat
			t.opts.NAT = nat
		}
	}
	t.openNamespaces(r)
	r.stop, r.seeded, r.flushed = make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
	t.mu.Lock()
	t.kernel = probe
	t.seedStop = r.stop
	t.mu.Unlock()
	t.run.Store(r)
	var kernel seededSockets = probe
	if t.wrapSeedKernel != nil {
		kernel = t.wrapSeedKernel(kernel)
	}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		t.seedExisting(kernel)
		close(r.seeded)
		t.read(probe)
	}()
	return nil
}

// openNamespaces finds the host's network namespace and opens the reader of namespaces'
// addresses, unless Options gave them. Without them the tracer still runs: loopback counts
// in every namespace, wildcard listeners stay wildcards.
func (t *Tracer) openNamespaces(r *run) {
	root := procfs.Root(t.opts.Config.ProcRoot)
	if t.hostNetNS == 0 {
		host, fallback, err := netns.Host(root)
		switch {
		case err != nil:
			t.opts.Logger.Warn("cannot tell the host's network namespace: loopback listens and destinations count in every namespace", zap.Error(err))
		case fallback != nil:
			t.opts.Logger.Info("pid 1's network namespace is unreadable: the agent's own is taken as the host's", zap.Error(fallback))
		}
		t.mu.Lock()
		t.hostNetNS = host
		t.mu.Unlock()
	}
	if t.opts.Addresses == nil {
		reader, err := netns.Open(root)
		if err != nil {
			t.opts.Logger.Warn("cannot read network namespaces' addresses: wildcard listen addresses are reported as wildcards", zap.Error(err))
			return
		}
		r.addrs = reader
		t.refreshMu.Lock()
		t.opts.Addresses = reader
		t.refreshMu.Unlock()
	}
}

// Seeded returns a channel closed once the sockets open at Start have been recorded (or their
// reading failed or was cut short by Close). Before Start it is already closed.
func (t *Tracer) Seeded() <-chan struct{} {
	if r := t.run.Load(); r != nil {
		return r.seeded
	}
	closed := make(chan struct{})
	close(closed)
	return closed
}

// seedExisting records the listeners and connections that were open before the programs were
// attached (see seed.go). It runs on the reader goroutine before the first event is read, so
// that connect events of connections established in between find their seeded entries.
func (t *Tracer) seedExisting(kernel seededSockets) {
	root := procfs.Root(t.opts.Config.ProcRoot)
	res, err := t.seed(root, kernel)
	if errors.Is(err, errSeedStopped) {
		return
	}
	if err != nil {
		t.opts.Logger.Warn("cannot read the TCP sockets open before the agent started: their listen addresses and connections appear only once they change",
			zap.String("proc_root", root), zap.Error(err))
		return
	}
	st := t.Stats()
	t.opts.Logger.Info("recorded the TCP sockets open before the agent started",
		zap.Int("listens", res.Listens), zap.Int("connections", res.Connections),
		zap.Int("network_namespaces", res.Namespaces), zap.Int("processes", res.Processes),
		zap.Duration("duration", res.Duration), zap.Uint64("vanished_processes", st.SeedVanished),
		zap.Uint64("unreadable", st.SeedUnreadable), zap.Uint64("malformed_lines", st.SeedMalformed))
}

func (t *Tracer) read(p *ebpf.Probe) {
	var ev ebpf.Event
	for {
		err := p.ReadEvent(&ev)
		switch {
		case err == nil:
			t.Handle(&ev)
		case errors.Is(err, ebpf.ErrClosed):
			return
		case errors.Is(err, ebpf.ErrFlushed):
			if r := t.run.Load(); r != nil {
				select {
				case r.flushed <- struct{}{}:
				default:
				}
			}
		default:
			// a malformed record: count it and keep reading
			t.decodeErrors.Add(1)
		}
	}
}

// Drain applies every event the kernel has written so far, without waiting for the reader's
// next poll (events wait up to ebpf.PollInterval in the ring buffer), or gives up after
// timeout. The receiver calls it before its last collection at shutdown, so what happened just
// before the stop is counted.
func (t *Tracer) Drain(timeout time.Duration) {
	r := t.run.Load()
	if r == nil {
		return
	}
	select {
	case <-r.flushed: // a stale signal of an earlier Drain that gave up
	default:
	}
	if err := r.probe.Flush(); err != nil {
		return
	}
	select {
	case <-r.flushed:
	case <-time.After(timeout):
	}
}

// Refresh pulls the live counters of open connections from the kernel, closes the connections
// whose close event was lost (see reconcile), recomputes latency and expires idle state. The
// receiver calls it once per collection, before ContainerStats.
func (t *Tracer) Refresh() error {
	var k kernelTables
	if r := t.run.Load(); r != nil {
		k = r.probe
	}
	return t.refresh(k)
}

// kernelTables is what Refresh reads from the kernel side. *ebpf.Probe implements it.
type kernelTables interface {
	Connections(fn func(sock uint64, c *ebpf.ConnectionCounters)) error
	SeededConnections(fn func(id uint64)) error
}

// A connection missing on the kernel side is closed as lost only once both hold:
//   - closeLostAfter consecutive Refreshes missed it: one miss may be a connection that closed
//     (or was added) while the kernel's maps were being read, whose event the reader has not
//     applied yet;
//   - it has been missing for closeLostMinAge: under an event burst the reader can lag behind
//     the kernel by more than two collection intervals (which may be a few seconds), with the
//     close still in the ring buffer. Normally events are read within ebpf.PollInterval; 30 s
//     is far beyond that and still bounds how long a lost close keeps a connection active.
//
// Even then the close may still come: the connection is kept as a tombstone for
// closeLostTombstoneTTL, so a late close event still adds its final bytes, and it is counted in
// ClosesLost only when its tombstone expires without one. At most maxCloseLostTombstones are
// kept (a burst of lost closes beyond that is counted at once); the TTL is well below the
// default destination_ttl (10m), so the destination a late close accounts to is still there.
const (
	closeLostAfter         = 2
	closeLostMinAge        = 30 * time.Second
	closeLostTombstoneTTL  = 5 * time.Minute
	maxCloseLostTombstones = 4096
)

func (t *Tracer) refresh(k kernelTables) error {
	var errConns, errSeeded error
	t.refreshMu.Lock()
	defer t.refreshMu.Unlock()
	if k != nil {
		clear(t.liveSocks)
		errConns = k.Connections(func(sock uint64, c *ebpf.ConnectionCounters) {
			t.liveSocks[sock] = struct{}{}
			t.UpdateConnection(sock, c)
		})
		// Seeded ids have the top bit set and never equal a socket address: one set holds both.
		errSeeded = k.SeededConnections(func(id uint64) { t.liveSocks[id] = struct{}{} })
	}
	now := t.now()
	t.mu.Lock()
	if k != nil {
		// An incomplete reading proves nothing missing.
		t.reconcile(t.liveSocks, errConns == nil, errSeeded == nil, now)
	}
	t.updateLatency(now)
	t.expire(now)
	t.mu.Unlock()
	t.refreshListens()
	return errors.Join(errConns, errSeeded)
}

// reconcile closes the connections the kernel side no longer knows (see closeLostAfter) and
// counts the tombstones whose close event never came. A close event is lost when
// the ring buffer was full, and none is ever sent when the kernel's LRU connections map evicted
// the socket; either way the kernel's map no longer has it (for seeded connections: the seeded
// map, whose entry the kernel deletes at the close whether or not the event fitted). Without
// this, the connection would stay active forever, and its destination and container state
// would never expire. t.mu is held.
func (t *Tracer) reconcile(live map[uint64]struct{}, kernelRead, seededRead bool, now time.Time) {
	for sock, conn := range t.connections {
		if conn.seeded == nil && !kernelRead || conn.seeded != nil && !seededRead {
			continue
		}
		if _, ok := live[sock]; ok {
			conn.missing = 0
			continue
		}
		if conn.missing == 0 {
			conn.missingSince = now
		}
		if conn.missing < closeLostAfter {
			conn.missing++
		}
		if conn.missing >= closeLostAfter && now.Sub(conn.missingSince) >= closeLostMinAge {
			t.forget(sock, conn, now)
			if len(t.lostCloses) < maxCloseLostTombstones {
				t.lostCloses[sock] = lostClose{conn: conn, at: now}
			} else {
				t.closesLost.Add(1)
			}
		}
	}
	for sock, lc := range t.lostCloses {
		if now.Sub(lc.at) >= closeLostTombstoneTTL {
			delete(t.lostCloses, sock)
			t.closesLost.Add(1)
		}
	}
}

// lostClose is the tombstone of a connection reconcile closed: its close event may still be in
// the ring buffer (see closeLostMinAge).
type lostClose struct {
	conn *connection // as forgotten: bytes accounted up to the last Refresh
	at   time.Time
}

// Close stops seeding and waits for it, detaches from the kernel and waits for the reader
// goroutine. Safe if Start failed or never ran, and safe to call twice.
func (t *Tracer) Close() error {
	r := t.run.Swap(nil)
	if r == nil {
		return nil
	}
	// Seeding uses the kernel's maps until it ends: they are released only after it has. It
	// stops at its next check, and never waits for the ring buffer, which is still open.
	close(r.stop)
	<-r.seeded
	// Nor may a connect event being applied withdraw a seeded entry (replaceSeeded) meanwhile.
	t.mu.Lock()
	t.kernel = nil
	t.mu.Unlock()
	err := r.probe.Close()
	r.done.Wait()
	if r.nat != nil {
		err = errors.Join(err, r.nat.Close())
		t.opts.NAT = nil
	}
	if r.addrs != nil {
		t.refreshMu.Lock()
		t.opts.Addresses = nil
		t.refreshMu.Unlock()
		err = errors.Join(err, r.addrs.Close())
	}
	return err
}
