package tracer

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// Resolver attributes kernel events to containers: by the cgroup v2 id of the event's context,
// or by pid. The tracer keeps container IDs only; who a container is stays the registry's.
type Resolver interface {
	ContainerIDByCgroupID(cgroupID uint64) (containers.ID, bool)
	ContainerIDByPID(pid uint32) (containers.ID, bool)
}

// NATResolver finds where a connection really goes after DNAT. *conntrack.Resolver
// implements it.
type NATResolver interface {
	ActualDestination(src, dst netip.AddrPort) (actual netip.AddrPort, found bool, err error)
}

// ProcessEvent is a process lifecycle event, passed to Options.OnProcess so the registry can
// refresh its pid → container view.
type ProcessEvent struct {
	Type      ebpf.EventType // EventProcessFork, EventProcessExec or EventProcessExit
	PID       uint32         // the new (fork), exec'ing or exiting process
	ParentPID uint32         // fork only
	CgroupID  uint64
}

// Options configure a Tracer.
type Options struct {
	Config   Config
	Resolver Resolver
	// NAT resolves actual destinations. nil: Start opens conntrack when Config.Conntrack is
	// set; without it actual_destination equals destination.
	NAT NATResolver
	// Addresses reads network namespaces' addresses, at which wildcard listeners are reported
	// (listens.go). nil: Start opens a netns.Reader; without one they are reported as wildcards.
	Addresses NetNSAddresses
	// HostNetNS is the inode of the host's network namespace, the only one whose loopback
	// listens and destinations count (listens.go). 0: Start reads it (netns.Host); a tracer
	// never started treats every namespace as the host's.
	HostNetNS uint32
	// OnProcess, if set, is called from the event-reader goroutine for every process event;
	// it must not block.
	OnProcess func(ProcessEvent)
	Logger    *zap.Logger
	// EphemeralPorts are folded on the listen side. Zero: read from
	// /proc/sys/net/ipv4/ip_local_port_range (Linux default 32768-60999 if unreadable).
	EphemeralPorts PortRange
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats are the tracer's self-metrics. All counts are cumulative.
type Stats struct {
	EventsProcessed uint64 // events decoded and handled
	EventsLost      uint64 // events the kernel could not put into the full ring buffer
	DecodeErrors    uint64 // malformed ring-buffer records, skipped
	Unattributed    uint64 // events whose cgroup and pid no container claims
	DroppedByLimit  uint64 // destinations/listen addresses refused by max_destinations_per_container
	Expired         uint64 // destinations and listen addresses forgotten after destination_ttl
	NATErrors       uint64 // failed conntrack lookups (actual_destination fell back to destination)
	// ClosesLost counts connections whose close event never arrived (ring buffer full, the
	// kernel's LRU connections map evicted them, or their socket address was reused): a new
	// connection took their socket address, or Refresh closed them because the kernel side no
	// longer knew them and no close event came within 5 minutes after.
	ClosesLost uint64

	// Input skipped while reading the sockets that existed at Start.
	SeedVanished   uint64 // processes that exited while being read
	SeedUnreadable uint64 // namespace links, socket tables or fd directories that could not be read
	SeedMalformed  uint64 // /proc/<pid>/net/tcp{,6} lines that did not parse

	// NetNSUnreadable counts failed readings of a network namespace's addresses (at most one
	// per namespace and Refresh): its wildcard listeners keep the addresses of the last good
	// reading, or stay wildcards.
	NetNSUnreadable uint64
	// NamespaceAddrsDropped counts the addresses of a network namespace beyond
	// maxNamespaceAddrs, left out of its wildcard listeners' addresses (counted when a
	// reading finds a different number of them).
	NamespaceAddrsDropped uint64
}

// DestinationStats are the counters of one (destination, actual_destination) pair.
type DestinationStats struct {
	Destination       string // ip:port as dialled
	ActualDestination string // ip:port after NAT
	// Start is when the pair's counters began: they start from zero when the pair is created
	// again after destination_ttl expired it, so cumulative series must carry it as their start.
	Start              time.Time
	SuccessfulConnects uint64
	// FailedConnects are counted only on the pair whose ActualDestination equals Destination
	// (why: Handle, EventConnectFailed).
	FailedConnects    uint64
	ConnectionTime    time.Duration // sum of SYN_SENT → ESTABLISHED times
	ActiveConnections int64
	Retransmits       uint64
	BytesSent         uint64
	BytesReceived     uint64
}

// ListenStats describe one listen address, as listens.go reports them (wildcards expanded to
// the namespace's addresses); ports in the ephemeral range are folded to 0.
// InboundConnections are counted on the address the connections were accepted on.
type ListenStats struct {
	Address string
	// Proxy is ProxyDockerd for an address a docker-proxy listens on for this container, ""
	// for the container's own listeners.
	Proxy              string
	Open               bool // a socket listens here (container_net_tcp_listen_info)
	InboundConnections uint64
	Start              time.Time // when the address was (re)created: InboundConnections count from here
}

// LatencyStats is the kernel's smoothed RTT towards one destination IP, averaged over the
// container's open connections to it at the last Refresh.
type LatencyStats struct {
	DestinationIP string
	RTT           time.Duration
}

// ContainerStats is what the receiver records for one container. ContainerStats(id, &s)
// reuses s's slices.
type ContainerStats struct {
	Destinations []DestinationStats
	Listens      []ListenStats
	Latency      []LatencyStats
	OOMKills     uint64
	// OOMKillsStart is when the container's tracer state was created: OOM kills count from
	// there, and from zero again if the state was forgotten (oom_kill_retention) and recreated.
	OOMKillsStart time.Time
}

type destKey struct{ dst, actual netip.AddrPort }

type destination struct {
	DestinationStats
	lastActive time.Time
}

type listenAddr struct {
	open       bool
	listener   bool // a listening socket was seen here, not only accepted connections
	inbound    uint64
	created    time.Time
	lastActive time.Time
	// For listeners: the socket's network namespace (0: unknown) and a process that opened
	// or holds it, through which the namespace's addresses and the command line are read.
	netns uint32
	pid   uint32
	// classified: pid's command line was read; proxy is what it forwards as docker-proxy
	// (zero when it is not one).
	classified bool
	proxy      dockerProxy
}

type latency struct {
	rtt      time.Duration
	lastSeen time.Time
}

type containerState struct {
	destinations map[destKey]*destination
	listens      map[netip.AddrPort]*listenAddr
	latency      map[netip.Addr]*latency
	oomKills     uint64
	lastOOMKill  time.Time
	created      time.Time
}

// connection is an open outbound connection the tracer saw established, or found open at
// start (seeded).
type connection struct {
	id            containers.ID
	key           destKey
	bytesSent     uint64 // kernel counters at the last account
	bytesReceived uint64
	srtt          time.Duration
	seeded        *seededConn // nil for connections the kernel side saw open
	missing       uint8       // consecutive Refreshes that did not find it on the kernel side, up to closeLostAfter
	missingSince  time.Time   // the first of them
}

// Tracer holds the per-container state built from kernel events.
type Tracer struct {
	opts      Options
	ephemeral PortRange
	now       func() time.Time

	natMu    sync.Mutex
	notNATed map[netip.AddrPort]time.Time // destination → when to look it up again

	mu          sync.Mutex
	containers  map[containers.ID]*containerState
	connections map[uint64]*connection // by socket address, or seeded id (seed.go)
	seededIndex map[seededIndexKey]uint64
	lostCloses  map[uint64]lostClose  // connections reconcile closed, by socket address or seeded id
	closed      map[uint64]closedConn // recently closed connections, for Connection (connection.go)
	nextSeedID  uint64
	kernel      seededSockets   // set by Start
	seedStop    <-chan struct{} // closed by Close: seeding still running gives up

	refreshMu  sync.Mutex
	liveSocks  map[uint64]struct{} // the kernel side's connections at the last Refresh, reused
	listenWork listenRefresh       // refreshListens' reading, reused
	listenRows map[listenRow]int   // appendListens' rows, reused under mu

	hostNetNS  uint32
	namespaces map[uint32]*namespace             // of open wildcard listeners, by inode; under mu
	proxied    map[containers.ID][]proxiedListen // docker-proxy listeners by target; under mu, set by Refresh

	netnsWarnOnce                          sync.Once
	netnsUnreadable, namespaceAddrsDropped atomic.Uint64

	processed, decodeErrors, unattributed, droppedByLimit, expired, natErrors, closesLost atomic.Uint64
	seedVanished, seedUnreadable, seedMalformed                                           atomic.Uint64

	run atomic.Pointer[run] // set by Start

	// wrapSeedKernel, set by tests only, wraps the kernel side seeding is given by Start.
	wrapSeedKernel func(seededSockets) seededSockets
}

// New returns a tracer that only holds state; Start attaches it to the kernel.
func New(opts Options) *Tracer {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	t := &Tracer{
		opts:        opts,
		ephemeral:   opts.EphemeralPorts,
		now:         opts.Now,
		containers:  map[containers.ID]*containerState{},
		connections: map[uint64]*connection{},
		seededIndex: map[seededIndexKey]uint64{},
		lostCloses:  map[uint64]lostClose{},
		liveSocks:   map[uint64]struct{}{},
		notNATed:    map[netip.AddrPort]time.Time{},
		hostNetNS:   opts.HostNetNS,
		namespaces:  map[uint32]*namespace{},
		proxied:     map[containers.ID][]proxiedListen{},
		listenRows:  map[listenRow]int{},
		listenWork: listenRefresh{
			namespaces: map[uint32][]uint32{},
			classify:   map[uint32]dockerProxy{},
			results:    map[uint32][]netip.Addr{},
		},
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.ephemeral == (PortRange{}) {
		r, err := ReadEphemeralPorts("/proc/sys/net/ipv4/ip_local_port_range")
		if err != nil {
			opts.Logger.Info("using the default ephemeral port range", zap.Error(err))
			r = defaultEphemeralPorts
		}
		t.ephemeral = r
	}
	if t.opts.Config.MaxDestinationsPerContainer <= 0 {
		t.opts.Config.MaxDestinationsPerContainer = DefaultConfig().MaxDestinationsPerContainer
	}
	return t
}

func (t *Tracer) attribute(cgroupID uint64, pid uint32) (containers.ID, bool) {
	if t.opts.Resolver == nil {
		return "", false
	}
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
	return "", false
}

// Destinations whose last lookup found no NAT are not looked up again for this long: a
// conntrack round trip per connection is most of the agent's CPU on connection-heavy nodes,
// and a destination rarely starts being NATed. NATed destinations (Services, which balance
// every connection anew) are looked up for every connection.
const (
	notNATedRecheck  = 10 * time.Second
	maxNotNATedCache = 16384
)

func (t *Tracer) actual(src, dst netip.AddrPort) netip.AddrPort {
	if t.opts.NAT == nil {
		return dst
	}
	now := t.now()
	t.natMu.Lock()
	until, cached := t.notNATed[dst]
	t.natMu.Unlock()
	if cached && now.Before(until) {
		return dst
	}
	actual, _, err := t.opts.NAT.ActualDestination(src, dst)
	if err != nil {
		t.natErrors.Add(1)
		return dst
	}
	t.natMu.Lock()
	if actual == dst {
		if len(t.notNATed) >= maxNotNATedCache {
			clear(t.notNATed)
		}
		t.notNATed[dst] = now.Add(notNATedRecheck)
	} else {
		delete(t.notNATed, dst)
	}
	t.natMu.Unlock()
	return actual
}

// ContainerStats fills s with the state of container id, reusing s's slices. It returns false
// when the tracer has nothing for the container.
func (t *Tracer) ContainerStats(id containers.ID, s *ContainerStats) bool {
	s.Destinations, s.Listens, s.Latency = s.Destinations[:0], s.Listens[:0], s.Latency[:0]
	s.OOMKills, s.OOMKillsStart = 0, time.Time{}
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.containers[id]
	if cs == nil {
		return false
	}
	for _, d := range cs.destinations {
		s.Destinations = append(s.Destinations, d.DestinationStats)
	}
	t.appendListens(id, cs, s)
	if t.opts.Config.Latency {
		for ip, l := range cs.latency {
			s.Latency = append(s.Latency, LatencyStats{DestinationIP: ip.String(), RTT: l.rtt})
		}
	}
	s.OOMKills, s.OOMKillsStart = cs.oomKills, cs.created
	return true
}

// ContainerIDs returns the containers the tracer holds state for, including ones the registry
// may already have forgotten (until the receiver calls Forget, and an OOM-killed container's
// count for oom_kill_retention).
func (t *Tracer) ContainerIDs() []containers.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Collect(maps.Keys(t.containers))
}

// Forget drops what the tracer holds for containers that are gone for good (the receiver calls
// it once the registry's retention of a container is over): destinations, listen addresses and
// latency. An OOM kill count within oom_kill_retention of its last kill stays, under its start,
// until it expires (an OOM-killed container's kill must stay visible after the container).
func (t *Tracer) Forget(ids []containers.ID) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		cs := t.containers[id]
		if cs == nil {
			continue
		}
		if !t.oomRetained(cs, now) {
			delete(t.containers, id)
			delete(t.proxied, id)
			continue
		}
		clear(cs.destinations)
		clear(cs.listens)
		clear(cs.latency)
	}
}

