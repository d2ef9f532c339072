// Package requeststats aggregates L7 requests into bounded per-container counters and
// duration histograms, shaped as coroot-node-agent's metrics (internal/l7/coroot.go): per
// protocol, direction, destination and status; DNS requests per request type, domain and
// status with a cap on distinct domains; and the node's ip→fqdn pairs learnt from DNS
// answers. Every cumulative value carries the time its entry was created. Steady-state
// recording does not allocate; every entry refused by a limit is counted.
//
// It owns aggregation only: it must not parse protocols (internal/l7), attribute requests
// to containers or destinations (internal/tracer), or build pdata (the receiver).
//
//	s := requeststats.New(requeststats.Config{}, time.Now)
//	s.Record(containerID, l7.ProtocolHTTP, false, dst, l7.HTTPStatus(200), l7.MethodNone, d)
//	s.RecordRecent(&conn.recent, containerID, ...) // the same, through a connection's cache
//	s.RecordDNS(containerID, false, info, d) // info from an l7.Request of ProtocolDNS
//	var cs requeststats.ContainerStats
//	s.ContainerStats(containerID, &cs) // at each collection, reusing cs
//	s.IPToFQDN(func(ip netip.Addr, fqdn string) { ... })
//	s.Expire(now)
//	saved, fqdns := s.Save(), s.SaveFQDNs() // at a checkpoint; a restarted agent's new Store:
//	err := s.Restore(saved, fqdns)          // before its first request
package requeststats

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

// Config bounds a Store. Zero values take the defaults.
type Config struct {
	// MaxSeriesPerContainer bounds a container's distinct counters and histograms together
	// (protocol × direction × destination × status × method). Default 1000.
	MaxSeriesPerContainer int
	// MaxDomainsPerContainer bounds the distinct DNS domains per container; later ones are
	// counted under l7.DomainOverflow. Default l7.DefaultMaxDomainsPerContainer (coroot's).
	MaxDomainsPerContainer int
	// MaxIPToFQDN bounds the node's ip→fqdn pairs. Default 10000.
	MaxIPToFQDN int
	// TTL forgets series, domains and ip→fqdn pairs idle for longer. Default 10 minutes.
	TTL time.Duration
}

const (
	defaultMaxSeries   = 1000
	defaultMaxIPToFQDN = 10000
	defaultTTL         = 10 * time.Minute
)

// Destination is where an outbound request went, as the TCP tracer knows it: the address
// dialled and the one after NAT. FQDN, when the container's DNS resolved Addr, makes the
// destination label "fqdn:port" as coroot does for names it learnt.
type Destination struct {
	Addr, Actual netip.AddrPort
	FQDN         string
}

// Stats are the Store's self-metrics, cumulative.
type Stats struct {
	DroppedSeries  uint64 // requests not counted: their container reached MaxSeriesPerContainer
	FoldedDomains  uint64 // DNS requests counted under l7.DomainOverflow
	DroppedDNS     uint64 // DNS responses coroot has no status name for (RCODE > 5), not counted
	DroppedIPFQDN  uint64 // ip→fqdn pairs refused: MaxIPToFQDN reached
	ExpiredSeries  uint64 // series forgotten after TTL
	SkippedAAAANil uint64 // AAAA answers with no address, skipped as coroot does
}

// Histogram is a duration histogram over l7.HistogramBuckets: Counts[i] counts the values
// in (bound[i-1], bound[i]], the last one those above every bound.
type Histogram struct {
	Counts [len(l7.HistogramBuckets) + 1]uint64
	Sum    float64 // seconds
	Count  uint64
}

func (h *Histogram) observe(d time.Duration) {
	v := d.Seconds()
	i := 0
	for i < len(l7.HistogramBuckets) && v > l7.HistogramBuckets[i] {
		i++
	}
	h.Counts[i]++
	h.Sum += v
	h.Count++
}

// RequestCount is one counter series: container_<proto>_requests_total (or _queries_total,
// _messages_total) outbound, _inbound_... inbound.
type RequestCount struct {
	Protocol          l7.Protocol // HTTP/2 is counted as HTTP
	Inbound           bool
	Destination       string // label values; empty for inbound series
	ActualDestination string
	Status            l7.Status
	Method            l7.Method
	Count             uint64
	Start             time.Time
}

// DurationHistogram is one histogram series: outbound per destination, inbound one per
// protocol.
type DurationHistogram struct {
	Protocol          l7.Protocol
	Inbound           bool
	Destination       string
	ActualDestination string
	Histogram
	Start time.Time
}

// DNSCount is one container_dns_requests_total series (inbound: status only).
type DNSCount struct {
	Inbound     bool
	RequestType string
	Domain      string
	Status      l7.Status
	Count       uint64
	Start       time.Time
}

