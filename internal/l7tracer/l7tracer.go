// Package l7tracer runs the L7 capture: it loads the kernel side (internal/ebpf's L7Probe,
// sharing the TCP tracer's map of connections open before the agent started), reads its
// segments, turns them into requests (internal/l7's Tracker), attributes each request to a
// container and, for outbound ones, to the TCP tracer's destination of the connection, and
// aggregates them (internal/l7/requeststats) for the receiver to record.
//
// It owns the wiring only: protocols are internal/l7's, aggregation and its limits
// requeststats', TCP state the tracer's; it must not build pdata.
//
//	t := l7tracer.New(l7tracer.Options{Config: cfg, Resolver: registry, Connections: tcp})
//	err := t.Start(tcp.Probe())     // errors wrap ebpf.ErrUnsupported / ErrPermission
//	t.Collect(time.Now())           // at each collection: expiry
//	t.ContainerStats(id, &st)       // per container, reusing st
//	t.IPToFQDN(func(ip, fqdn) {...})
//	t.Close()
package l7tracer

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
)

// Resolver attributes requests measured at a server, and DNS requests, to containers by the
// cgroup v2 id of the process that made the syscall, or its pid. *containers.Registry
// implements it.
type Resolver interface {
	ContainerIDByCgroupID(cgroupID uint64) (containers.ID, bool)
	ContainerIDByPID(pid uint32) (containers.ID, bool)
}

// Connections says which container opened an outbound connection and where it goes, by the id
// the kernel reports it with. *tracer.Tracer implements it.
type Connections interface {
	Connection(sock uint64) (id containers.ID, dst, actual netip.AddrPort, ok bool)
}

// Options configure a Tracer.
type Options struct {
	Config      Config
	Resolver    Resolver
	Connections Connections
	Logger      *zap.Logger
	// Now is the wall clock of the aggregates; nil means time.Now.
	Now func() time.Time
}

// Stats are the self-metrics; every count is cumulative.
type Stats struct {
	Kernel       ebpf.L7Counters    // the kernel side's
	Tracker      l7.Stats           // parsing and pairing
	Store        requeststats.Stats // aggregation limits
	Records      uint64             // records read from the ring buffer
	DecodeErrors uint64             // malformed records
	Unattributed uint64             // requests no container, or no outbound connection of the TCP tracer, claims
	Connections  int                // connections with parser state now
}

// attribution is what an outbound connection's requests are recorded under.
type attribution struct {
	id          containers.ID
	dst, actual netip.AddrPort
	recent      *requeststats.Recent // the series the connection's last request went to
}

// waiting is an outbound request whose connection the TCP tracer did not know yet: its
// connect event may still be on the way through the other ring buffer.
type waiting struct {
	sock     uint64
	id       containers.ID // the container of the process that completed the request
	proto    l7.Protocol
	status   l7.Status
	method   l7.Method
	duration time.Duration
	since    time.Time
}

const (
	// maxWaiting bounds the requests waiting for their connection; beyond it they are
	// dropped and counted as unattributed.
	maxWaiting = 4096
	// waitFor is how long a request waits for its connection's connect event.
	waitFor = 2 * time.Second
	// retryEvery is how often waiting requests are retried while segments keep coming.
	retryEvery = 100 * time.Millisecond
	// maxCachedConnections bounds the attribution cache of outbound connections (emptied
	// when full; entries come back from the TCP tracer).
	maxCachedConnections = 16384
)

// Tracer is the running L7 capture.
type Tracer struct {
	opts  Options
	now   func() time.Time
	store *requeststats.Store
	log   *zap.Logger

	mu      sync.Mutex // the Tracker, the cache and the waiting requests
	tracker *l7.Tracker
	conns   map[uint64]attribution
	inbound map[uint64]*requeststats.Recent // per served connection, as attribution.recent
	waiting []waiting
	// While the reader runs, a request's wall time is the kernel's timestamp (CLOCK_MONOTONIC)
	// of its end from this pair, taken again every retryEvery: no clock read per request.
	wallBase time.Time
	monoBase uint64

	probe   atomic.Pointer[ebpf.L7Probe] // set by Start
	done    chan struct{}
	flushed chan struct{} // a signal when the reader has fed every record of a Drain's flush

	records, decodeErrors, unattributed atomic.Uint64
}

