package l7tracer

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
)

// byCgroup attributes cgroup ids 1 and 2 to containers a and b.
type byCgroup struct{}

func (byCgroup) ContainerIDByCgroupID(id uint64) (containers.ID, bool) {
	switch id {
	case 1:
		return "a", true
	case 2:
		return "b", true
	}
	return "", false
}
func (byCgroup) ContainerIDByPID(uint32) (containers.ID, bool) { return "", false }

// fakeConns is the TCP tracer's view of outbound connections.
type fakeConns struct {
	mu    sync.Mutex
	conns map[uint64]fakeConn
}

type fakeConn struct {
	id          containers.ID
	dst, actual netip.AddrPort
}

func (f *fakeConns) Connection(sock uint64) (containers.ID, netip.AddrPort, netip.AddrPort, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[sock]
	return c.id, c.dst, c.actual, ok
}

// exchange feeds one HTTP/1 request and its response of a client connection to the Tracker,
// as the kernel would report them, and returns what the Tracer recorded for container id.
func exchange(tr *Tracer, sock, cgroup uint64, status string, ts uint64) {
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	resp := "HTTP/1.1 " + status + " X\r\nContent-Length: 0\r\n\r\n"
	tr.Feed(&l7.Segment{Timestamp: ts, Sock: sock, CgroupID: cgroup, Length: uint32(len(req)), Protocol: l7.ProtocolHTTP, Flags: l7.FlagNew, Payload: []byte(req)})
	tr.Feed(&l7.Segment{Timestamp: ts + 1e6, Sock: sock, CgroupID: cgroup, Length: uint32(len(resp)), Protocol: l7.ProtocolHTTP, Flags: l7.FlagReceived, Payload: []byte(resp)})
}

func outbound(tr *Tracer, id containers.ID) map[string]uint64 {
	var st requeststats.ContainerStats
	tr.ContainerStats(id, &st)
	out := map[string]uint64{}
	for _, r := range st.Requests {
		if !r.Inbound {
			out[r.Destination+" "+r.ActualDestination+" "+r.Status.Label()] += r.Count
		}
	}
	return out
}

// TestOutboundAttribution: an outbound request is recorded under the TCP tracer's destination
// of its connection — at once when the tracer knows it, once it does when its connect event
// comes later, never when the tracer's entry belongs to another container (a reused socket
// address), and under fqdn:port when a DNS answer named the address.
func TestOutboundAttribution(t *testing.T) {
	dst := netip.MustParseAddrPort("10.0.0.5:80")
	nat := netip.MustParseAddrPort("10.1.0.9:8080")
	conns := &fakeConns{conns: map[uint64]fakeConn{1: {"a", dst, nat}, 3: {"b", dst, dst}}}
	tr := New(Options{Config: DefaultConfig(), Resolver: byCgroup{}, Connections: conns})

	exchange(tr, 1, 1, "200", 1e9) // known connection
	exchange(tr, 2, 1, "503", 2e9) // connect event not applied yet
	exchange(tr, 3, 1, "200", 3e9) // the tracer's entry is container b's: not this one
	if got := outbound(tr, "a"); len(got) != 1 || got["10.0.0.5:80 10.1.0.9:8080 200"] != 1 {
		t.Fatalf("at once: %v", got)
	}
	if len(tr.waiting) != 2 {
		t.Fatalf("%d requests waiting, want 2", len(tr.waiting))
	}
	conns.mu.Lock()
	conns.conns[2] = fakeConn{"a", dst, dst}
	conns.mu.Unlock()
	tr.mu.Lock()
	tr.retryWaiting(time.Now())
	tr.mu.Unlock()
	if got := outbound(tr, "a"); got["10.0.0.5:80 10.0.0.5:80 503"] != 1 {
		t.Fatalf("after the connect event: %v", got)
	}
	tr.mu.Lock()
	tr.retryWaiting(time.Now().Add(waitFor + time.Second))
	tr.mu.Unlock()
	if len(tr.waiting) != 0 || tr.unattributed.Load() != 1 || len(outbound(tr, "b")) != 0 {
		t.Fatalf("after waiting: %d waiting, %d unattributed, b has %v", len(tr.waiting), tr.unattributed.Load(), outbound(tr, "b"))
	}

	// A DNS answer for the destination's address names it.
	info := &l7.DNSInfo{Type: 1, Domain: []byte("web.example"), NumIPs: 1}
	info.IPs[0] = dst.Addr()
	tr.store.RecordDNS("a", false, info, time.Millisecond)
	conns.mu.Lock()
	conns.conns[4] = fakeConn{"a", dst, nat}
	conns.mu.Unlock()
	exchange(tr, 4, 1, "200", 5e9)
	if got := outbound(tr, "a"); got["web.example:80 10.1.0.9:8080 200"] != 1 {
		t.Fatalf("fqdn destination: %v", got)
	}

	// A process no container claims: counted, not recorded.
	before := tr.unattributed.Load()
	exchange(tr, 5, 99, "200", 6e9)
	if tr.unattributed.Load() != before+1 {
		t.Errorf("unattributed %d, want %d", tr.unattributed.Load(), before+1)
	}
}

// Forget drops a gone container's request series at once, whatever the TTL; a container that
// serves again counts from zero.
func TestForget(t *testing.T) {
	dst := netip.MustParseAddrPort("10.0.0.5:80")
	conns := &fakeConns{conns: map[uint64]fakeConn{1: {"a", dst, dst}, 2: {"b", dst, dst}}}
	tr := New(Options{Config: DefaultConfig(), Resolver: byCgroup{}, Connections: conns})
	exchange(tr, 1, 1, "200", 1e9)
	exchange(tr, 2, 2, "200", 2e9)
	ids := tr.ContainerIDs()
	if len(ids) != 2 {
		t.Fatalf("containers %v", ids)
	}
	tr.Forget([]containers.ID{"a", "unknown"})
	if ids := tr.ContainerIDs(); len(ids) != 1 || ids[0] != "b" {
		t.Fatalf("after Forget: %v", ids)
	}
	if got := outbound(tr, "a"); len(got) != 0 {
		t.Fatalf("a's series after Forget: %v", got)
	}
	exchange(tr, 1, 1, "200", 3e9)
	if got := outbound(tr, "a"); got["10.0.0.5:80 10.0.0.5:80 200"] != 1 {
		t.Fatalf("back: %v", got)
	}
}
