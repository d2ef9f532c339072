package testutil

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LoopbackTCP returns both ends of a new TCP connection over 127.0.0.1 (a free port), closed
// when the test ends.
func LoopbackTCP(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

// ConnFD returns the file descriptor of a connection of this process, for tests that issue
// syscalls on it directly or match it in kernel records.
func ConnFD(t testing.TB, c syscall.Conn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := raw.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	return int(fd)
}

// WaitReadable waits until at least n bytes are queued for reading on a TCP connection, so
// that reads of chosen sizes return exactly those sizes.
func WaitReadable(t testing.TB, c syscall.Conn, n int) {
	t.Helper()
	fd := ConnFD(t, c)
	for i := 0; i < 2000; i++ {
		if queued, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err == nil && queued >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d bytes never arrived on fd %d", n, fd)
}

// RuleIP is the loopback address that tests adding iptables rules (a DROP that makes connects
// retransmit their SYNs, a DNAT) send to. Their rules match it and the port, never the port
// alone: a port the kernel gave one test can be any other test's listener an instant later,
// and all of 127.0.0.0/8 reaches this host while other tests use 127.0.0.1 only.
const RuleIP = "127.0.0.123"