// New returns a Tracer that only aggregates; Start attaches it to the kernel.
func New(opts Options) *Tracer {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	t := &Tracer{opts: opts, now: opts.Now, log: opts.Logger, conns: map[uint64]attribution{}, inbound: map[uint64]*requeststats.Recent{}}
	if t.now == nil {
		t.now = time.Now
	}
	cfg := opts.Config
	t.store = requeststats.New(requeststats.Config{
		MaxSeriesPerContainer:  cfg.MaxSeriesPerContainer,
		MaxDomainsPerContainer: cfg.MaxDomainsPerContainer,
		TTL:                    cfg.SeriesTTL,
	}, t.now)
	var topts l7.TrackerOptions
	for p, on := range cfg.Protocols.enabled() {
		if proto := l7.Protocol(p); proto.Valid() && !on {
			topts.Disabled[proto] = true
		}
	}
	t.tracker = l7.NewTracker(topts, t.onRequest)
	return t
}

// Start loads and attaches the kernel side and starts the reader. seeded is the TCP tracer's
// probe, whose map of connections open before the agent started is shared (nil: none).
func (t *Tracer) Start(seeded *ebpf.Probe) error {
	if t.probe.Load() != nil {
		return errors.New("l7 tracer already started")
	}
	p, err := ebpf.LoadL7(ebpf.L7Options{
		RingBufferSize: t.opts.Config.RingBufferSize,
		Protocols:      t.opts.Config.Protocols.Mask(),
		Seeded:         seeded,
	})
	if err != nil {
		return err
	}
	t.done, t.flushed = make(chan struct{}), make(chan struct{}, 1)
	t.probe.Store(p)
	go t.read(p)
	return nil
}

// read feeds every record to the Tracker until the probe closes.
func (t *Tracer) read(p *ebpf.L7Probe) {
	defer close(t.done)
	var seg l7.Segment
	until := time.Now().Add(retryEvery)
	t.mu.Lock()
	t.syncClock()
	t.mu.Unlock()
	n := 0
	for {
		rec, err := p.ReadRecordUntil(until)
		switch {
		case err == nil:
			t.records.Add(1)
			if err := seg.Decode(rec); err != nil {
				t.decodeErrors.Add(1)
				continue
			}
			t.mu.Lock()
			t.feedLocked(&seg)
			n++
			if n&255 == 0 {
				if now := time.Now(); now.After(until) {
					t.retryWaiting(now)
					t.syncClock()
					until = now.Add(retryEvery)
				}
			}
			t.mu.Unlock()
		case errors.Is(err, os.ErrDeadlineExceeded):
			now := time.Now()
			t.mu.Lock()
			t.retryWaiting(now)
			t.syncClock()
			t.mu.Unlock()
			until = now.Add(retryEvery)
		case errors.Is(err, ebpf.ErrFlushed):
			t.mu.Lock()
			t.retryWaiting(time.Now())
			t.mu.Unlock()
			select {
			case t.flushed <- struct{}{}:
			default:
			}
		case errors.Is(err, ebpf.ErrClosed):
			return
		default:
			t.decodeErrors.Add(1)
		}
	}
}

// syncClock takes the wall and kernel clocks' pair requests are timed from; t.mu is held.
func (t *Tracer) syncClock() {
	if mono, err := monotonicNow(); err == nil {
		t.wallBase, t.monoBase = t.now(), mono
	}
}

// requestTime is when r ended on the wall clock; t.mu is held.
func (t *Tracer) requestTime(r *l7.Request) time.Time {
	if t.wallBase.IsZero() {
		return t.now() // fed without the reader (Feed): the timestamps are not the kernel's
	}
	return t.wallBase.Add(time.Duration(int64(r.End - t.monoBase)))
}

// Feed aggregates one segment as the ring buffer's reader does (Start). A Tracer that is not
// started is fed only this way: the receiver's tests drive one so.
func (t *Tracer) Feed(seg *l7.Segment) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.feedLocked(seg)
}

