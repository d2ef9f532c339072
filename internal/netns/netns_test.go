package netns

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestParseLink(t *testing.T) {
	tests := []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{"net:[4026531840]", 4026531840, false},
		{"net:[1]", 1, false},
		{"net:[0]", 0, true},
		{"net:[]", 0, true},
		{"net:[4026531840", 0, true},
		{"mnt:[4026531840]", 0, true},
		{"net:[99999999999]", 0, true}, // beyond 32 bits
		{"net:[-1]", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLink([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLink(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// linkBody and addrBody build rtnetlink message bodies as the kernel sends them.
func linkBody(t testing.TB, index int32, oper uint8, withOper bool) []byte {
	t.Helper()
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, "eth0")
	if withOper {
		ae.Uint8(unix.IFLA_OPERSTATE, oper)
	}
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, attrs...)
}

func addrBody(t testing.TB, family uint8, index int32, address, local string) []byte {
	t.Helper()
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = family
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	ae := netlink.NewAttributeEncoder()
	if address != "" {
		ae.Bytes(unix.IFA_ADDRESS, netip.MustParseAddr(address).AsSlice())
	}
	if local != "" {
		ae.Bytes(unix.IFA_LOCAL, netip.MustParseAddr(local).AsSlice())
	}
	ae.String(unix.IFA_LABEL, "eth0")
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(b, attrs...)
}

func TestParseLinkMessage(t *testing.T) {
	tests := []struct {
		name     string
		body     []byte
		index    int32
		down     bool
		wantErr  bool
		skipBody bool
	}{
		{name: "up", body: linkBody(t, 4, 6, true), index: 4},
		{name: "down", body: linkBody(t, 7, ifOperDown, true), index: 7, down: true},
		{name: "unknown (loopback) is not down", body: linkBody(t, 1, 0, true), index: 1},
		{name: "lower layer down is not down", body: linkBody(t, 3, 3, true), index: 3},
		{name: "no operstate", body: linkBody(t, 2, 0, false), index: 2},
		{name: "short", body: make([]byte, unix.SizeofIfInfomsg-1), wantErr: true},
		{name: "truncated attribute", body: append(linkBody(t, 2, 6, true), 9, 0, 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			index, down, err := parseLink(tt.body)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (index != tt.index || down != tt.down) {
				t.Errorf("parseLink = %d, %v; want %d, %v", index, down, tt.index, tt.down)
			}
		})
	}
}

func TestParseAddrMessage(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		index   int32
		want    string
		wantErr bool
	}{
		{name: "ipv4 local and address", body: addrBody(t, unix.AF_INET, 3, "10.0.0.9", "10.0.0.9"), index: 3, want: "10.0.0.9"},
		{name: "point-to-point: local, not the peer", body: addrBody(t, unix.AF_INET, 5, "10.9.9.9", "10.0.0.2"), index: 5, want: "10.0.0.2"},
		{name: "ipv6 address only", body: addrBody(t, unix.AF_INET6, 2, "fd00::2", ""), index: 2, want: "fd00::2"},
		{name: "v4-mapped is unmapped", body: addrBody(t, unix.AF_INET6, 2, "::ffff:10.1.1.1", ""), index: 2, want: "10.1.1.1"},
		{name: "no address", body: addrBody(t, unix.AF_INET, 2, "", ""), index: 2, want: "invalid IP"},
		{name: "short", body: make([]byte, 3), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			index, addr, err := parseAddr(tt.body)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (index != tt.index || addr.String() != tt.want) {
				t.Errorf("parseAddr = %d, %s; want %d, %s", index, addr, tt.index, tt.want)
			}
		})
	}
}

func TestParseNSID(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.Int32(unix.NETNSA_NSID, 7)
	attrs, _ := ae.Encode()
	if id, ok := parseNSID(append(make([]byte, rtgenmsgLen), attrs...)); !ok || id != 7 {
		t.Errorf("parseNSID = %d, %v; want 7", id, ok)
	}
	ae = netlink.NewAttributeEncoder()
	ae.Int32(unix.NETNSA_NSID, -1)
	attrs, _ = ae.Encode()
	if id, ok := parseNSID(append(make([]byte, rtgenmsgLen), attrs...)); !ok || id != -1 {
		t.Errorf("parseNSID(not assigned) = %d, %v; want -1", id, ok)
	}
	if _, ok := parseNSID([]byte{0, 0}); ok {
		t.Error("parseNSID accepted a short body")
	}
}

func TestUsable(t *testing.T) {
	var got []string
	for _, s := range []string{"10.0.0.1", "127.0.0.1", "::1", "fd00::1", "169.254.1.1", "fe80::1", "224.0.0.1", "ff02::1", "0.0.0.0", "::"} {
		if Usable(netip.MustParseAddr(s)) {
			got = append(got, s)
		}
	}
	if want := []string{"10.0.0.1", "127.0.0.1", "::1", "fd00::1"}; !slices.Equal(got, want) {
		t.Errorf("usable %v, want %v", got, want)
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add(linkBody(f, 4, 6, true))
	f.Add(linkBody(f, 1, ifOperDown, false))
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		index, down, err := parseLink(b)
		if err != nil && (index != 0 || down) {
			t.Fatalf("error %v with a result %d %v", err, index, down)
		}
	})
}

func FuzzParseAddr(f *testing.F) {
	f.Add(addrBody(f, unix.AF_INET, 3, "10.0.0.9", "10.0.0.9"))
	f.Add(addrBody(f, unix.AF_INET6, 2, "fd00::2", ""))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, addr, err := parseAddr(b)
		if err != nil && addr.IsValid() {
			t.Fatalf("error %v with address %s", err, addr)
		}
		if addr.Is4In6() {
			t.Fatalf("v4-mapped address %s returned", addr)
		}
	})
}

func TestAddressesArguments(t *testing.T) {
	r := &Reader{}
	if _, err := r.Addresses(0, 1); err == nil {
		t.Error("no pid accepted")
	}
	if _, err := r.Addresses(1, 0); err == nil {
		t.Error("no namespace accepted")
	}
	if _, err := r.Addresses(1, 1); err == nil || errors.Is(err, ErrMoved) {
		t.Errorf("closed reader: %v", err)
	}
}
