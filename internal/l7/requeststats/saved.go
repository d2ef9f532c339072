package requeststats

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

// SavedContainer is one container's series with their start times, as a restarted agent
// continues them (Save, Restore). Protocol, status and method are the l7 package's values.
type SavedContainer struct {
	ID           string           `json:"id"`
	Requests     []SavedCount     `json:"requests,omitempty"`
	Durations    []SavedHistogram `json:"durations,omitempty"`
	DNS          []SavedDNS       `json:"dns,omitempty"`
	DNSDurations []SavedHistogram `json:"dns_durations,omitempty"` // Protocol DNS; one per direction
}

// SavedDestination is a series' destination: addresses as "ip:port", "" for none (inbound).
type SavedDestination struct {
	Addr   string `json:"dst,omitempty"`
	Actual string `json:"actual,omitempty"`
	FQDN   string `json:"fqdn,omitempty"`
}

// SavedCount is one request counter.
type SavedCount struct {
	Protocol l7.Protocol `json:"proto"`
	Inbound  bool        `json:"inbound,omitempty"`
	SavedDestination
	Status     l7.Status `json:"status"`
	Method     l7.Method `json:"method,omitempty"`
	Count      uint64    `json:"n"`
	Start      time.Time `json:"start"`
	LastActive time.Time `json:"last_active"`
}

// SavedHistogram is one duration histogram; Counts has one count per bucket of
// l7.HistogramBuckets and one above them.
type SavedHistogram struct {
	Protocol l7.Protocol `json:"proto"`
	Inbound  bool        `json:"inbound,omitempty"`
	SavedDestination
	Counts     []uint64  `json:"counts"`
	Sum        float64   `json:"sum"`
	Count      uint64    `json:"n"`
	Start      time.Time `json:"start"`
	LastActive time.Time `json:"last_active"`
}

// SavedDNS is one DNS request counter (outbound: per request type and domain).
type SavedDNS struct {
	Inbound    bool      `json:"inbound,omitempty"`
	Type       uint16    `json:"type,omitempty"`
	Domain     string    `json:"domain,omitempty"`
	Status     l7.Status `json:"status"`
	Count      uint64    `json:"n"`
	Start      time.Time `json:"start"`
	LastActive time.Time `json:"last_active"`
}

// SavedFQDN is one ip→fqdn pair: restored, the destinations of the IP keep their "fqdn:port"
// label, so their series continue.
type SavedFQDN struct {
	IP       string    `json:"ip"`
	FQDN     string    `json:"fqdn"`
	LastSeen time.Time `json:"last_seen"`
}

func savedAddr(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func savedDestination(d Destination) SavedDestination {
	return SavedDestination{Addr: savedAddr(d.Addr), Actual: savedAddr(d.Actual), FQDN: d.FQDN}
}

func (d SavedDestination) parse() (Destination, error) {
	out := Destination{FQDN: d.FQDN}
	var err error
	if d.Addr != "" {
		if out.Addr, err = netip.ParseAddrPort(d.Addr); err != nil {
			return out, err
		}
	}
	if d.Actual != "" {
		if out.Actual, err = netip.ParseAddrPort(d.Actual); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (h *histogram) saved(proto l7.Protocol, inbound bool, dst Destination) SavedHistogram {
	return SavedHistogram{
		Protocol: proto, Inbound: inbound, SavedDestination: savedDestination(dst),
		Counts: slices.Clone(h.Counts[:]), Sum: h.Sum, Count: h.Count, Start: h.start, LastActive: h.lastActive,
	}
}

// Save returns every container's series, each container's in a fixed order: a container whose
// series did not change saves the same bytes.
func (s *Store) Save() []SavedContainer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SavedContainer, 0, len(s.containers))
	for id, c := range s.containers {
		sc := SavedContainer{ID: id}
		for k, v := range c.requests {
			sc.Requests = append(sc.Requests, SavedCount{
				Protocol: k.proto, Inbound: k.inbound, SavedDestination: savedDestination(k.dst), Status: k.status, Method: k.method,
				Count: v.n, Start: v.start, LastActive: v.lastActive,
			})
		}
		for k, v := range c.durations {
			sc.Durations = append(sc.Durations, v.saved(k.proto, k.inbound, k.dst))
		}
		for k, v := range c.dns {
			sc.DNS = append(sc.DNS, SavedDNS{
				Inbound: k.inbound, Type: k.qtype, Domain: k.domain, Status: k.status,
				Count: v.n, Start: v.start, LastActive: v.lastActive,
			})
		}
		for i, h := range c.dnsDur {
			if h != nil {
				sc.DNSDurations = append(sc.DNSDurations, h.saved(l7.ProtocolDNS, i == 1, Destination{}))
			}
		}
		slices.SortFunc(sc.Requests, func(a, b SavedCount) int {
			return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), compareBool(a.Inbound, b.Inbound), a.compare(b.SavedDestination),
				cmp.Compare(a.Status, b.Status), cmp.Compare(a.Method, b.Method))
		})
		slices.SortFunc(sc.Durations, func(a, b SavedHistogram) int {
			return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), compareBool(a.Inbound, b.Inbound), a.compare(b.SavedDestination))
		})
		slices.SortFunc(sc.DNS, func(a, b SavedDNS) int {
			return cmp.Or(compareBool(a.Inbound, b.Inbound), cmp.Compare(a.Type, b.Type), strings.Compare(a.Domain, b.Domain), cmp.Compare(a.Status, b.Status))
		})
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b SavedContainer) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func (d SavedDestination) compare(o SavedDestination) int {
	return cmp.Or(strings.Compare(d.Addr, o.Addr), strings.Compare(d.Actual, o.Actual), strings.Compare(d.FQDN, o.FQDN))
}

