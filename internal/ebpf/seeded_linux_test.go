package ebpf

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func ownNetNS(t *testing.T) uint32 {
	t.Helper()
	link, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var ino uint32
	if _, err := fmt.Sscanf(link, "net:[%d]", &ino); err != nil {
		t.Fatalf("namespace link %q: %v", link, err)
	}
	return ino
}

// TestProbeSeededClose: a connection opened before the probe was loaded is unknown to the
// kernel side until user space seeds its tuple; its close then comes with the seeded id, once.
func TestProbeSeededClose(t *testing.T) {
	tests := []struct {
		name    string
		network string
		addr    string
		family  uint16
	}{
		{"ipv4", "tcp4", "127.0.0.1:0", FamilyIPv4},
		{"ipv6", "tcp6", "[::1]:0", FamilyIPv6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen(tt.network, tt.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tt.network, err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
			}()
			conn, err := net.Dial(tt.network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			srv := <-accepted
			defer srv.Close()

			p := loadProbe(t, 0) // after the connection was established
			tuple := SocketTuple{
				NetNS:  ownNetNS(t),
				Family: tt.family,
				Local:  conn.LocalAddr().(*net.TCPAddr).AddrPort(),
				Remote: conn.RemoteAddr().(*net.TCPAddr).AddrPort(),
			}
			const id = 1<<63 | 7
			if err := p.AddSeeded(tuple, id); err != nil {
				t.Fatal(err)
			}
			if err := p.AddSeeded(tuple, id+1); err == nil {
				t.Error("the same tuple seeded twice")
			}
			conn.Close()
			readUntil(t, p, 5*time.Second, func(ev *Event) bool {
				if ev.Type != EventClose || ev.Sock != id {
					return false
				}
				if ev.Flags != FlagSeeded || ev.Source != tuple.Local || ev.Destination != tuple.Remote || ev.BytesSent != 0 {
					t.Errorf("seeded close %+v", *ev)
				}
				return true
			})
			// The kernel side forgot it at the close.
			if removed, err := p.RemoveSeeded(tuple); err != nil || removed {
				t.Errorf("RemoveSeeded after close = %v, %v; want false, nil", removed, err)
			}
		})
	}
}

func TestProbeSeededRemove(t *testing.T) {
	p := loadProbe(t, 0)
	tuple := SocketTuple{NetNS: 1, Family: FamilyIPv4, Local: netip.MustParseAddrPort("10.0.0.1:40000"), Remote: netip.MustParseAddrPort("10.0.0.2:80")}
	if err := p.AddSeeded(tuple, 1<<63|1); err != nil {
		t.Fatal(err)
	}
	if removed, err := p.RemoveSeeded(tuple); err != nil || !removed {
		t.Errorf("RemoveSeeded = %v, %v; want true, nil", removed, err)
	}
	if removed, err := p.RemoveSeeded(tuple); err != nil || removed {
		t.Errorf("second RemoveSeeded = %v, %v; want false, nil", removed, err)
	}
}

func TestSocketTupleKey(t *testing.T) {
	v4 := netip.MustParseAddrPort("10.0.0.1:40000")
	v6 := netip.MustParseAddrPort("[fd00::1]:443")
	mapped := netip.MustParseAddrPort("[::ffff:10.0.0.2]:80")
	tests := []struct {
		name    string
		tuple   SocketTuple
		want    seededKey
		wantErr string
	}{
		{
			name:  "ipv4",
			tuple: SocketTuple{NetNS: 9, Family: FamilyIPv4, Local: v4, Remote: netip.MustParseAddrPort("10.0.0.2:80")},
			want:  seededKey{Netns: 9, Family: 2, Sport: 40000, Dport: 80, Saddr: [16]byte{10, 0, 0, 1}, Daddr: [16]byte{10, 0, 0, 2}},
		},
		{
			name:  "ipv6 socket with a v4-mapped peer",
			tuple: SocketTuple{NetNS: 9, Family: FamilyIPv6, Local: v6, Remote: mapped},
			want:  seededKey{Netns: 9, Family: 10, Sport: 443, Dport: 80, Saddr: v6.Addr().As16(), Daddr: mapped.Addr().As16()},
		},
		{name: "ipv6 address in an ipv4 tuple", tuple: SocketTuple{Family: FamilyIPv4, Local: v4, Remote: v6}, wantErr: "ipv4 socket tuple"},
		{name: "ipv4 address in an ipv6 tuple", tuple: SocketTuple{Family: FamilyIPv6, Local: v4, Remote: v6}, wantErr: "ipv6 socket tuple"},
		{name: "no family", tuple: SocketTuple{Local: v4, Remote: v4}, wantErr: "address family 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k seededKey
			err := k.set(tt.tuple)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || k != tt.want {
				t.Errorf("key %+v, %v; want %+v", k, err, tt.want)
			}
		})
	}
}
