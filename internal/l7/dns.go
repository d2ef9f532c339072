package l7

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// DNS (RFC 1035): a 12-byte header (id, flags, four counts), the questions, then resource
// records; over TCP each message is preceded by a 2-byte length. A response carries its
// query's id. The response's question gives request_type (QTYPE) and domain (QNAME); its
// RCODE the status; its A and AAAA answers the addresses that resolve the domain
// (ip_to_fqdn). A datagram socket's segments are whole messages.

// DNSInfo is what a DNS response says; valid during the Tracker's callback.
type DNSInfo struct {
	Type   uint16 // QTYPE of the first question
	Domain []byte // QNAME, lower case, without the trailing dot
	Rcode  uint8
	// IPs are the A and AAAA answers, at most MaxDNSAddrs.
	IPs    [MaxDNSAddrs]netip.Addr
	NumIPs int

	domain [255]byte
}

// MaxDNSAddrs bounds the addresses read from one response.
const MaxDNSAddrs = 16

// Addrs returns the addresses of the answers.
func (d *DNSInfo) Addrs() []netip.Addr { return d.IPs[:d.NumIPs] }

// TypeLabel returns coroot-node-agent's request_type value: golang.org/x/net/dns/dnsmessage
// Type names ("TypeA", "TypeAAAA", ...) and the decimal number of other types.
func (d *DNSInfo) TypeLabel() string { return DNSTypeLabel(d.Type) }

var dnsTypeNames = map[uint16]string{
	1: "TypeA", 2: "TypeNS", 5: "TypeCNAME", 6: "TypeSOA", 11: "TypeWKS", 12: "TypePTR",
	13: "TypeHINFO", 14: "TypeMINFO", 15: "TypeMX", 16: "TypeTXT", 28: "TypeAAAA", 33: "TypeSRV",
	41: "TypeOPT", 64: "TypeSVCB", 65: "TypeHTTPS", 252: "TypeAXFR", 255: "TypeALL",
}

var dnsOtherTypes [256]string

func init() {
	for i := range dnsOtherTypes {
		dnsOtherTypes[i] = strconv.Itoa(i)
	}
}

// DNSTypeLabel returns the request_type label of a QTYPE. Numbers above 255 allocate.
func DNSTypeLabel(t uint16) string {
	if n, ok := dnsTypeNames[t]; ok {
		return n
	}
	if t < 256 {
		return dnsOtherTypes[t]
	}
	return strconv.Itoa(int(t))
}

type dnsParser struct {
	framedParser // flows: TCP only
	info         DNSInfo
}

const dnsHeaderSize = 12

func (p *dnsParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	if c.udp {
		p.dnsMessage(c, f, ts, ch.data)
		return
	}
	p.flows[f].feed(c, f, ts, ch, 2, p)
}

func (p *dnsParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	n := binary.BigEndian.Uint16(hdr)
	if n < dnsHeaderSize {
		return 0, false
	}
	return 2 + uint64(n), true
}

func (p *dnsParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < 2+dnsHeaderSize {
		return false
	}
	if _, ok := p.frameLength(f, d); !ok {
		return false
	}
	if f == c.role.requestFlow() {
		return dnsQueryValid(d[2:])
	}
	return p.pending.has(uint32(binary.BigEndian.Uint16(d[2:])))
}

func (p *dnsParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	p.dnsMessage(c, f, ts, d[2:])
}

// dnsQueryValid checks a standard query's header: QR 0, opcode 0, one question, no
// answers or authority records.
func dnsQueryValid(m []byte) bool {
	if len(m) < dnsHeaderSize {
		return false
	}
	be := binary.BigEndian
	flags := be.Uint16(m[2:])
	return flags&0x8000 == 0 && flags&0x7800 == 0 && be.Uint16(m[4:]) == 1 && be.Uint16(m[6:]) == 0 && be.Uint16(m[8:]) == 0
}