// ContainerStats is what the metrics side emits for one container. ContainerStats(id, &s)
// reuses s's slices.
type ContainerStats struct {
	Requests     []RequestCount
	Durations    []DurationHistogram
	DNS          []DNSCount
	DNSDurations []DurationHistogram // at most one outbound and one inbound, Protocol DNS
}

type seriesKey struct {
	proto   l7.Protocol
	inbound bool
	dst     Destination
	status  l7.Status
	method  l7.Method
}

type histKey struct {
	proto   l7.Protocol
	inbound bool
	dst     Destination
}

type counter struct {
	n                 uint64
	start, lastActive time.Time
	dst, actual       string // label values, built once
}

type histogram struct {
	Histogram
	start, lastActive time.Time
	dst, actual       string
}

type dnsKey struct {
	inbound bool
	qtype   uint16
	domain  string
	status  l7.Status
}

type containerState struct {
	requests  map[seriesKey]*counter
	durations map[histKey]*histogram
	dns       map[dnsKey]*counter
	dnsDur    [2]*histogram // outbound, inbound
	domains   map[string]*domain
}

// domain is a name a container asked for; name is the one copy of it the series share.
type domain struct {
	name     string
	lastSeen time.Time
}

type ipEntry struct {
	fqdn     string
	lastSeen time.Time
}

// Store holds the aggregated requests of every container. Safe for concurrent use.
type Store struct {
	cfg Config
	now func() time.Time

	mu         sync.Mutex
	containers map[string]*containerState
	gen        uint64 // advanced when a request series or a container is deleted: Recents go stale
	ips        map[netip.Addr]ipEntry

	droppedSeries, foldedDomains, droppedDNS, droppedIPs, expired, skippedAAAA atomic.Uint64
}

