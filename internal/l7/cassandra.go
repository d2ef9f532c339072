package l7

import "encoding/binary"

// Cassandra native protocol (CQL binary protocol v3, v4, v5 specifications). A frame (v5:
// an envelope) has a 9-byte header: version (0x80 bit set in responses), flags, stream
// int16, opcode, body length int32. Requests on a connection are multiplexed by stream id;
// the response carries its request's stream. QUERY, PREPARE, EXECUTE and BATCH are counted
// (STARTUP, OPTIONS, REGISTER and AUTH_RESPONSE are not queries); an ERROR response fails.
//
// v5 wraps envelopes in segments once STARTUP is answered: a 6-byte header (17-bit payload
// length, self-contained flag, CRC24 of the first 3 bytes), the payload, a CRC32. A flow
// switches to segments when a message start carries a valid segment header. Compressed
// (LZ4) segments are not read.

type cassandraParser struct {
	framedParser
	seg     [2]bool   // the flow uses v5 segments
	large   [2]uint64 // v5: bytes of an envelope that spans segments still to come
	reqFlow Flow
}

const (
	cqlHeaderSize    = 9
	cqlMaxBody       = 256 << 20
	cqlSegHeaderSize = 6
	cqlSegMaxPayload = 1<<17 - 1

	cqlOpError        = 0x00
	cqlOpStartup      = 0x01
	cqlOpReady        = 0x02
	cqlOpAuthenticate = 0x03
	cqlOpOptions      = 0x05
	cqlOpSupported    = 0x06
	cqlOpQuery        = 0x07
	cqlOpResult       = 0x08
	cqlOpPrepare      = 0x09
	cqlOpExecute      = 0x0A
	cqlOpRegister     = 0x0B
	cqlOpEvent        = 0x0C
	cqlOpBatch        = 0x0D
	cqlOpAuthChal     = 0x0E
	cqlOpAuthResp     = 0x0F
	cqlOpAuthSuccess  = 0x10
)

func (p *cassandraParser) reset() {
	p.framedParser.reset()
	p.seg, p.large = [2]bool{}, [2]uint64{}
}

func (p *cassandraParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	p.reqFlow = c.role.requestFlow()
	hs := cqlHeaderSize
	if p.seg[f] {
		hs = cqlSegHeaderSize
	}
	p.flows[f].feed(c, f, ts, ch, hs, p)
}

// cqlSegmentHeader decodes a v5 uncompressed segment header.
func cqlSegmentHeader(h []byte) (payload uint32, selfContained bool, ok bool) {
	if len(h) < cqlSegHeaderSize {
		return 0, false, false
	}
	v := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
	crc := uint32(h[3]) | uint32(h[4])<<8 | uint32(h[5])<<16
	if crc24(v, 3) != crc {
		return 0, false, false
	}
	return v & cqlSegMaxPayload, v&(1<<17) != 0, true
}

// crc24 is the CRC of v5 segment headers: the low n bytes of v, least significant first,
// polynomial 0x1974F0B, initial value 0x875060.
func crc24(v uint32, n int) uint32 {
	crc := uint32(0x875060)
	for ; n > 0; n-- {
		crc ^= (v & 0xff) << 16
		v >>= 8
		for i := 0; i < 8; i++ {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1974F0B
			}
		}
	}
	return crc & 0xffffff
}

func cqlFrameValid(h []byte, request bool) bool {
	v := h[0]
	if request != (v&0x80 == 0) {
		return false
	}
	v &= 0x7f
	if v < 3 || v > 5 || h[1]&0xe0 != 0 {
		return false
	}
	op := h[4]
	if request {
		switch op {
		case cqlOpStartup, cqlOpOptions, cqlOpQuery, cqlOpPrepare, cqlOpExecute, cqlOpRegister, cqlOpBatch, cqlOpAuthResp:
		default:
			return false
		}
	} else if op > cqlOpAuthSuccess || op == 0x04 || op == 0x01 || op == 0x05 || op == 0x07 || op == 0x09 || op == 0x0A || op == 0x0B || op == 0x0D || op == 0x0F {
		return false
	}
	return binary.BigEndian.Uint32(h[5:]) <= cqlMaxBody
}

