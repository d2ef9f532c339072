package l7

import (
	"bytes"
	"errors"
	"math/rand"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// The kernel side's ports of this package's references, run on the same inputs: the detectors
// (l7_detect.h through BPF_PROG_TEST_RUN) and the HTTP/2 frame digest (l7.c on real syscalls).

func openKernelDetector(t *testing.T) *ebpf.L7Detector {
	t.Helper()
	testutil.RequireRoot(t)
	d, err := ebpf.OpenL7Detector()
	testutil.SkipUnlessPrivileged(t, err == nil, "loading the kernel's L7 detectors: %v", err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// kernelDetectCapture is how many bytes of a syscall the kernel gathers for detection.
const kernelDetectCapture = 1024

// TestKernelDetectorsMatchGo runs the C detectors and Detect on the fixtures of TestDetect and
// TestDetectAmbiguities, on every prefix and many one-byte mutations of them, and on random
// bytes: the verdicts (protocol and role) must be equal everywhere.
func TestKernelDetectorsMatchGo(t *testing.T) {
	d := openKernelDetector(t)
	runs, detected := 0, map[Protocol]int{}
	check := func(name string, f Flow, b []byte, total uint32, udp, dns bool) {
		t.Helper()
		if len(b) > kernelDetectCapture {
			b = b[:kernelDetectCapture]
		}
		want, ok := Detect(f, b, total, udp, dns)
		p, server, err := d.Detect(b, total, f == Received, udp, dns)
		if err != nil {
			t.Fatal(err)
		}
		runs++
		got := Protocol(p)
		if !ok {
			want = Detection{}
		}
		if got != want.Protocol || (ok && server != (want.Role == RoleServer)) {
			t.Errorf("%s: kernel %s (server %v), Go %s/%d; flow %s udp %v dns %v total %d bytes %q",
				name, got, server, want.Protocol, want.Role, f, udp, dns, total, b[:min(len(b), 80)])
		}
		if ok {
			detected[want.Protocol]++
		}
	}
	var fixtures []detectCase
	fixtures = append(fixtures, detectCases()...)
	fixtures = append(fixtures,
		detectCase{name: "ZooKeeper getData (not Kafka)", data: zkReq(3, 4, be32(5)+"/a/bc\x00")},
		detectCase{name: "Kafka request (not ZooKeeper)", data: kafkaRequest(0, 3, 4, false, be16(0xffff)+be16(1)+be32(1000))},
		detectCase{name: "inline PING", data: "PING\r\n"},
		detectCase{name: "ClickHouse hello, upper case", data: "\x00\x11ClickHouse client"},
		detectCase{name: "HTTP/1 response 503", flow: Received, data: "HTTP/1.1 503 Service Unavailable\r\n\r\n"},
		detectCase{name: "MySQL prepare", data: my(0, "\x16SELECT ?")},
		detectCase{name: "Mongo OP_QUERY", data: mongoQueryFixture()},
		detectCase{name: "Postgres SSLRequest", data: be32(8) + be32(80877103)},
		detectCase{name: "NATS HPUB", data: "HPUB a 3 5\r\nabc\r\nxy\r\n"},
		detectCase{name: "NATS MSG read", flow: Received, data: "MSG a 1 2\r\nhi\r\n"},
		detectCase{name: "memcached mn", data: "mn\r\n"},
		detectCase{name: "Postgres Q beyond the capture", data: pg('Q', strings.Repeat("x", 1500)+"\x00")},
	)
	// Boundaries of the length and range checks.
	kafkaID := func(n int) string {
		m := be16(3) + be16(9) + be32(1) + be16(uint16(n)) + strings.Repeat("k", n) + "\x00"
		return be32(uint32(len(m))) + m
	}
	for _, n := range []int{1, 63, 64, 65} {
		fixtures = append(fixtures, detectCase{name: "Kafka client id " + itoa(n), data: kafkaID(n)})
	}
	for _, n := range []int{54, 64, 65} {
		name := strings.Repeat("x", n-10) + "clickhouse"
		fixtures = append(fixtures, detectCase{name: "ClickHouse name " + itoa(n), data: "\x00" + chStr(name)})
	}
	for _, n := range []int{1023, 1024, 1025} {
		fixtures = append(fixtures, detectCase{name: "ZooKeeper path " + itoa(n), data: zkReq(3, 4, be32(uint32(n))+"/"+strings.Repeat("a", n-1))})
	}
	for _, op := range []int32{0, 9, 10, 11, 22, 23, 99, 100, 106, 107, -11, -12} {
		fixtures = append(fixtures, detectCase{name: "ZooKeeper op " + itoa(int(op)), data: zkReq(3, op, be32(2)+"/a\x00")})
	}
	for _, key := range []uint16{17, 18, 100, 101} {
		m := be16(key) + be16(30) + be32(1) + be16(0xffff)
		fixtures = append(fixtures, detectCase{name: "Kafka key " + itoa(int(key)), data: be32(uint32(len(m))) + m})
	}
	for _, n := range []int{9992, 9996, 9997} { // a startup message of 10000 bytes and around it
		body := "\x00\x03\x00\x00" + strings.Repeat("u", n-4)
		fixtures = append(fixtures, detectCase{name: "Postgres startup " + itoa(n+4), data: be32(uint32(len(body)+4)) + body})
	}
	for _, l := range []int{63, 64} {
		q := be16(1) + be16(0x0100) + be16(1) + be16(0) + be16(0) + be16(0) + string([]byte{byte(l)}) + strings.Repeat("a", l) + "\x00\x00\x01\x00\x01"
		fixtures = append(fixtures, detectCase{name: "DNS label " + itoa(l), data: q, udp: true, dns: true})
	}
	for _, digits := range []string{"1", "99", "999", "1000"} {
		fixtures = append(fixtures, detectCase{name: "Redis array " + digits, data: "*" + digits + "\r\n$3\r\nGET\r\n"})
	}
	for _, digits := range []string{"99999", "100000"} {
		fixtures = append(fixtures, detectCase{name: "Redis bulk " + digits, data: "*1\r\n$" + digits + "\r\nGET"})
	}
	for _, code := range []string{"099", "100", "599", "600"} {
		fixtures = append(fixtures, detectCase{name: "HTTP status " + code, flow: Received, data: "HTTP/1.1 " + code + " X\r\n\r\n"})
	}
	for _, fx := range fixtures {
		b := []byte(fx.data)
		total := uint32(len(b))
		for _, f := range []Flow{Sent, Received} {
			for _, tr := range [][2]bool{{fx.udp, fx.dns}, {false, false}, {true, true}, {false, true}} {
				check(fx.name, f, b, total, tr[0], tr[1])
			}
		}
		for n := 0; n < len(b) && n < 300; n++ { // prefixes: captured less than the syscall moved
			check(fx.name+" prefix", fx.flow, b[:n], total, fx.udp, fx.dns)
		}
		for _, dt := range []int{-1, 1, 7} {
			if int(total)+dt >= len(b) {
				check(fx.name+" total", fx.flow, b, uint32(int(total)+dt), fx.udp, fx.dns)
			}
		}
		for i := 0; i < len(b) && i < 80; i++ {
			for _, v := range append([]byte{b[i] ^ 0x20, b[i] + 1, b[i] - 1}, mutationBytes...) {
				m := bytes.Clone(b)
				m[i] = v
				check(fx.name+" mutated", fx.flow, m, total, fx.udp, fx.dns)
			}
		}
	}
	rng := rand.New(rand.NewSource(16))
	for i := 0; i < 20000; i++ {
		var b []byte
		if i%2 == 0 {
			fx := fixtures[rng.Intn(len(fixtures))].data
			b = []byte(fx[:rng.Intn(len(fx)+1)])
		}
		tail := make([]byte, rng.Intn(64))
		rng.Read(tail)
		b = append(b, tail...)
		total := uint32(len(b)) + uint32(rng.Intn(3))
		check("random", Flow(rng.Intn(2)), b, total, rng.Intn(4) == 0, rng.Intn(4) == 0)
	}
	for p := ProtocolHTTP; p < protocolCount; p++ {
		if detected[p] == 0 {
			t.Errorf("no input detected as %s: the comparison does not cover it", p)
		}
	}
	t.Logf("%d inputs compared; detected per protocol: %v", runs, detected)
}

// mutationBytes are the values each byte of a fixture is replaced with: the bounds the
// detectors test (printable, digits, letters, versions, opcodes, lengths) and their neighbours.
var mutationBytes = []byte{
	0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 0x16, 0x17, 0x1f, 0x20, 0x21, '*', '$', '/', '0', '9', ':',
	0x3e, 0x3f, 0x40, 0x41, 'A', 'Z', '[', 'a', 'z', 0x7e, 0x7f, 0x80, 0xfe, 0xff, '\r', '\n', ' ',
}

// mongoQueryFixture is a legacy OP_QUERY of isMaster.
func mongoQueryFixture() string {
	body := "\x00\x00\x00\x00" + "admin.$cmd\x00" + "\x00\x00\x00\x00" + "\xff\xff\xff\xff" + bsonDoc(bsonInt32("isMaster", 1))
	return le32s(uint32(16+len(body))) + le32s(7) + le32s(0) + le32s(2004) + body
}

func le32s(v uint32) string {
	return string([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

// kernelCapture loads the L7 capture (all protocols) for a test.
func kernelCapture(t *testing.T) *ebpf.L7Probe {
	t.Helper()
	testutil.RequireRoot(t)
	p, err := ebpf.LoadL7(ebpf.L7Options{})
	testutil.SkipUnlessPrivileged(t, err == nil, "loading the L7 capture: %v", err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// collectSegments reads the kernel's records until want segments of this process on the fds
// of want arrived (or the timeout), and returns them per fd, in order.
func collectSegments(t *testing.T, p *ebpf.L7Probe, want map[uint32]int, timeout time.Duration) map[uint32][]Segment {
	t.Helper()
	pid := uint32(os.Getpid())
	got := map[uint32][]Segment{}
	missing := 0
	for _, n := range want {
		missing += n
	}
	until := time.Now().Add(timeout)
	for missing > 0 {
		rec, err := p.ReadRecordUntil(until)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var s Segment
		if err := s.Decode(rec); err != nil {
			t.Fatalf("decoding a kernel record: %v", err)
		}
		if s.PID != pid || s.Flags&FlagClosed != 0 {
			continue
		}
		if _, ok := want[s.FD]; !ok {
			continue
		}
		s.Payload = bytes.Clone(s.Payload)
		got[s.FD] = append(got[s.FD], s)
		missing--
	}
	for fd, n := range want {
		if len(got[fd]) != n {
			t.Fatalf("fd %d: %d segments from the kernel, want %d", fd, len(got[fd]), n)
		}
	}
	return got
}

// exchange writes the chunks of one side as one syscall each, and reads them on the other
// side with the same sizes once all arrived, so both ends see the same syscall boundaries.
func exchange(t *testing.T, from, to net.Conn, chunks []string) {
	t.Helper()
	total := 0
	for _, c := range chunks {
		if n, err := from.Write([]byte(c)); err != nil || n != len(c) {
			t.Fatalf("write: %d, %v", n, err)
		}
		total += len(c)
	}
	testutil.WaitReadable(t, to.(syscall.Conn), total)
	for _, c := range chunks {
		buf := make([]byte, len(c))
		if n, err := to.Read(buf); err != nil || n != len(c) {
			t.Fatalf("read: %d of %d, %v", n, len(c), err)
		}
	}
}

// TestKernelHTTP2DigestMatchesReference drives a gRPC exchange (TestHTTP2SplitEverywhere's
// bytes) over real loopback sockets, cut into syscalls at many places, and compares every
// segment the kernel sent for both ends with HTTP2Digester fed the same syscalls; the
// Tracker then finds both calls with their statuses at the client and at the server.
func TestKernelHTTP2DigestMatchesReference(t *testing.T) {
	p := kernelCapture(t)
	cl, sv := newH2Peer(), newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings().headers(1, false, grpcReq("/pkg.Svc/Get")...).data(1, true, "\x00\x00\x00\x00\x00").
		headers(3, false, grpcReq("/pkg.Svc/Get")...).data(3, true, "\x00\x00\x00\x00\x00")
	w := cl.take()
	sv.settings().headers(1, false, grpcResp...).data(1, false, "\x00\x00\x00\x00\x00").headers(1, true, "grpc-status", "0").
		headers(3, false, grpcResp...).headers(3, true, "grpc-status", "3")
	rd := sv.take()
	type combo struct{ w, r, want []string }
	two := []string{"grpc:OK", "grpc:InvalidArgument"}
	var combos []combo
	for i := h2PrefaceLine; i < len(w); i += 11 { // at least the preface's first line: it is what detects
		for j := 1; j < len(rd); j += 13 {
			combos = append(combos, combo{splitAt(w, i), splitAt(rd, j), two})
		}
	}
	// A large body between header blocks: frame headers far apart, header blocks and frame
	// headers cut by reads.
	bigReq, bigResp := newH2Peer(), newH2Peer()
	bigReq.buf.WriteString(h2Preface)
	bigReq.settings().headers(5, false, grpcReq("/pkg.Svc/Download")...).data(5, true, "\x00\x00\x00\x00\x00")
	bigResp.settings().headers(5, false, grpcResp...)
	for i := 0; i < 3; i++ {
		bigResp.data(5, false, strings.Repeat("d", 16000))
	}
	bigResp.headers(5, true, "grpc-status", "0")
	bw, br := bigReq.take(), bigResp.take()
	combos = append(combos,
		combo{splitAt(w, 24, 25, 26, 40, 41), splitAt(rd, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), two},
		combo{splitAt(w, 14, 24, 33, 57), splitAt(rd, 9, 15), two}, // as Go's net/http server reads
		combo{[]string{w}, []string{rd}, two},
		combo{[]string{bw}, splitAt(br, 5, 30, 1000, 16020, 16030, 32000, 48040, len(br)-3), []string{"grpc:OK"}},
		combo{splitAt(bw, 30), []string{br}, []string{"grpc:OK"}},
	)
	for batch := 0; batch < len(combos); batch += 40 {
		type conn struct {
			c        combo
			cfd, sfd uint32
			cli, srv net.Conn
		}
		var conns []conn
		want := map[uint32]int{}
		for _, c := range combos[batch:min(batch+40, len(combos))] {
			client, server := testutil.LoopbackTCP(t)
			exchange(t, client, server, c.w)
			exchange(t, server, client, c.r)
			cc := conn{c: c, cfd: uint32(testutil.ConnFD(t, client.(syscall.Conn))), sfd: uint32(testutil.ConnFD(t, server.(syscall.Conn))), cli: client, srv: server}
			want[cc.cfd] = len(c.w) + len(c.r)
			want[cc.sfd] = len(c.w) + len(c.r)
			conns = append(conns, cc)
		}
		got := collectSegments(t, p, want, 5*time.Second)
		for _, cc := range conns {
			for _, side := range []struct {
				fd     uint32
				server bool
			}{{cc.cfd, false}, {cc.sfd, true}} {
				segs := got[side.fd]
				compareDigests(t, segs, cc.c.w, cc.c.r, side.server)
				role := RoleClient
				if side.server {
					role = RoleServer
				}
				out, st := (&conv{t: t, proto: ProtocolHTTP2, role: role, segs: segs}).run()
				var statuses []string
				for _, o := range out {
					statuses = append(statuses, o.Status)
					if o.Server != side.server {
						t.Errorf("request measured at the server: %v, want %v", o.Server, side.server)
					}
				}
				if strings.Join(statuses, ",") != strings.Join(cc.c.want, ",") {
					t.Fatalf("server %v, splits %d/%d: requests %v, want %v; %+v", side.server, len(cc.c.w), len(cc.c.r), out, cc.c.want, st)
				}
			}
			_ = cc.cli.Close()
			_ = cc.srv.Close()
		}
	}
	t.Logf("%d connections compared", len(combos))
}

// compareDigests checks the segments of one end: the write-family ones against a digester fed
// the chunks it wrote, the read-family ones against one fed the chunks it read.
func compareDigests(t *testing.T, segs []Segment, clientChunks, serverChunks []string, server bool) {
	t.Helper()
	sent, received := clientChunks, serverChunks
	if server {
		sent, received = serverChunks, clientChunks
	}
	prefaceFlow := Sent
	if server {
		prefaceFlow = Received
	}
	dg := [2]*HTTP2Digester{NewHTTP2Digester(prefaceFlow == Sent), NewHTTP2Digester(prefaceFlow == Received)}
	next := [2]int{}
	offset := [2]uint64{}
	chunks := [2][]string{sent, received}
	for i, s := range segs {
		f := s.Flow()
		if next[f] >= len(chunks[f]) {
			t.Fatalf("server %v: segment %d of flow %s beyond the %d syscalls", server, i, f, len(chunks[f]))
		}
		data := chunks[f][next[f]]
		next[f]++
		wantPayload, truncated := dg[f].Digest(nil, []byte(data))
		wantFlags := FlagDigest
		if f == Received {
			wantFlags |= FlagReceived
		}
		if server {
			wantFlags |= FlagServer
		}
		if i == 0 {
			wantFlags |= FlagNew
		}
		if truncated {
			wantFlags |= FlagTruncated
		}
		if s.Protocol != ProtocolHTTP2 || s.Flags != wantFlags || s.Length != uint32(len(data)) || s.Offset != offset[f] {
			t.Fatalf("server %v segment %d: protocol %s flags %#x length %d offset %d, want http2 %#x %d %d",
				server, i, s.Protocol, s.Flags, s.Length, s.Offset, wantFlags, len(data), offset[f])
		}
		if !bytes.Equal(s.Payload, wantPayload) {
			t.Fatalf("server %v segment %d (flow %s, %d bytes): kernel digest\n%x\nreference\n%x", server, i, f, len(data), s.Payload, wantPayload)
		}
		offset[f] += uint64(len(data))
	}
}