// OOMKillsRetained returns the containers whose OOM kill count is within oom_kill_retention of
// their last kill: the count to report after the container is gone.
func (t *Tracer) OOMKillsRetained() []containers.ID {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []containers.ID
	for id, cs := range t.containers {
		if t.oomRetained(cs, now) {
			out = append(out, id)
		}
	}
	return out
}

// oomRetained reports whether cs's OOM kill count is kept at now (for ever without a
// retention); t.mu is held.
func (t *Tracer) oomRetained(cs *containerState, now time.Time) bool {
	retention := t.opts.Config.OOMKillRetention
	return cs.oomKills > 0 && (retention <= 0 || now.Sub(cs.lastOOMKill) <= retention)
}

// Stats returns the self-metrics.
func (t *Tracer) Stats() Stats {
	s := Stats{
		EventsProcessed: t.processed.Load(),
		DecodeErrors:    t.decodeErrors.Load(),
		Unattributed:    t.unattributed.Load(),
		DroppedByLimit:  t.droppedByLimit.Load(),
		Expired:         t.expired.Load(),
		NATErrors:       t.natErrors.Load(),
		ClosesLost:      t.closesLost.Load(),
		SeedVanished:    t.seedVanished.Load(),
		SeedUnreadable:  t.seedUnreadable.Load(),
		SeedMalformed:   t.seedMalformed.Load(),

		NetNSUnreadable:       t.netnsUnreadable.Load(),
		NamespaceAddrsDropped: t.namespaceAddrsDropped.Load(),
	}
	if r := t.run.Load(); r != nil {
		if n, err := r.probe.LostEvents(); err == nil {
			s.EventsLost = n
		}
	}
	return s
}
