// Package conntrack resolves where a NATed TCP connection really goes: it looks up the
// connection's original tuple in the kernel conntrack table over netlink (IPCTNL_MSG_CT_GET)
// and returns the reply tuple's source, which is the address after DNAT (e.g. the pod behind a
// Kubernetes Service). It only reads the table; it never creates, updates or deletes entries.
//
// The request is spoken over a plain NETLINK_NETFILTER socket rather than through
// github.com/ti-mo/conntrack: the kernel marks a single CT_GET reply NLM_F_MULTI without a
// closing NLMSG_DONE, and with mdlayher/netlink v1.11 the library then waits for a message that
// never comes (Get blocks forever whenever the entry exists).
package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink constants from linux/netfilter/nfnetlink*.h.
const (
	nfnlSubsysCTNetlink = 1
	ipctnlMsgCTGet      = 1
	nfnetlinkV0         = 0

	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3

	protoTCP  = 6
	nlaNested = 0x8000

	nlmsgHeaderLen = 16
	nfgenmsgLen    = 4
)

// Resolver answers NAT lookups for the network namespace it was opened in. Safe for
// concurrent use; lookups are serialised on one socket.
type Resolver struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

// Open connects to the conntrack netlink subsystem of the current network namespace.
func Open() (*Resolver, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("conntrack: opening netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("conntrack: binding netlink socket: %w", err)
	}
	// A lookup must never hang the caller, whatever the kernel does.
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("conntrack: setting receive timeout: %w", err)
	}
	return &Resolver{fd: fd, buf: make([]byte, 1<<16)}, nil
}

// ActualDestination returns the destination a TCP connection from src to dst (as the socket
// sees it) is translated to. found is false when conntrack has no entry for the connection (no
// NAT involved, conntrack not in use, or the entry already expired); actual is then dst.
func (r *Resolver) ActualDestination(src, dst netip.AddrPort) (actual netip.AddrPort, found bool, err error) {
	src, dst = netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !src.IsValid() || !dst.IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
		return dst, false, fmt.Errorf("conntrack: invalid tuple %s -> %s", src, dst)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return dst, false, errors.New("conntrack: resolver closed")
	}
	r.seq++
	req, err := getRequest(r.seq, src, dst)
	if err != nil {
		return dst, false, err
	}
	if err := unix.Sendto(r.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return dst, false, fmt.Errorf("conntrack: sending CT_GET: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(r.fd, r.buf, 0)
		if err != nil {
			return dst, false, fmt.Errorf("conntrack: receiving CT_GET reply: %w", err)
		}
		reply, done, err := parseReply(r.buf[:n], r.seq)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return dst, false, nil
			}
			return dst, false, fmt.Errorf("conntrack: looking up %s -> %s: %w", src, dst, err)
		}
		if done {
			if !reply.IsValid() {
				return dst, false, nil
			}
			return reply, true, nil
		}
		// a stale datagram of an earlier, timed-out request: keep reading
	}
}

// Close releases the netlink socket.
func (r *Resolver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

func getRequest(seq uint32, src, dst netip.AddrPort) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleOrig|nlaNested, func(ae *netlink.AttributeEncoder) error {
		ae.Nested(ctaTupleIP|nlaNested, func(ae *netlink.AttributeEncoder) error {
			if src.Addr().Is4() {
				s, d := src.Addr().As4(), dst.Addr().As4()
				ae.Bytes(ctaIPv4Src, s[:])
				ae.Bytes(ctaIPv4Dst, d[:])
			} else {
				s, d := src.Addr().As16(), dst.Addr().As16()
				ae.Bytes(ctaIPv6Src, s[:])
				ae.Bytes(ctaIPv6Dst, d[:])
			}
			return nil
		})
		ae.Nested(ctaTupleProto|nlaNested, func(ae *netlink.AttributeEncoder) error {
			ae.Uint8(ctaProtoNum, protoTCP)
			ae.ByteOrder = binary.BigEndian
			ae.Uint16(ctaProtoSrc, src.Port())
			ae.Uint16(ctaProtoDst, dst.Port())
			ae.ByteOrder = binary.NativeEndian
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("conntrack: encoding request: %w", err)
	}
	family := byte(unix.AF_INET)
	if !src.Addr().Is4() {
		family = unix.AF_INET6
	}
	total := nlmsgHeaderLen + nfgenmsgLen + len(attrs)
	b := make([]byte, total)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(total))
	ne.PutUint16(b[4:], nfnlSubsysCTNetlink<<8|ipctnlMsgCTGet)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	b[16] = family
	b[17] = nfnetlinkV0
	copy(b[nlmsgHeaderLen+nfgenmsgLen:], attrs)
	return b, nil
}

// parseReply reads one datagram. done is true when it answered request seq: either with the
// entry (reply is the reply tuple's source) or with an error (ENOENT: no entry).
func parseReply(b []byte, seq uint32) (reply netip.AddrPort, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHeaderLen {
		length := int(ne.Uint32(b[0:]))
		if length < nlmsgHeaderLen || length > len(b) {
			return reply, false, fmt.Errorf("malformed netlink message length %d", length)
		}
		msg := b[:length]
		b = b[min(len(b), (length+3)&^3):]
		if ne.Uint32(msg[8:]) != seq {
			continue
		}
		switch typ := ne.Uint16(msg[4:]); {
		case typ == unix.NLMSG_ERROR:
			if len(msg) < nlmsgHeaderLen+4 {
				return reply, true, errors.New("short netlink error message")
			}
			if code := int32(ne.Uint32(msg[nlmsgHeaderLen:])); code != 0 {
				return reply, true, unix.Errno(-code)
			}
			return reply, true, nil
		case typ == unix.NLMSG_DONE:
			return reply, true, nil
		case typ>>8 == nfnlSubsysCTNetlink:
			if len(msg) < nlmsgHeaderLen+nfgenmsgLen {
				return reply, true, errors.New("short conntrack message")
			}
			reply, err = replySource(msg[nlmsgHeaderLen+nfgenmsgLen:])
			return reply, true, err
		}
	}
	return reply, false, nil
}

// replySource extracts CTA_TUPLE_REPLY's source address and port.
func replySource(attrs []byte) (netip.AddrPort, error) {
	var (
		addr netip.Addr
		port uint16
	)
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("decoding conntrack attributes: %w", err)
	}
	for ad.Next() {
		if ad.Type() != ctaTupleReply {
			continue
		}
		ad.Nested(func(tuple *netlink.AttributeDecoder) error {
			for tuple.Next() {
				switch tuple.Type() {
				case ctaTupleIP:
					tuple.Nested(func(ip *netlink.AttributeDecoder) error {
						for ip.Next() {
							if t := ip.Type(); t == ctaIPv4Src || t == ctaIPv6Src {
								addr, _ = netip.AddrFromSlice(ip.Bytes())
							}
						}
						return nil
					})
				case ctaTupleProto:
					tuple.Nested(func(proto *netlink.AttributeDecoder) error {
						proto.ByteOrder = binary.BigEndian
						for proto.Next() {
							if proto.Type() == ctaProtoSrc {
								port = proto.Uint16()
							}
						}
						return nil
					})
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("decoding conntrack reply tuple: %w", err)
	}
	if !addr.IsValid() {
		return netip.AddrPort{}, errors.New("conntrack reply without a reply tuple source")
	}
	return netip.AddrPortFrom(addr.Unmap(), port), nil
}
