package ebpf

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

func loadL7Probe(t *testing.T, opts L7Options) *L7Probe {
	t.Helper()
	testutil.RequireRoot(t)
	p, err := LoadL7(opts)
	testutil.SkipUnlessPrivileged(t, err == nil, "loading the L7 capture: %v", err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// l7Records reads records of this process: segments on the given fds and close records of
// the given connection ids, until want of them arrived or the timeout passed.
type l7Records struct {
	fds   map[uint32][]l7.Segment
	socks map[uint64][]l7.Segment // close records
}

func readL7(t *testing.T, p *L7Probe, fds []int, socks []uint64, want int, timeout time.Duration) l7Records {
	t.Helper()
	out := l7Records{fds: map[uint32][]l7.Segment{}, socks: map[uint64][]l7.Segment{}}
	wantFD := map[uint32]bool{}
	for _, fd := range fds {
		wantFD[uint32(fd)] = true
	}
	wantSock := map[uint64]bool{}
	for _, s := range socks {
		wantSock[s] = true
	}
	pid := uint32(os.Getpid())
	until := time.Now().Add(timeout)
	for n := 0; n < want; {
		rec, err := p.ReadRecordUntil(until)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var s l7.Segment
		if err := s.Decode(rec); err != nil {
			t.Fatalf("decoding: %v", err)
		}
		s.Payload = bytes.Clone(s.Payload)
		switch {
		case s.Flags&l7.FlagClosed != 0 && wantSock[s.Sock]:
			out.socks[s.Sock] = append(out.socks[s.Sock], s)
		case s.Flags&l7.FlagClosed == 0 && s.PID == pid && wantFD[s.FD]:
			out.fds[s.FD] = append(out.fds[s.FD], s)
		default:
			continue
		}
		n++
	}
	return out
}

// expectSegment checks one segment's direction, protocol, offset, length, flags and payload.
func expectSegment(t *testing.T, s l7.Segment, proto l7.Protocol, flags uint8, offset uint64, data string) {
	t.Helper()
	want := data[:min(len(data), l7.CaptureSize(proto))]
	if s.Protocol != proto || s.Flags != flags || s.Offset != offset || s.Length != uint32(len(data)) || string(s.Payload) != want {
		t.Errorf("segment %s flags %#x offset %d length %d payload %q; want %s %#x %d %d %q",
			s.Protocol, s.Flags, s.Offset, s.Length, s.Payload, proto, flags, offset, len(data), want)
	}
	if s.Timestamp == 0 || s.CgroupID == 0 {
		t.Errorf("segment without timestamp or cgroup: %+v", s)
	}
}

func fdOf(t *testing.T, c net.Conn) int {
	t.Helper()
	return testutil.ConnFD(t, c.(syscall.Conn))
}

// TestL7HTTPExchangeAndClose: an HTTP/1.1 exchange over loopback gives one segment per
// syscall at both ends (role, direction, offsets, payload), each end's first one flagged new,
// gathered from iovecs for writev/readv/sendmsg/recvmsg, and a close record per end in order
// after them.
func TestL7HTTPExchangeAndClose(t *testing.T) {
	p := loadL7Probe(t, L7Options{})
	client, server := testutil.LoopbackTCP(t)
	cfd, sfd := fdOf(t, client), fdOf(t, server)
	req := "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
	body := strings.Repeat("b", 2000)
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n"

	if _, err := client.Write([]byte(req)); err != nil { // write
		t.Fatal(err)
	}
	testutil.WaitReadable(t, server.(syscall.Conn), len(req))
	buf := make([]byte, 10)
	if _, err := unix.Readv(sfd, [][]byte{buf, make([]byte, len(req)-10)}); err != nil { // readv
		t.Fatal(err)
	}
	if _, err := unix.Writev(sfd, [][]byte{[]byte(resp[:10]), []byte(resp[10:]), []byte(body)}); err != nil { // writev
		t.Fatal(err)
	}
	testutil.WaitReadable(t, client.(syscall.Conn), len(resp)+len(body))
	if _, _, _, _, err := unix.RecvmsgBuffers(cfd, [][]byte{make([]byte, 30), make([]byte, len(resp)+len(body)-30)}, nil, 0); err != nil { // recvmsg
		t.Fatal(err)
	}
	if _, err := unix.SendmsgBuffers(cfd, [][]byte{[]byte("GET /two HTTP/1.1\r\n"), []byte("\r\n")}, nil, nil, 0); err != nil { // sendmsg
		t.Fatal(err)
	}
	got := readL7(t, p, []int{cfd, sfd}, nil, 5, 5*time.Second)
	cs, ss := got.fds[uint32(cfd)], got.fds[uint32(sfd)]
	if len(cs) != 3 || len(ss) != 2 {
		t.Fatalf("client %d segments, server %d; want 3 and 2: %+v", len(cs), len(ss), got.fds)
	}
	const (
		recv  = l7.FlagReceived
		srv   = l7.FlagServer
		fresh = l7.FlagNew
	)
	expectSegment(t, cs[0], l7.ProtocolHTTP, fresh, 0, req)
	expectSegment(t, cs[1], l7.ProtocolHTTP, recv, 0, resp+body)
	expectSegment(t, cs[2], l7.ProtocolHTTP, 0, uint64(len(req)), "GET /two HTTP/1.1\r\n\r\n")
	expectSegment(t, ss[0], l7.ProtocolHTTP, recv|srv|fresh, 0, req)
	expectSegment(t, ss[1], l7.ProtocolHTTP, srv, 0, resp+body)
	if cs[0].Sock == ss[0].Sock || cs[0].Sock != cs[2].Sock || cs[0].FD != uint32(cfd) || cs[0].PID != uint32(os.Getpid()) {
		t.Errorf("connection ids: client %#x/%#x, server %#x", cs[0].Sock, cs[2].Sock, ss[0].Sock)
	}

	_ = client.Close()
	_ = server.Close()
	closes := readL7(t, p, nil, []uint64{cs[0].Sock, ss[0].Sock}, 2, 5*time.Second)
	if len(closes.socks[cs[0].Sock]) != 1 || len(closes.socks[ss[0].Sock]) != 1 {
		t.Fatalf("close records: %+v", closes.socks)
	}
	if c := closes.socks[ss[0].Sock][0]; c.Protocol != l7.ProtocolHTTP || c.Flags != l7.FlagClosed|srv || c.Length != 0 {
		t.Errorf("server close record %+v", c)
	}
	st, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if st.Detected < 2 || st.Closed < 2 {
		t.Errorf("counters %+v", st)
	}
}

// TestL7Suppression: a client writing Redis commands without reading replies gets its first
// SuppressAfter writes forwarded (past SuppressBytes), the rest counted but not sent; a read resumes forwarding, and
// offsets tell user space how much it missed. MSG_PEEK reads neither forward nor count.
func TestL7Suppression(t *testing.T) {
	p := loadL7Probe(t, L7Options{SuppressBytes: 64}) // the commands below are 23 bytes each
	client, server := testutil.LoopbackTCP(t)
	cfd, sfd := fdOf(t, client), fdOf(t, server)
	cmd := "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
	for i := 0; i < 6; i++ {
		if _, err := client.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitReadable(t, server.(syscall.Conn), 6*len(cmd))
	peek := make([]byte, len(cmd))
	if _, _, err := unix.Recvfrom(sfd, peek, unix.MSG_PEEK); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 6*len(cmd))); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte("$-1\r\n")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitReadable(t, client.(syscall.Conn), 5)
	if _, err := client.Read(make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte(cmd)); err != nil {
		t.Fatal(err)
	}
	got := readL7(t, p, []int{cfd, sfd}, nil, 8, 5*time.Second)
	cs, ss := got.fds[uint32(cfd)], got.fds[uint32(sfd)]
	if len(cs) != 6 || len(ss) != 2 {
		t.Fatalf("client %d segments, server %d; want 6 and 2", len(cs), len(ss))
	}
	for i := 0; i < 4; i++ {
		expectSegment(t, cs[i], l7.ProtocolRedis, map[bool]uint8{true: l7.FlagNew}[i == 0], uint64(i*len(cmd)), cmd)
	}
	expectSegment(t, cs[4], l7.ProtocolRedis, l7.FlagReceived, 0, "$-1\r\n")
	expectSegment(t, cs[5], l7.ProtocolRedis, 0, uint64(6*len(cmd)), cmd) // two writes were not forwarded
	expectSegment(t, ss[0], l7.ProtocolRedis, l7.FlagReceived|l7.FlagServer|l7.FlagNew, 0, strings.Repeat(cmd, 6))
	st, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if st.Suppressed < 2 {
		t.Errorf("suppressed %d, want ≥ 2", st.Suppressed)
	}
}

// TestL7ProtocolSwitchAndGivingUp: a protocol switched off is not detected; a connection
// whose first syscalls match no protocol is left alone after DetectAttempts of them.
func TestL7ProtocolSwitchAndGivingUp(t *testing.T) {
	p := loadL7Probe(t, L7Options{Protocols: ^uint32(1 << l7.ProtocolRedis)})
	client, server := testutil.LoopbackTCP(t)
	cfd := fdOf(t, client)
	if _, err := client.Write([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")); err != nil {
		t.Fatal(err)
	}
	other, _ := testutil.LoopbackTCP(t)
	ofd := fdOf(t, other)
	for i := 0; i < l7.DetectAttempts; i++ {
		if _, err := other.Write([]byte("\x16\x03\x01 not a protocol")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil { // too late
		t.Fatal(err)
	}
	_ = server
	got := readL7(t, p, []int{cfd, ofd}, nil, 1, time.Second)
	if len(got.fds) != 0 {
		t.Errorf("segments of a switched-off protocol or after giving up: %+v", got.fds)
	}
	st, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if st.GivenUp == 0 {
		t.Errorf("counters %+v", st)
	}
}

// TestL7SeededConnection: a connection open before the capture loaded, known to the TCP
// tracer by a seeded id, reports that id.
func TestL7SeededConnection(t *testing.T) {
	tcp := loadProbe(t, 0)
	client, server := testutil.LoopbackTCP(t)
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	tuple := SocketTuple{
		NetNS: uint32(st.Ino), Family: FamilyIPv4,
		Local:  client.LocalAddr().(*net.TCPAddr).AddrPort(),
		Remote: client.RemoteAddr().(*net.TCPAddr).AddrPort(),
	}
	tuple.Local = netip.AddrPortFrom(tuple.Local.Addr().Unmap(), tuple.Local.Port())
	tuple.Remote = netip.AddrPortFrom(tuple.Remote.Addr().Unmap(), tuple.Remote.Port())
	const id = 1<<63 | 4242
	if err := tcp.AddSeeded(tuple, id); err != nil {
		t.Fatal(err)
	}
	p := loadL7Probe(t, L7Options{Seeded: tcp})
	cfd, sfd := fdOf(t, client), fdOf(t, server)
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitReadable(t, server.(syscall.Conn), 18)
	if _, err := server.Read(make([]byte, 18)); err != nil {
		t.Fatal(err)
	}
	got := readL7(t, p, []int{cfd, sfd}, nil, 2, 5*time.Second)
	if len(got.fds[uint32(cfd)]) != 1 || got.fds[uint32(cfd)][0].Sock != id {
		t.Errorf("client segments %+v, want sock %#x", got.fds[uint32(cfd)], uint64(id))
	}
	if len(got.fds[uint32(sfd)]) != 1 || got.fds[uint32(sfd)][0].Sock == id {
		t.Errorf("server segments %+v: the server side is not seeded", got.fds[uint32(sfd)])
	}
}

// TestL7DNSOverUDP: DNS over UDP on port 53 needs no detection state beyond the port: a
// server bound to :53 sees queries and writes answers (role server), an unconnected client
// sending to :53 with sendmmsg (two queries, as glibc sends A and AAAA) gets one segment per
// message and its recvfrom the answers.
func TestL7DNSOverUDP(t *testing.T) {
	p := loadL7Probe(t, L7Options{})
	addr := netip.MustParseAddrPort("127.53.16.1:53") // an address of this test only: port 53 is DNS
	srv, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	q := func(id byte, qtype byte) []byte {
		return []byte("\x00" + string([]byte{id}) + "\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00" + string([]byte{qtype}) + "\x00\x01")
	}
	cfd, sfd := fdOf(t, cl), fdOf(t, srv)
	sa := &unix.SockaddrInet4{Port: 53, Addr: addr.Addr().As4()}
	if err := sendmmsg(cfd, sa, q(1, 1), q(2, 28)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		buf := make([]byte, 512)
		_ = srv.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		ans := append([]byte(nil), buf[:n]...)
		ans[2] |= 0x80
		if _, err := srv.WriteToUDPAddrPort(ans, from); err != nil {
			t.Fatal(err)
		}
		_ = cl.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := cl.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
	got := readL7(t, p, []int{cfd, sfd}, nil, 8, 5*time.Second)
	cs, ss := got.fds[uint32(cfd)], got.fds[uint32(sfd)]
	if len(cs) != 4 || len(ss) != 4 {
		t.Fatalf("client %d segments, server %d; want 4 each", len(cs), len(ss))
	}
	for _, s := range append(cs, ss...) {
		if s.Protocol != l7.ProtocolDNS || s.Flags&l7.FlagUDP == 0 {
			t.Errorf("segment %+v", s)
		}
	}
	if cs[0].Flags&l7.FlagReceived != 0 || cs[1].Flags&l7.FlagReceived != 0 || !bytes.Equal(cs[1].Payload, q(2, 28)) {
		t.Errorf("sendmmsg's two queries: %+v %+v", cs[0], cs[1])
	}
	if ss[0].Flags&l7.FlagServer == 0 || cs[0].Flags&l7.FlagServer != 0 {
		t.Errorf("roles: client %#x, server %#x", cs[0].Flags, ss[0].Flags)
	}
}

func sendmmsg(fd int, to *unix.SockaddrInet4, msgs ...[]byte) error {
	type mmsghdr struct {
		hdr unix.Msghdr
		_   uint32 // msg_len, set by the kernel
		_   [4]byte
	}
	var rsa unix.RawSockaddrInet4
	rsa.Family = unix.AF_INET
	rsa.Port = uint16(to.Port>>8) | uint16(to.Port&0xff)<<8
	rsa.Addr = to.Addr
	hdrs := make([]mmsghdr, len(msgs))
	iovs := make([]unix.Iovec, len(msgs))
	for i, m := range msgs {
		iovs[i].Base = &m[0]
		iovs[i].SetLen(len(m))
		hdrs[i].hdr.Name = (*byte)(unsafePointer(&rsa))
		hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.Iovlen = 1
	}
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafePointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if int(n) != len(msgs) {
		return errors.New("sendmmsg sent fewer messages")
	}
	return nil
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
