package conntrack

import (
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// dnatRule redirects locally originated TCP to testutil.RuleIP:from towards 127.0.0.1:to.
func dnatRule(t *testing.T, from, to uint16) {
	t.Helper()
	spec := []string{
		"OUTPUT", "-p", "tcp", "-d", testutil.RuleIP, "--dport", strconv.Itoa(int(from)),
		"-j", "DNAT", "--to-destination", "127.0.0.1:" + strconv.Itoa(int(to)),
	}
	out, err := exec.Command("iptables", append([]string{"-t", "nat", "-I"}, spec...)...).CombinedOutput()
	testutil.SkipUnlessPrivileged(t, err == nil, "iptables DNAT rule: %v: %s", err, out)
	t.Cleanup(func() {
		if out, err := exec.Command("iptables", append([]string{"-t", "nat", "-D"}, spec...)...).CombinedOutput(); err != nil {
			t.Errorf("removing DNAT rule: %v: %s", err, out)
		}
	})
}

func TestActualDestinationDNAT(t *testing.T) {
	testutil.RequireRoot(t)
	r, err := Open()
	testutil.SkipUnlessPrivileged(t, err == nil, "conntrack netlink: %v", err)
	defer r.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	target := uint16(ln.Addr().(*net.TCPAddr).Port)
	dialled := freePort(t)
	dnatRule(t, dialled, target)

	conn, err := net.Dial("tcp", net.JoinHostPort(testutil.RuleIP, strconv.Itoa(int(dialled))))
	if err != nil {
		t.Fatalf("dial through DNAT: %v", err)
	}
	defer conn.Close()
	src := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	dst := netip.AddrPortFrom(netip.MustParseAddr(testutil.RuleIP), dialled)
	actual, found, err := r.ActualDestination(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), dst)
	if err != nil || !found {
		t.Fatalf("ActualDestination: found=%v err=%v", found, err)
	}
	if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), target); actual != want {
		t.Errorf("actual destination = %s, want %s", actual, want)
	}

	// Without an entry the dialled destination is returned, unchanged.
	none := netip.MustParseAddrPort("127.0.0.1:1")
	actual, found, err = r.ActualDestination(netip.MustParseAddrPort("127.0.0.1:2"), none)
	if err != nil || found || actual != none {
		t.Errorf("missing entry: actual=%s found=%v err=%v", actual, found, err)
	}
}

func TestActualDestinationInvalid(t *testing.T) {
	r := &Resolver{fd: -1} // validation happens before any netlink use
	tests := []struct{ src, dst netip.AddrPort }{
		{netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:1")},
		{netip.MustParseAddrPort("127.0.0.1:1"), netip.AddrPort{}},
		{netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("[::1]:1")},
	}
	for _, tt := range tests {
		if _, found, err := r.ActualDestination(tt.src, tt.dst); err == nil || found {
			t.Errorf("%s -> %s: want error", tt.src, tt.dst)
		}
	}
}