// New returns an empty Store; now is the clock (time.Now if nil).
func New(cfg Config, now func() time.Time) *Store {
	if cfg.MaxSeriesPerContainer <= 0 {
		cfg.MaxSeriesPerContainer = defaultMaxSeries
	}
	if cfg.MaxDomainsPerContainer <= 0 {
		cfg.MaxDomainsPerContainer = l7.DefaultMaxDomainsPerContainer
	}
	if cfg.MaxIPToFQDN <= 0 {
		cfg.MaxIPToFQDN = defaultMaxIPToFQDN
	}
	if cfg.TTL <= 0 {
		cfg.TTL = defaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Store{cfg: cfg, now: now, containers: map[string]*containerState{}, ips: map[netip.Addr]ipEntry{}}
}

// Stats returns the self-metrics.
func (s *Store) Stats() Stats {
	return Stats{
		DroppedSeries: s.droppedSeries.Load(), FoldedDomains: s.foldedDomains.Load(),
		DroppedDNS: s.droppedDNS.Load(), DroppedIPFQDN: s.droppedIPs.Load(),
		ExpiredSeries: s.expired.Load(), SkippedAAAANil: s.skippedAAAA.Load(),
	}
}

func (s *Store) container(id string) *containerState {
	c := s.containers[id]
	if c == nil {
		c = &containerState{
			requests:  map[seriesKey]*counter{},
			durations: map[histKey]*histogram{},
			dns:       map[dnsKey]*counter{},
			domains:   map[string]*domain{},
		}
		s.containers[id] = c
	}
	return c
}

func (c *containerState) series() int { return len(c.requests) + len(c.durations) + len(c.dns) }

// family folds protocols that share coroot's metrics.
func family(p l7.Protocol) l7.Protocol {
	if p == l7.ProtocolHTTP2 {
		return l7.ProtocolHTTP
	}
	return p
}

// Recent is a caller's cache of the series a request was last counted in, so that the next
// request with the same labels is counted without looking the series up: one per connection,
// whose requests mostly repeat their labels. The zero value is empty; a Recent must not be
// used by two goroutines at once, nor with two Stores.
type Recent struct {
	gen       uint64
	container string
	key       seriesKey
	cnt       *counter
	hist      *histogram // nil for protocols without a histogram
}

// Record counts one request (or message) of a container. Inbound requests carry no
// destination. RabbitMQ and NATS messages have no duration (coroot has no histogram). DNS
// requests go to RecordDNS: their series have other labels; Record ignores them.
func (s *Store) Record(container string, proto l7.Protocol, inbound bool, dst Destination, status l7.Status, method l7.Method, d time.Duration) {
	s.record(nil, time.Time{}, container, proto, inbound, dst, status, method, d)
}

// RecordRecent is Record through rc (nil: none), the cache of the caller's connection, at
// time now (zero: the Store's clock), which the caller may know without reading a clock.
func (s *Store) RecordRecent(rc *Recent, now time.Time, container string, proto l7.Protocol, inbound bool, dst Destination, status l7.Status, method l7.Method, d time.Duration) {
	s.record(rc, now, container, proto, inbound, dst, status, method, d)
}

func (s *Store) record(rc *Recent, now time.Time, container string, proto l7.Protocol, inbound bool, dst Destination, status l7.Status, method l7.Method, d time.Duration) {
	if proto == l7.ProtocolDNS {
		return
	}
	proto = family(proto)
	names := l7.Metrics(proto)
	if inbound {
		if names.InboundRequests == "" {
			return // coroot counts no inbound messages
		}
		dst = Destination{}
	}
	if now.IsZero() {
		now = s.now()
	}
	k := seriesKey{proto: proto, inbound: inbound, dst: dst, status: status, method: method}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rc != nil && rc.cnt != nil && rc.gen == s.gen && rc.key == k && rc.container == container {
		rc.cnt.n++
		rc.cnt.lastActive = now
		if rc.hist != nil {
			rc.hist.observe(d)
			rc.hist.lastActive = now
		}
		return
	}
	if rc != nil {
		rc.cnt = nil // filled again below once both series are found
	}
	c := s.container(container)
	cnt := c.requests[k]
	if cnt == nil {
		if c.series() >= s.cfg.MaxSeriesPerContainer {
			s.droppedSeries.Add(1)
			return
		}
		cnt = &counter{start: now}
		if !inbound {
			cnt.dst, cnt.actual = dst.labels()
		}
		c.requests[k] = cnt
	}
	cnt.n++
	cnt.lastActive = now
	if names.Duration == "" {
		rc.fill(s.gen, container, k, cnt, nil)
		return
	}
	hk := histKey{proto: proto, inbound: inbound, dst: dst}
	h := c.durations[hk]
	if h == nil {
		if c.series() >= s.cfg.MaxSeriesPerContainer {
			s.droppedSeries.Add(1)
			return
		}
		h = &histogram{start: now, dst: cnt.dst, actual: cnt.actual}
		c.durations[hk] = h
	}
	h.observe(d)
	h.lastActive = now
	rc.fill(s.gen, container, k, cnt, h)
}

func (rc *Recent) fill(gen uint64, container string, k seriesKey, cnt *counter, h *histogram) {
	if rc != nil {
		*rc = Recent{gen: gen, container: container, key: k, cnt: cnt, hist: h}
	}
}

// labels returns the destination and actual_destination label values.
func (d Destination) labels() (string, string) {
	if d.FQDN != "" {
		return d.FQDN + ":" + strconv.Itoa(int(d.Addr.Port())), d.Actual.String()
	}
	return d.Addr.String(), d.Actual.String()
}

// RecordDNS counts one DNS request of a container and, for outbound ones, learns the
// answers' ip→fqdn pairs. As coroot does: responses with an RCODE it has no name for are not
// counted, nor AAAA answers without an address (they run beside the A query and add no
// latency of their own).
func (s *Store) RecordDNS(container string, inbound bool, info *l7.DNSInfo, d time.Duration) {
	status := l7.DNSStatus(info.Rcode)
	if status.Label() == "" {
		s.droppedDNS.Add(1)
		return
	}
	if info.Type == 28 && info.Rcode == 0 && info.NumIPs == 0 {
		s.skippedAAAA.Add(1)
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.container(container)
	k := dnsKey{inbound: inbound, status: status}
	if !inbound {
		k.qtype = info.Type
		k.domain = c.domain(s, info.Domain, now)
	}
	cnt := c.dns[k]
	if cnt == nil {
		if c.series() >= s.cfg.MaxSeriesPerContainer {
			s.droppedSeries.Add(1)
			return
		}
		cnt = &counter{start: now}
		c.dns[k] = cnt
	}
	cnt.n++
	cnt.lastActive = now
	di := 0
	if inbound {
		di = 1
	}
	if c.dnsDur[di] == nil {
		c.dnsDur[di] = &histogram{start: now}
	}
	c.dnsDur[di].observe(d)
	c.dnsDur[di].lastActive = now
	if inbound || len(info.Domain) == 0 {
		return
	}
	for _, ip := range info.Addrs() {
		s.learn(ip, k.domain, info.Domain, now)
	}
}

// domain returns the label of a queried name: the name, or l7.DomainOverflow beyond the cap.
// The map lookup by string(name) does not allocate; a new name is copied once.
func (c *containerState) domain(s *Store, name []byte, now time.Time) string {
	if d, ok := c.domains[string(name)]; ok {
		d.lastSeen = now
		return d.name
	}
	if len(c.domains) >= s.cfg.MaxDomainsPerContainer {
		s.foldedDomains.Add(1)
		return l7.DomainOverflow
	}
	d := &domain{name: string(name), lastSeen: now}
	c.domains[d.name] = d
	return d.name
}

func (s *Store) learn(ip netip.Addr, label string, name []byte, now time.Time) {
	e, ok := s.ips[ip]
	if ok && e.fqdn == string(name) {
		e.lastSeen = now
		s.ips[ip] = e
		return
	}
	if !ok && len(s.ips) >= s.cfg.MaxIPToFQDN {
		s.droppedIPs.Add(1)
		return
	}
	fqdn := label
	if fqdn == l7.DomainOverflow {
		fqdn = string(name) // the pair is node-wide: the container's cap does not apply
	}
	s.ips[ip] = ipEntry{fqdn: fqdn, lastSeen: now}
}

// LookupFQDN returns the name DNS answered ip for, for "fqdn:port" destinations.
func (s *Store) LookupFQDN(ip netip.Addr) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ips[ip]
	return e.fqdn, ok
}

// IPToFQDN calls fn for every ip→fqdn pair (the ip_to_fqdn gauge).
func (s *Store) IPToFQDN(fn func(ip netip.Addr, fqdn string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ip, e := range s.ips {
		fn(ip, e.fqdn)
	}
}

// ContainerStats fills out with a container's series, reusing its slices; false when the
// Store has nothing for it.
func (s *Store) ContainerStats(container string, out *ContainerStats) bool {
	out.Requests, out.Durations, out.DNS, out.DNSDurations = out.Requests[:0], out.Durations[:0], out.DNS[:0], out.DNSDurations[:0]
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[container]
	if c == nil {
		return false
	}
	for k, v := range c.requests {
		out.Requests = append(out.Requests, RequestCount{
			Protocol: k.proto, Inbound: k.inbound, Destination: v.dst, ActualDestination: v.actual,
			Status: k.status, Method: k.method, Count: v.n, Start: v.start,
		})
	}
	for k, v := range c.durations {
		out.Durations = append(out.Durations, DurationHistogram{
			Protocol: k.proto, Inbound: k.inbound, Destination: v.dst, ActualDestination: v.actual,
			Histogram: v.Histogram, Start: v.start,
		})
	}
	for k, v := range c.dns {
		dc := DNSCount{Inbound: k.inbound, Domain: k.domain, Status: k.status, Count: v.n, Start: v.start}
		if !k.inbound {
			dc.RequestType = l7.DNSTypeLabel(k.qtype)
		}
		out.DNS = append(out.DNS, dc)
	}
	for i, h := range c.dnsDur {
		if h != nil {
			out.DNSDurations = append(out.DNSDurations, DurationHistogram{Protocol: l7.ProtocolDNS, Inbound: i == 1, Histogram: h.Histogram, Start: h.start})
		}
	}
	return true
}

// Containers calls fn for every container the Store holds series for.
func (s *Store) Containers(fn func(container string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.containers {
		fn(id)
	}
}

// Forget drops a container's series (it is gone and reported for the last time).
func (s *Store) Forget(container string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.containers[container]; ok {
		delete(s.containers, container)
		s.gen++ // only when series went: forgetting an absent container keeps every Recent valid
	}
}

// Expire forgets what has been idle for longer than the TTL. Series that come back start
// again from zero under a new start time.
func (s *Store) Expire(now time.Time) {
	ttl := s.cfg.TTL
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.containers {
		for k, v := range c.requests {
			if now.Sub(v.lastActive) > ttl {
				delete(c.requests, k)
				s.expired.Add(1)
				s.gen++
			}
		}
		for k, v := range c.durations {
			if now.Sub(v.lastActive) > ttl {
				delete(c.durations, k)
				s.expired.Add(1)
				s.gen++
			}
		}
		for k, v := range c.dns {
			if now.Sub(v.lastActive) > ttl {
				delete(c.dns, k)
				s.expired.Add(1)
			}
		}
		for i, h := range c.dnsDur {
			if h != nil && now.Sub(h.lastActive) > ttl {
				c.dnsDur[i] = nil
			}
		}
		for name, d := range c.domains {
			if now.Sub(d.lastSeen) > ttl {
				delete(c.domains, name)
			}
		}
		if len(c.requests) == 0 && len(c.durations) == 0 && len(c.dns) == 0 && c.dnsDur[0] == nil && c.dnsDur[1] == nil {
			delete(s.containers, id)
			s.gen++
		}
	}
	for ip, e := range s.ips {
		if now.Sub(e.lastSeen) > ttl {
			delete(s.ips, ip)
		}
	}
}
