package tracer

import (
	"net/netip"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// Connection returns what the tracer knows of an open outbound connection, by the id the
// kernel side reports it with (the socket address, or the seeded id of one open before the
// agent started): its container and its destination before and after NAT. The L7 capture
// attributes outbound requests with it.
//
// A connection that closed is still answered for closedConnTTL: the L7 capture reads its own
// ring buffer, which may be behind the tracer's, so a short connection's requests can arrive
// after the tracer applied its close.
func (t *Tracer) Connection(sock uint64) (id containers.ID, dst, actual netip.AddrPort, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if conn := t.connections[sock]; conn != nil {
		return conn.id, conn.key.dst, conn.key.actual, true
	}
	if c, found := t.closed[sock]; found && t.now().Sub(c.at) <= closedConnTTL {
		return c.id, c.key.dst, c.key.actual, true
	}
	return "", netip.AddrPort{}, netip.AddrPort{}, false
}

// closedConn is what Connection still knows of a closed connection.
type closedConn struct {
	id  containers.ID
	key destKey
	at  time.Time
}

const (
	closedConnTTL = 10 * time.Second
	maxClosedConn = 16384
)

// rememberClosed keeps a closing connection's attribution for Connection; t.mu is held. The
// table is bounded: entries past their TTL go first, then all of them.
func (t *Tracer) rememberClosed(sock uint64, conn *connection, now time.Time) {
	if t.closed == nil {
		t.closed = map[uint64]closedConn{}
	}
	if len(t.closed) >= maxClosedConn {
		for k, c := range t.closed {
			if now.Sub(c.at) > closedConnTTL {
				delete(t.closed, k)
			}
		}
		if len(t.closed) >= maxClosedConn {
			clear(t.closed)
		}
	}
	t.closed[sock] = closedConn{id: conn.id, key: conn.key, at: now}
}

// Probe returns the kernel side the tracer runs on (nil before Start and after Close), for
// the L7 capture, which shares its map of connections open before the agent started.
func (t *Tracer) Probe() *ebpf.Probe {
	if r := t.run.Load(); r != nil {
		return r.probe
	}
	return nil
}