func (p *dnsParser) dnsMessage(c *Conn, f Flow, ts uint64, m []byte) {
	if len(m) < dnsHeaderSize {
		return
	}
	id := uint32(binary.BigEndian.Uint16(m))
	response := m[2]&0x80 != 0
	if f == c.role.requestFlow() {
		if response || !dnsQueryValid(m) {
			if c.reject() {
				return
			}
			c.t.unmatched.Add(1)
			return
		}
		if _, dup := p.pending.take(id); dup {
			c.t.unanswered.Add(1) // a retransmitted query: time it from the retransmission
		}
		p.pending.push(c, pendingReq{start: ts, id: id})
		c.confirm()
		return
	}
	if !response {
		return
	}
	r, ok := p.pending.take(id)
	if !ok {
		c.t.unmatched.Add(1)
		return
	}
	if !parseDNSResponse(m, &p.info) {
		c.t.unmatched.Add(1)
		return
	}
	c.reportDNS(&p.info, r.start, ts)
}

// parseDNSResponse reads the first question and the A/AAAA answers of a response.
func parseDNSResponse(m []byte, info *DNSInfo) bool {
	be := binary.BigEndian
	if len(m) < dnsHeaderSize {
		return false
	}
	info.Rcode = m[3] & 0x0f
	qd, an := be.Uint16(m[4:]), be.Uint16(m[6:])
	info.NumIPs = 0
	info.Domain = info.domain[:0]
	info.Type = 0
	if qd == 0 {
		return false
	}
	i := dnsHeaderSize
	var ok bool
	info.Domain, i, ok = dnsName(m, i, info.domain[:0])
	if !ok || i+4 > len(m) {
		return false
	}
	info.Type = be.Uint16(m[i:])
	i += 4
	for q := 1; q < int(qd); q++ { // further questions: skipped
		if _, i, ok = dnsName(m, i, nil); !ok || i+4 > len(m) {
			return true
		}
		i += 4
	}
	for a := 0; a < int(an) && info.NumIPs < MaxDNSAddrs; a++ {
		if _, i, ok = dnsName(m, i, nil); !ok || i+10 > len(m) {
			break
		}
		typ, class, rdlen := be.Uint16(m[i:]), be.Uint16(m[i+2:]), int(be.Uint16(m[i+8:]))
		i += 10
		if i+rdlen > len(m) {
			break
		}
		if class == 1 {
			switch {
			case typ == 1 && rdlen == 4:
				info.IPs[info.NumIPs] = netip.AddrFrom4([4]byte(m[i : i+4]))
				info.NumIPs++
			case typ == 28 && rdlen == 16:
				info.IPs[info.NumIPs] = netip.AddrFrom16([16]byte(m[i : i+16]))
				info.NumIPs++
			}
		}
		i += rdlen
	}
	return true
}

// dnsName reads a (possibly compressed) domain name at m[i:], appending it in lower case
// with dots to dst when dst is not nil. It returns the offset after the name.
func dnsName(m []byte, i int, dst []byte) ([]byte, int, bool) {
	end := -1 // offset after the name where it is not a pointer target
	jumps := 0
	for {
		if i >= len(m) {
			return dst, 0, false
		}
		l := int(m[i])
		switch {
		case l == 0:
			if end < 0 {
				end = i + 1
			}
			return dst, end, true
		case l&0xc0 == 0xc0:
			if i+1 >= len(m) {
				return dst, 0, false
			}
			if end < 0 {
				end = i + 2
			}
			jumps++
			ptr := (l&0x3f)<<8 | int(m[i+1])
			if jumps > 16 || ptr >= len(m) {
				return dst, 0, false
			}
			i = ptr
		case l&0xc0 != 0:
			return dst, 0, false
		default:
			if i+1+l > len(m) {
				return dst, 0, false
			}
			if dst != nil {
				if len(dst)+l+1 > cap(dst) {
					return dst, 0, false
				}
				if len(dst) > 0 {
					dst = append(dst, '.')
				}
				for _, b := range m[i+1 : i+1+l] {
					if b >= 'A' && b <= 'Z' {
						b += 'a' - 'A'
					}
					dst = append(dst, b)
				}
			}
			i += 1 + l
		}
	}
}