// SaveFQDNs returns the node's ip→fqdn pairs, by IP.
func (s *Store) SaveFQDNs() []SavedFQDN {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SavedFQDN, 0, len(s.ips))
	for ip, e := range s.ips {
		out = append(out, SavedFQDN{IP: ip.String(), FQDN: e.fqdn, LastSeen: e.lastSeen})
	}
	slices.SortFunc(out, func(a, b SavedFQDN) int { return strings.Compare(a.IP, b.IP) })
	return out
}

// RestoreError says how many saved entries Restore skipped, and why.
type RestoreError struct {
	Invalid  int // entries that do not describe a series this Store keeps (another version's)
	Limited  int // entries beyond MaxSeriesPerContainer, MaxDomainsPerContainer or MaxIPToFQDN
	Existing int // containers the Store already held series for
	First    error
}

func (e *RestoreError) Error() string {
	msg := fmt.Sprintf("saved L7 state: %d entries invalid, %d beyond a limit, %d containers already held", e.Invalid, e.Limited, e.Existing)
	if e.First != nil {
		msg += " (first invalid: " + e.First.Error() + ")"
	}
	return msg
}

func (e *RestoreError) invalid(format string, args ...any) {
	e.Invalid++
	if e.First == nil {
		e.First = fmt.Errorf(format, args...)
	}
}

// Restore makes the Store continue the series of a previous run under their start times, and
// learn its ip→fqdn pairs again; call it before the first request is recorded. Each container's
// series and domains, and the pairs, are bounded by the Store's limits as recording bounds
// them; entries that do not fit or do not describe a series are skipped, and the error (a
// *RestoreError, nil if none) counts them. What idled past the TTL goes at the next Expire, as
// if the agent had not restarted.
func (s *Store) Restore(saved []SavedContainer, fqdns []SavedFQDN) error {
	var re RestoreError
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++ // no Recent filled before keeps pointing at a series this replaces
	for i := range saved {
		sc := &saved[i]
		if sc.ID == "" {
			re.invalid("a container without an id")
			continue
		}
		if _, ok := s.containers[sc.ID]; ok {
			re.Existing++
			continue
		}
		c := s.container(sc.ID)
		s.restoreRequests(c, sc, &re)
		s.restoreDNS(c, sc, &re)
		if c.series() == 0 && c.dnsDur[0] == nil && c.dnsDur[1] == nil {
			delete(s.containers, sc.ID)
		}
	}
	for _, f := range fqdns {
		ip, err := netip.ParseAddr(f.IP)
		switch {
		case err != nil || f.FQDN == "":
			re.invalid("ip_to_fqdn %q→%q", f.IP, f.FQDN)
		case len(s.ips) >= s.cfg.MaxIPToFQDN:
			re.Limited++
		default:
			s.ips[ip] = ipEntry{fqdn: f.FQDN, lastSeen: f.LastSeen}
		}
	}
	if re.Invalid+re.Limited+re.Existing > 0 {
		return &re
	}
	return nil
}