// feedLocked hands a segment to the Tracker; t.mu is held.
func (t *Tracer) feedLocked(seg *l7.Segment) {
	if seg.Flags&(l7.FlagClosed|l7.FlagNew) != 0 {
		delete(t.conns, seg.Sock) // gone, or a new connection at a reused address
		delete(t.inbound, seg.Sock)
	}
	t.tracker.Feed(seg)
}

// Drain waits (at most timeout) until the reader has fed every record the kernel wrote
// before the call, so that a collection right after it counts the requests made just before:
// the receiver's last collection at shutdown.
func (t *Tracer) Drain(timeout time.Duration) {
	p := t.probe.Load()
	if p == nil {
		return
	}
	select {
	case <-t.flushed: // a stale signal of an earlier Drain that gave up
	default:
	}
	if err := p.Flush(); err != nil {
		return
	}
	select {
	case <-t.flushed:
	case <-time.After(timeout):
	}
}

// onRequest records one request of the Tracker; t.mu is held.
func (t *Tracer) onRequest(r *l7.Request) {
	d := r.Duration()
	if r.Protocol == l7.ProtocolDNS {
		if id, ok := t.attribute(r.CgroupID, r.PID); ok {
			t.store.RecordDNS(string(id), r.Inbound(), r.DNS, d)
		}
		return
	}
	if r.Inbound() {
		if id, ok := t.attribute(r.CgroupID, r.PID); ok {
			t.store.RecordRecent(t.inboundRecent(r.Sock), t.requestTime(r), string(id), r.Protocol, true, requeststats.Destination{}, r.Status, r.Method, d)
		}
		return
	}
	id, ok := t.attribute(r.CgroupID, r.PID)
	if !ok {
		return
	}
	if a, ok := t.connection(r.Sock, id); ok {
		t.recordOutbound(a, t.requestTime(r), r.Protocol, r.Status, r.Method, d)
		return
	}
	if len(t.waiting) >= maxWaiting {
		t.unattributed.Add(1)
		return
	}
	t.waiting = append(t.waiting, waiting{sock: r.Sock, id: id, proto: r.Protocol, status: r.Status, method: r.Method, duration: d, since: time.Now()})
}

// connection returns the attribution of an outbound connection of container want; t.mu is
// held. The TCP tracer's entry must belong to that container: socket addresses are reused at
// once, and an entry may still describe the previous connection at the address (the tracer
// keeps closed ones for a while, and its ring buffer is read apart from this one).
func (t *Tracer) connection(sock uint64, want containers.ID) (attribution, bool) {
	if a, ok := t.conns[sock]; ok && a.id == want {
		return a, true
	}
	if t.opts.Connections == nil {
		return attribution{}, false
	}
	id, dst, actual, ok := t.opts.Connections.Connection(sock)
	if !ok || id != want {
		return attribution{}, false
	}
	if len(t.conns) >= maxCachedConnections {
		clear(t.conns)
	}
	a := attribution{id: id, dst: dst, actual: actual, recent: &requeststats.Recent{}}
	t.conns[sock] = a
	return a, true
}

// inboundRecent returns the series cache of a served connection; t.mu is held.
func (t *Tracer) inboundRecent(sock uint64) *requeststats.Recent {
	rc := t.inbound[sock]
	if rc == nil {
		if len(t.inbound) >= maxCachedConnections {
			clear(t.inbound)
		}
		rc = &requeststats.Recent{}
		t.inbound[sock] = rc
	}
	return rc
}

func (t *Tracer) recordOutbound(a attribution, at time.Time, proto l7.Protocol, status l7.Status, method l7.Method, d time.Duration) {
	dst := requeststats.Destination{Addr: a.dst, Actual: a.actual}
	if fqdn, ok := t.store.LookupFQDN(a.dst.Addr()); ok {
		dst.FQDN = fqdn
	}
	t.store.RecordRecent(a.recent, at, string(a.id), proto, false, dst, status, method, d)
}

