package l7

import "encoding/binary"

// Kafka (https://kafka.apache.org/protocol): every message is an int32 big-endian size and
// the message. A request header is api_key int16, api_version int16, correlation_id int32,
// client_id; a response header is correlation_id int32 (plus tagged fields in flexible
// versions). Responses come back in request order on a connection; they are matched by
// correlation id. The error code is read where it sits at the top of the response or in the
// first partition of a Produce response; other responses count as ok.

type kafkaParser struct {
	framedParser
}

const (
	kafkaHeaderSize  = 8 // size + api_key + api_version, or size + correlation_id
	kafkaMaxSize     = 1 << 30
	kafkaMaxAPIKey   = 100
	kafkaMaxVersion  = 30
	kafkaAPIProduce  = 0
	kafkaAPIFetch    = 1
	kafkaAPIFindCoor = 10
	kafkaAPIJoin     = 11
	kafkaAPIHeart    = 12
	kafkaAPILeave    = 13
	kafkaAPISync     = 14
	kafkaAPIVersions = 18
	kafkaAPIInitPID  = 22
)

func (p *kafkaParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	p.flows[f].feed(c, f, ts, ch, kafkaHeaderSize, p)
}

func (p *kafkaParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	n := binary.BigEndian.Uint32(hdr)
	if n < 4 || n > kafkaMaxSize {
		return 0, false
	}
	return 4 + uint64(n), true
}

func (p *kafkaParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < 12 {
		return false
	}
	if _, ok := p.frameLength(f, d); !ok {
		return false
	}
	if f == c.role.requestFlow() {
		return kafkaRequestHeaderValid(d)
	}
	return p.pending.has(binary.BigEndian.Uint32(d[4:]))
}

func kafkaRequestHeaderValid(d []byte) bool {
	key := int16(binary.BigEndian.Uint16(d[4:]))
	ver := int16(binary.BigEndian.Uint16(d[6:]))
	corr := int32(binary.BigEndian.Uint32(d[8:]))
	return key >= 0 && key <= kafkaMaxAPIKey && ver >= 0 && ver <= kafkaMaxVersion && corr >= 0
}

func (p *kafkaParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	if f == c.role.requestFlow() {
		if len(d) < 12 || !kafkaRequestHeaderValid(d) {
			p.flows[f].lose(c, true)
			return
		}
		key := binary.BigEndian.Uint16(d[4:])
		ver := binary.BigEndian.Uint16(d[6:])
		if key == kafkaAPIProduce && kafkaProduceAcks(d, ver) == 0 {
			c.confirm()
			c.t.unsupported.Add(1) // acks=0: the broker never answers
			return
		}
		p.pending.push(c, pendingReq{start: ts, id: binary.BigEndian.Uint32(d[8:]), kind: key, aux: ver})
		c.confirm()
		return
	}
	if len(d) < 8 {
		return
	}
	r, ok := p.pending.take(binary.BigEndian.Uint32(d[4:]))
	if !ok {
		c.t.unmatched.Add(1)
		return
	}
	status := StatusOK
	if code, ok := kafkaErrorCode(d, r.kind, r.aux); ok && code != 0 {
		status = StatusFailed
	}
	c.report(status, MethodNone, r.start, ts)
}

// kafkaFlexible returns the first version of an API whose messages use tagged fields
// (KIP-482), for the APIs whose responses are read.
func kafkaFlexible(key uint16) uint16 {
	switch key {
	case kafkaAPIProduce:
		return 9
	case kafkaAPIFetch:
		return 12
	case kafkaAPIFindCoor:
		return 3
	case kafkaAPIJoin:
		return 6
	case kafkaAPIHeart, kafkaAPILeave, kafkaAPISync:
		return 4
	case kafkaAPIVersions:
		return 3
	case kafkaAPIInitPID:
		return 2
	}
	return 0xffff
}

