package l7tracer

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
)

// everyoneIn attributes every request to one container, as connbench's agent does.
type everyoneIn struct{}

func (everyoneIn) ContainerIDByCgroupID(uint64) (containers.ID, bool) { return "bench", true }
func (everyoneIn) ContainerIDByPID(uint32) (containers.ID, bool)      { return "bench", true }

// BenchmarkFeedHTTPKeepAlive is the reader's per-request work for connbench -http's load:
// eight keep-alive connections, each request seen at the client (outbound, attributed to the
// TCP tracer's destination) and at the server (inbound): four records decoded and fed per
// request, as read does.
func BenchmarkFeedHTTPKeepAlive(b *testing.B) {
	const conns = 8
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:40000\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nDate: Sun, 06 Dec 2026 22:00:00 GMT\r\nContent-Length: 5\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello")
	dst := netip.MustParseAddrPort("127.0.0.1:40000")
	fc := &fakeConns{conns: map[uint64]fakeConn{}}
	for i := range conns {
		fc.conns[uint64(100+i)] = fakeConn{"bench", dst, dst}
	}
	tr := New(Options{Config: DefaultConfig(), Resolver: everyoneIn{}, Connections: fc})
	tr.mu.Lock()
	tr.syncClock() // requests are timed from the kernel's timestamps, as the reader does
	tr.mu.Unlock()

	type flow struct {
		sock   uint64
		flags  uint8
		data   []byte
		offset uint64
		rec    []byte // the record as the ring buffer holds it; time and offset set per feed
	}
	// per connection: client sends, server receives, server sends, client receives
	var flows [conns][4]flow
	for i := range conns {
		client, server := uint64(100+i), uint64(200+i)
		flows[i] = [4]flow{
			{sock: client, data: req},
			{sock: server, flags: l7.FlagServer | l7.FlagReceived, data: req},
			{sock: server, flags: l7.FlagServer, data: resp},
			{sock: client, flags: l7.FlagReceived, data: resp},
		}
	}
	var seg l7.Segment
	ts := uint64(1e9)
	feed := func(f *flow, first bool) {
		if first {
			s := l7.Segment{
				Sock: f.sock, CgroupID: 1, PID: 1, FD: 3, Length: uint32(len(f.data)),
				Protocol: l7.ProtocolHTTP, Flags: f.flags | l7.FlagNew, Payload: f.data,
			}
			f.rec = s.Encode(nil)
		} else {
			f.rec[47] &^= l7.FlagNew // the flags byte
		}
		binary.LittleEndian.PutUint64(f.rec[0:], ts)
		binary.LittleEndian.PutUint64(f.rec[24:], f.offset)
		f.offset += uint64(len(f.data))
		ts += 1000
		if err := seg.Decode(f.rec); err != nil {
			b.Fatal(err)
		}
		tr.Feed(&seg)
	}
	for i := range conns {
		for j := range flows[i] {
			feed(&flows[i][j], true)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := threadCPU()
	for n := range b.N {
		c := &flows[n%conns]
		for j := range c {
			feed(&c[j], false)
		}
	}
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	b.StopTimer()
	var st requeststats.ContainerStats
	tr.ContainerStats("bench", &st)
	var in, out uint64
	for _, r := range st.Requests {
		if r.Inbound {
			in += r.Count
		} else if r.Destination == dst.String() {
			out += r.Count
		}
	}
	if in != out || in < uint64(b.N) || tr.Stats().Unattributed != 0 {
		b.Fatalf("inbound %d, outbound %d requests (want both ≥ %d), unattributed %d", in, out, b.N, tr.Stats().Unattributed)
	}
}

// threadCPU is the CPU time of the calling thread: the benchmarks report it per op beside
// the wall time, which on a shared machine counts the time other processes ran.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}
