package tracer

import (
	"net/netip"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// Connection returns what the tracer knows of an open outbound connection, by the id the
// kernel side reports it with (the socket address, or the seeded id of one open before the
// agent started): its container and its destination before and after NAT. The L7 capture
// attributes outbound requests with it.
func (t *Tracer) Connection(sock uint64) (id containers.ID, dst, actual netip.AddrPort, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conn := t.connections[sock]
	if conn == nil {
		return "", netip.AddrPort{}, netip.AddrPort{}, false
	}
	return conn.id, conn.key.dst, conn.key.actual, true
}

// Probe returns the kernel side the tracer runs on (nil before Start and after Close), for
// the L7 capture, which shares its map of connections open before the agent started.
func (t *Tracer) Probe() *ebpf.Probe {
	if r := t.run.Load(); r != nil {
		return r.probe
	}
	return nil
}
