package requeststats

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

// BenchmarkRecordBothEnds is one HTTP request counted twice, as the L7 tracer does when both ends
// are traced: outbound under its destination, inbound under the server's container.
func BenchmarkRecordBothEnds(b *testing.B) {
	s := New(Config{}, nil)
	dst := Destination{Addr: netip.MustParseAddrPort("10.0.0.5:80"), Actual: netip.MustParseAddrPort("10.1.0.9:8080")}
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := threadCPU()
	for b.Loop() {
		s.Record(id, l7.ProtocolHTTP, false, dst, l7.HTTPStatus(200), l7.MethodNone, time.Millisecond)
		s.Record(id, l7.ProtocolHTTP, true, Destination{}, l7.HTTPStatus(200), l7.MethodNone, time.Millisecond)
	}
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	var cs ContainerStats
	s.ContainerStats(id, &cs)
	if len(cs.Requests) != 2 || cs.Requests[0].Count != cs.Requests[1].Count || cs.Requests[0].Count < uint64(b.N) {
		b.Fatalf("requests %+v", cs.Requests)
	}
}

// threadCPU is the CPU time of the calling thread: the benchmarks report it per op beside
// the wall time, which on a shared machine counts the time other processes ran.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// BenchmarkRecordRecentBothEnds is BenchmarkRecordBothEnds through each connection's Recent,
// as the L7 tracer records.
func BenchmarkRecordRecentBothEnds(b *testing.B) {
	s := New(Config{}, nil)
	dst := Destination{Addr: netip.MustParseAddrPort("10.0.0.5:80"), Actual: netip.MustParseAddrPort("10.1.0.9:8080")}
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var out, in Recent
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := threadCPU()
	for b.Loop() {
		s.RecordRecent(&out, time.Time{}, id, l7.ProtocolHTTP, false, dst, l7.HTTPStatus(200), l7.MethodNone, time.Millisecond)
		s.RecordRecent(&in, time.Time{}, id, l7.ProtocolHTTP, true, Destination{}, l7.HTTPStatus(200), l7.MethodNone, time.Millisecond)
	}
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	var cs ContainerStats
	s.ContainerStats(id, &cs)
	if len(cs.Requests) != 2 || cs.Requests[0].Count != cs.Requests[1].Count || cs.Requests[0].Count < uint64(b.N) {
		b.Fatalf("requests %+v", cs.Requests)
	}
}
