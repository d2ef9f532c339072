package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctReply builds the kernel's answer to CT_GET: orig tuple src->dst, reply tuple from actual.
func ctReply(t testing.TB, seq uint32, src, dst, actual netip.AddrPort) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	tuple := func(typ uint16, s, d netip.AddrPort) {
		ae.Nested(typ|nlaNested, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(ctaTupleIP|nlaNested, func(ae *netlink.AttributeEncoder) error {
				ae.Bytes(ctaIPv4Src, s.Addr().AsSlice())
				ae.Bytes(ctaIPv4Dst, d.Addr().AsSlice())
				return nil
			})
			ae.Nested(ctaTupleProto|nlaNested, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(ctaProtoNum, protoTCP)
				ae.ByteOrder = binary.BigEndian
				ae.Uint16(ctaProtoSrc, s.Port())
				ae.Uint16(ctaProtoDst, d.Port())
				return nil
			})
			return nil
		})
	}
	tuple(ctaTupleOrig, src, dst)
	tuple(ctaTupleReply, actual, src)
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, nlmsgHeaderLen+nfgenmsgLen+len(attrs))
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysCTNetlink<<8)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_MULTI) // as the kernel sends it
	binary.NativeEndian.PutUint32(b[8:], seq)
	copy(b[20:], attrs)
	return b
}

func errMsg(seq uint32, errno unix.Errno) []byte {
	b := make([]byte, nlmsgHeaderLen+4+nlmsgHeaderLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], unix.NLMSG_ERROR)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[16:], uint32(-int32(errno)))
	return b
}

func TestParseReply(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.1:40000")
	svc := netip.MustParseAddrPort("10.96.0.10:80")
	pod := netip.MustParseAddrPort("10.244.1.7:8080")
	tests := []struct {
		name    string
		b       []byte
		want    netip.AddrPort
		done    bool
		wantErr bool
	}{
		{"dnat", ctReply(t, 7, src, svc, pod), pod, true, false},
		{"stale seq skipped", ctReply(t, 6, src, svc, pod), netip.AddrPort{}, false, false},
		{"enoent", errMsg(7, unix.ENOENT), netip.AddrPort{}, true, true},
		{"ack", errMsg(7, 0), netip.AddrPort{}, true, false},
		{"bad length", []byte{200, 0, 0, 0, 1, 1, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0}, netip.AddrPort{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, done, err := parseReply(tt.b, 7)
			if (err != nil) != tt.wantErr || done != tt.done || got != tt.want {
				t.Errorf("parseReply = %s, %v, %v; want %s, %v, err %v", got, done, err, tt.want, tt.done, tt.wantErr)
			}
		})
	}
}

func FuzzParseReply(f *testing.F) {
	f.Add(ctReply(f, 1, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), netip.MustParseAddrPort("10.0.0.3:3")))
	f.Add(errMsg(1, unix.ENOENT))
	f.Fuzz(func(t *testing.T, b []byte) {
		reply, done, err := parseReply(b, 1)
		if err == nil && done && reply.IsValid() && reply.Addr().Is4In6() {
			t.Fatalf("mapped address leaked: %s", reply)
		}
	})
}