// kafkaProduceAcks reads a Produce request's acks; -2 when unreadable.
func kafkaProduceAcks(d []byte, ver uint16) int {
	r := kreader{b: d, i: 12}
	r.skipString() // client_id: a nullable string even in header v2
	if ver >= kafkaFlexible(kafkaAPIProduce) {
		r.skipTags()
		if ver >= 3 {
			r.skipCompactString() // transactional_id
		}
	} else if ver >= 3 {
		r.skipString()
	}
	acks, ok := r.int16()
	if !ok {
		return -2
	}
	return int(acks)
}

// kafkaErrorCode reads the error code of a response to API key with version ver.
func kafkaErrorCode(d []byte, key, ver uint16) (int16, bool) {
	r := kreader{b: d, i: 8}
	flexible := ver >= kafkaFlexible(key)
	if flexible && key != kafkaAPIVersions {
		r.skipTags() // response header v1; ApiVersions keeps header v0 (KIP-511)
	}
	switch key {
	case kafkaAPIVersions:
		return r.int16()
	case kafkaAPIFetch:
		if ver < 7 {
			return 0, false
		}
		r.skip(4) // throttle_time_ms
		return r.int16()
	case kafkaAPIFindCoor:
		if ver >= 4 {
			return 0, false // a batch of coordinators, each with its own error
		}
		if ver >= 1 {
			r.skip(4)
		}
		return r.int16()
	case kafkaAPIJoin:
		if ver >= 2 {
			r.skip(4)
		}
		return r.int16()
	case kafkaAPIHeart, kafkaAPILeave, kafkaAPISync:
		if ver >= 1 {
			r.skip(4)
		}
		return r.int16()
	case kafkaAPIInitPID:
		r.skip(4)
		return r.int16()
	case kafkaAPIProduce:
		// responses: [topic: name (v13: a 16-byte topic id, KIP-516), [partition: index int32,
		// error_code int16, ...]]
		if flexible {
			if n, ok := r.uvarint(); !ok || n < 2 {
				return 0, false
			}
			if ver >= 13 {
				r.skip(16)
			} else {
				r.skipCompactString()
			}
			if n, ok := r.uvarint(); !ok || n < 2 {
				return 0, false
			}
		} else {
			if n, ok := r.int32(); !ok || n < 1 {
				return 0, false
			}
			r.skipString()
			if n, ok := r.int32(); !ok || n < 1 {
				return 0, false
			}
		}
		r.skip(4) // partition index
		return r.int16()
	}
	return 0, false
}

// kreader reads Kafka primitive types; a read past the end fails every later read.
type kreader struct {
	b   []byte
	i   int
	bad bool
}

func (r *kreader) skip(n int) {
	if n < 0 || r.i+n > len(r.b) {
		r.bad = true
		return
	}
	r.i += n
}

func (r *kreader) int16() (int16, bool) {
	if r.bad || r.i+2 > len(r.b) {
		r.bad = true
		return 0, false
	}
	v := int16(binary.BigEndian.Uint16(r.b[r.i:]))
	r.i += 2
	return v, true
}

func (r *kreader) int32() (int32, bool) {
	if r.bad || r.i+4 > len(r.b) {
		r.bad = true
		return 0, false
	}
	v := int32(binary.BigEndian.Uint32(r.b[r.i:]))
	r.i += 4
	return v, true
}

func (r *kreader) uvarint() (uint64, bool) {
	if r.bad {
		return 0, false
	}
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		r.bad = true
		return 0, false
	}
	r.i += n
	return v, true
}

// skipString skips a (nullable) string: int16 length, -1 for null.
func (r *kreader) skipString() {
	n, ok := r.int16()
	if ok && n > 0 {
		r.skip(int(n))
	}
}

// skipCompactString skips a compact (nullable) string: uvarint length+1, 0 for null.
func (r *kreader) skipCompactString() {
	n, ok := r.uvarint()
	if ok && n > 1 {
		r.skip(int(n - 1))
	}
}

// skipTags skips a tagged-field section.
func (r *kreader) skipTags() {
	n, ok := r.uvarint()
	for i := uint64(0); ok && i < n && i < 64; i++ {
		if _, ok = r.uvarint(); !ok { // tag
			return
		}
		var size uint64
		if size, ok = r.uvarint(); ok {
			r.skip(int(size))
		}
	}
}
