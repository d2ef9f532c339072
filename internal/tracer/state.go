package tracer

import (
	"net/netip"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

func (t *Tracer) destinationOf(conn *connection) *destination {
	s := t.containers[conn.id]
	if s == nil {
		return nil
	}
	return s.destinations[conn.key]
}

func (t *Tracer) state(id containers.ID) *containerState {
	s := t.containers[id]
	if s == nil {
		s = &containerState{
			destinations: map[destKey]*destination{},
			listens:      map[netip.AddrPort]*listenAddr{},
			latency:      map[netip.Addr]*latency{},
			created:      t.now(),
		}
		t.containers[id] = s
	}
	return s
}

func (t *Tracer) destination(s *containerState, key destKey, now time.Time) *destination {
	d := s.destinations[key]
	if d == nil {
		if len(s.destinations) >= t.opts.Config.MaxDestinationsPerContainer {
			t.droppedByLimit.Add(1)
			return nil
		}
		d = &destination{DestinationStats: DestinationStats{
			Destination:       key.dst.String(),
			ActualDestination: key.actual.String(),
			Start:             now,
		}}
		s.destinations[key] = d
	}
	d.lastActive = now
	return d
}

func (t *Tracer) listen(s *containerState, addr netip.AddrPort, now time.Time) *listenAddr {
	addr = t.listenKey(addr)
	l := s.listens[addr]
	if l == nil {
		if len(s.listens) >= t.opts.Config.MaxDestinationsPerContainer {
			t.droppedByLimit.Add(1)
			return nil
		}
		l = &listenAddr{created: now}
		s.listens[addr] = l
	}
	l.lastActive = now
	return l
}

// listenKey folds ports in the ephemeral range to 0.
func (t *Tracer) listenKey(addr netip.AddrPort) netip.AddrPort {
	if t.ephemeral.contains(addr.Port()) {
		return netip.AddrPortFrom(addr.Addr(), 0)
	}
	return addr
}

// listening marks l as an open listener in network namespace netns, opened (or held) by pid.
// A new pid is classified again (docker-proxy or not) at the next Refresh.
func (t *Tracer) listening(l *listenAddr, netns, pid uint32) {
	l.open, l.listener = true, true
	if netns != 0 {
		l.netns = netns
	}
	if pid != 0 && pid != l.pid {
		l.pid, l.classified, l.proxy = pid, false, dockerProxy{}
	}
}

// UpdateConnection applies the kernel's live counters of one open connection (from
// ebpf.Probe.Connections): byte counters advance while the connection is open, and its
// smoothed RTT feeds the latency of its destination IP.
func (t *Tracer) UpdateConnection(sock uint64, c *ebpf.ConnectionCounters) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conn := t.connections[sock]
	if conn == nil {
		return
	}
	if d := t.destinationOf(conn); d != nil {
		if c.BytesSent != conn.bytesSent || c.BytesReceived != conn.bytesReceived {
			d.lastActive = t.now()
		}
		t.account(d, conn, c.BytesSent, c.BytesReceived)
	}
	conn.srtt = time.Duration(c.SRTTMicros) * time.Microsecond
}

// updateLatency recomputes per-destination-IP RTT from the open connections' last srtt.
func (t *Tracer) updateLatency(now time.Time) {
	type acc struct {
		sum time.Duration
		n   int
	}
	sums := map[containers.ID]map[netip.Addr]*acc{}
	for _, conn := range t.connections {
		if conn.srtt <= 0 {
			continue
		}
		byIP := sums[conn.id]
		if byIP == nil {
			byIP = map[netip.Addr]*acc{}
			sums[conn.id] = byIP
		}
		ip := conn.key.actual.Addr()
		a := byIP[ip]
		if a == nil {
			a = &acc{}
			byIP[ip] = a
		}
		a.sum += conn.srtt
		a.n++
	}
	for id, byIP := range sums {
		s := t.containers[id]
		if s == nil {
			continue
		}
		for ip, a := range byIP {
			l := s.latency[ip]
			if l == nil {
				if len(s.latency) >= t.opts.Config.MaxDestinationsPerContainer {
					t.droppedByLimit.Add(1)
					continue
				}
				l = &latency{}
				s.latency[ip] = l
			}
			l.rtt = a.sum / time.Duration(a.n)
			l.lastSeen = now
		}
	}
}

// expire forgets what has been idle for longer than the configured TTLs.
func (t *Tracer) expire(now time.Time) {
	ttl := t.opts.Config.DestinationTTL
	for id, s := range t.containers {
		if ttl > 0 {
			for k, d := range s.destinations {
				if d.ActiveConnections <= 0 && now.Sub(d.lastActive) > ttl {
					delete(s.destinations, k)
					t.expired.Add(1)
				}
			}
			for k, l := range s.listens {
				if !l.open && now.Sub(l.lastActive) > ttl {
					delete(s.listens, k)
					t.expired.Add(1)
				}
			}
			for k, l := range s.latency {
				if now.Sub(l.lastSeen) > ttl {
					delete(s.latency, k)
				}
			}
		}
		if len(s.destinations) == 0 && len(s.listens) == 0 && len(s.latency) == 0 && !t.oomRetained(s, now) {
			delete(t.containers, id)
		}
	}
}