func (s *Store) restoreRequests(c *containerState, sc *SavedContainer, re *RestoreError) {
	for _, r := range sc.Requests {
		names := l7.Metrics(r.Protocol)
		dst, err := r.parse()
		switch {
		case !r.Protocol.Valid() || r.Protocol != family(r.Protocol) || r.Protocol == l7.ProtocolDNS || names.Requests == "":
			re.invalid("container %s: protocol %d", sc.ID, r.Protocol)
			continue
		case err != nil || (r.Inbound && (dst != Destination{} || names.InboundRequests == "")):
			re.invalid("container %s: destination %q", sc.ID, r.Addr)
			continue
		case r.Method > l7.MethodConsume:
			re.invalid("container %s: method %d", sc.ID, r.Method)
			continue
		case r.Status >= l7.DNSStatus(0) || (r.Status != l7.StatusUnknown && r.Status.Label() == "unknown"):
			// A DNS RCODE belongs to the DNS series; a value no status has would be exported as
			// a status label it never was.
			re.invalid("container %s: status %d", sc.ID, r.Status)
			continue
		}
		k := seriesKey{proto: r.Protocol, inbound: r.Inbound, dst: dst, status: r.Status, method: r.Method}
		if _, dup := c.requests[k]; dup {
			re.invalid("container %s: a request series twice", sc.ID)
			continue
		}
		if c.series() >= s.cfg.MaxSeriesPerContainer {
			re.Limited++
			continue
		}
		cnt := &counter{n: r.Count, start: r.Start, lastActive: r.LastActive}
		if !r.Inbound {
			cnt.dst, cnt.actual = dst.labels()
		}
		c.requests[k] = cnt
	}
	for i := range sc.Durations {
		h := &sc.Durations[i]
		dst, err := h.parse()
		switch {
		case !h.Protocol.Valid() || h.Protocol != family(h.Protocol) || l7.Metrics(h.Protocol).Duration == "" || h.Protocol == l7.ProtocolDNS:
			re.invalid("container %s: histogram of protocol %d", sc.ID, h.Protocol)
			continue
		case err != nil || (h.Inbound && dst != Destination{}):
			re.invalid("container %s: histogram destination %q", sc.ID, h.Addr)
			continue
		}
		v, err := h.histogram()
		if err != nil {
			re.invalid("container %s: %w", sc.ID, err)
			continue
		}
		k := histKey{proto: h.Protocol, inbound: h.Inbound, dst: dst}
		if _, dup := c.durations[k]; dup {
			re.invalid("container %s: a histogram twice", sc.ID)
			continue
		}
		if c.series() >= s.cfg.MaxSeriesPerContainer {
			re.Limited++
			continue
		}
		if !h.Inbound {
			v.dst, v.actual = dst.labels()
		}
		c.durations[k] = v
	}
}

func (s *Store) restoreDNS(c *containerState, sc *SavedContainer, re *RestoreError) {
	for _, d := range sc.DNS {
		if d.Status < l7.DNSStatus(0) || d.Status > l7.DNSStatus(15) || d.Status.Label() == "" || (d.Inbound && (d.Type != 0 || d.Domain != "")) {
			re.invalid("container %s: DNS series %q status %d", sc.ID, d.Domain, d.Status)
			continue
		}
		k := dnsKey{inbound: d.Inbound, qtype: d.Type, status: d.Status, domain: d.Domain}
		if _, dup := c.dns[k]; dup {
			re.invalid("container %s: DNS series %q twice", sc.ID, d.Domain)
			continue
		}
		if c.series() >= s.cfg.MaxSeriesPerContainer {
			re.Limited++
			continue
		}
		if !d.Inbound && d.Domain != l7.DomainOverflow {
			known, ok := c.domains[d.Domain]
			switch {
			case ok:
				k.domain = known.name
				known.lastSeen = later(known.lastSeen, d.LastActive)
			case len(c.domains) >= s.cfg.MaxDomainsPerContainer:
				re.Limited++
				continue
			default:
				c.domains[d.Domain] = &domain{name: d.Domain, lastSeen: d.LastActive}
			}
		}
		c.dns[k] = &counter{n: d.Count, start: d.Start, lastActive: d.LastActive}
	}
	for i := range sc.DNSDurations {
		h := &sc.DNSDurations[i]
		v, err := h.histogram()
		if err != nil || h.Protocol != l7.ProtocolDNS || (h.SavedDestination != SavedDestination{}) {
			re.invalid("container %s: DNS histogram: %v", sc.ID, err)
			continue
		}
		di := 0
		if h.Inbound {
			di = 1
		}
		if c.dnsDur[di] != nil {
			re.invalid("container %s: a DNS histogram twice", sc.ID)
			continue
		}
		c.dnsDur[di] = v
	}
}

// histogram checks a saved histogram: its buckets add up to its count.
func (h *SavedHistogram) histogram() (*histogram, error) {
	v := &histogram{start: h.Start, lastActive: h.LastActive}
	if len(h.Counts) != len(v.Counts) {
		return nil, fmt.Errorf("histogram of %d buckets, want %d", len(h.Counts), len(v.Counts))
	}
	var n uint64
	for i, c := range h.Counts {
		v.Counts[i] = c
		n += c
	}
	if n != h.Count || h.Sum < 0 {
		return nil, errors.New("histogram buckets do not add up to its count")
	}
	v.Sum, v.Count = h.Sum, h.Count
	return v, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