// retryWaiting records the waiting requests whose connection the TCP tracer now knows and
// drops, counted, those that waited too long; t.mu is held.
func (t *Tracer) retryWaiting(now time.Time) {
	kept := t.waiting[:0]
	for _, w := range t.waiting {
		if a, ok := t.connection(w.sock, w.id); ok {
			t.recordOutbound(a, time.Time{}, w.proto, w.status, w.method, w.duration)
			continue
		}
		if now.Sub(w.since) > waitFor {
			t.unattributed.Add(1)
			continue
		}
		kept = append(kept, w)
	}
	t.waiting = kept
}

func (t *Tracer) attribute(cgroupID uint64, pid uint32) (containers.ID, bool) {
	if t.opts.Resolver != nil {
		if cgroupID != 0 {
			if id, ok := t.opts.Resolver.ContainerIDByCgroupID(cgroupID); ok {
				return id, true
			}
		}
		if pid != 0 {
			if id, ok := t.opts.Resolver.ContainerIDByPID(pid); ok {
				return id, true
			}
		}
	}
	t.unattributed.Add(1)
	return "", false
}

// Collect expires idle state; the receiver calls it once per collection.
func (t *Tracer) Collect(now time.Time) {
	t.mu.Lock()
	if mono, err := monotonicNow(); err == nil {
		t.tracker.Expire(mono)
	}
	t.retryWaiting(time.Now())
	t.mu.Unlock()
	t.store.Expire(now)
}

// monotonicNow is CLOCK_MONOTONIC in ns, the clock of the kernel's segment timestamps.
func monotonicNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return uint64(ts.Nano()), nil
}

// ContainerStats fills st with a container's series, reusing its slices; false when there
// are none.
func (t *Tracer) ContainerStats(id containers.ID, st *requeststats.ContainerStats) bool {
	return t.store.ContainerStats(string(id), st)
}

// ContainerIDs returns the containers with request series.
func (t *Tracer) ContainerIDs() []containers.ID {
	var out []containers.ID
	t.store.Containers(func(id string) { out = append(out, containers.ID(id)) })
	return out
}

// Forget drops the series of containers gone for good (the receiver calls it once the
// registry's retention of a container is over); a container that serves again later counts
// from zero under a later start.
func (t *Tracer) Forget(ids []containers.ID) {
	for _, id := range ids {
		t.store.Forget(string(id))
	}
}

// Save returns every container's request series and the ip→fqdn pairs, for a restarted
// agent to continue (Restore).
func (t *Tracer) Save() ([]requeststats.SavedContainer, []requeststats.SavedFQDN) {
	return t.store.Save(), t.store.SaveFQDNs()
}

// Restore continues the series of a previous run (requeststats.Store.Restore); call it before
// Start.
func (t *Tracer) Restore(saved []requeststats.SavedContainer, fqdns []requeststats.SavedFQDN) error {
	return t.store.Restore(saved, fqdns)
}

// IPToFQDN calls fn for every ip→fqdn pair DNS answers taught.
func (t *Tracer) IPToFQDN(fn func(ip netip.Addr, fqdn string)) { t.store.IPToFQDN(fn) }

// Stats returns the self-metrics.
func (t *Tracer) Stats() Stats {
	st := Stats{
		Tracker: t.tracker.Stats(), Store: t.store.Stats(),
		Records: t.records.Load(), DecodeErrors: t.decodeErrors.Load(), Unattributed: t.unattributed.Load(),
	}
	t.mu.Lock()
	st.Connections = t.tracker.Connections()
	t.mu.Unlock()
	if p := t.probe.Load(); p != nil {
		if k, err := p.Counters(); err == nil {
			st.Kernel = k
		}
	}
	return st
}

// ProgramStats returns the kernel programs' runs and run times (internal/ebpf's
// EnableProgramStats must be on); nil before Start.
func (t *Tracer) ProgramStats() (map[string]ebpf.ProgramStats, error) {
	p := t.probe.Load()
	if p == nil {
		return nil, nil
	}
	return p.ProgramStats()
}

// Close detaches from the kernel and waits for the reader. Safe if Start failed or never ran.
func (t *Tracer) Close() error {
	p := t.probe.Swap(nil)
	if p == nil {
		return nil
	}
	err := p.Close()
	<-t.done
	return err
}