func (p *cassandraParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	if !p.seg[f] {
		if cqlFrameValid(hdr, f == p.reqFlow) {
			return cqlHeaderSize + uint64(binary.BigEndian.Uint32(hdr[5:])), true
		}
		// the first segment of a v5 flow
		if n, _, ok := cqlSegmentHeader(hdr); ok {
			p.seg[f] = true
			return cqlSegHeaderSize + uint64(n) + 4, true
		}
		return 0, false
	}
	n, _, ok := cqlSegmentHeader(hdr)
	if !ok {
		return 0, false
	}
	return cqlSegHeaderSize + uint64(n) + 4, true
}

func (p *cassandraParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < cqlHeaderSize {
		return false
	}
	request := f == c.role.requestFlow()
	if p.seg[f] {
		_, _, ok := cqlSegmentHeader(d)
		return ok
	}
	if cqlFrameValid(d, request) {
		return true
	}
	// A v5 flow first seen at a segment: the kernel detects v5 there, its handshake being in
	// v4 framing with version 5. frameLength then switches the flow to segments.
	_, _, ok := cqlSegmentHeader(d)
	return ok && len(d) >= cqlSegHeaderSize+cqlHeaderSize && d[cqlSegHeaderSize]&0x7f == 5 && cqlFrameValid(d[cqlSegHeaderSize:], request)
}

func (p *cassandraParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	if !p.seg[f] {
		p.envelope(c, f, ts, d)
		return
	}
	if len(d) < cqlSegHeaderSize {
		return
	}
	payload, self, _ := cqlSegmentHeader(d)
	body := d[cqlSegHeaderSize:min(len(d), cqlSegHeaderSize+int(payload))]
	if !self {
		// part of an envelope larger than a segment: its header is in the first part
		if p.large[f] == 0 && len(body) >= cqlHeaderSize {
			p.large[f] = cqlHeaderSize + uint64(binary.BigEndian.Uint32(body[5:]))
			p.envelope(c, f, ts, body)
		}
		if p.large[f] <= uint64(payload) {
			p.large[f] = 0
		} else {
			p.large[f] -= uint64(payload)
		}
		return
	}
	for len(body) >= cqlHeaderSize {
		if !cqlFrameValid(body, f == c.role.requestFlow()) {
			p.flows[f].lose(c, true)
			return
		}
		p.envelope(c, f, ts, body)
		l := cqlHeaderSize + int(binary.BigEndian.Uint32(body[5:]))
		if l >= len(body) {
			return
		}
		body = body[l:]
	}
}

func (p *cassandraParser) envelope(c *Conn, f Flow, ts uint64, d []byte) {
	request := f == c.role.requestFlow()
	if len(d) < cqlHeaderSize || !cqlFrameValid(d, request) {
		p.flows[f].lose(c, true)
		return
	}
	stream := uint32(binary.BigEndian.Uint16(d[2:]))
	op := d[4]
	if request {
		if _, lost := p.pending.take(stream); lost {
			c.t.unanswered.Add(1) // a stream id is reused only after its response
		}
		p.pending.push(c, pendingReq{start: ts, id: stream, kind: uint16(op)})
		c.confirm()
		return
	}
	if op == cqlOpEvent {
		return // server push on stream -1
	}
	r, ok := p.pending.take(stream)
	if !ok {
		c.t.unmatched.Add(1)
		return
	}
	switch r.kind {
	case cqlOpQuery, cqlOpPrepare, cqlOpExecute, cqlOpBatch:
	default:
		c.confirm()
		return // not a query
	}
	status := StatusOK
	if op == cqlOpError {
		status = StatusFailed
	}
	c.report(status, MethodNone, r.start, ts)
}
