package l7

import (
	"bytes"
	"encoding/binary"
	"math"
)

// MongoDB wire protocol (https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/):
// a 16-byte header (messageLength, requestID, responseTo, opCode, all int32 little-endian)
// then the body. Requests are OP_MSG (or OP_QUERY for the legacy hello); a reply's
// responseTo is its request's requestID. A reply failed when its body document has ok: 0,
// $err or writeErrors, or OP_REPLY's QueryFailure flag is set. The fields are read from the
// captured bytes: a successful reply whose ok comes after a large first field counts as ok.

type mongoParser struct {
	framedParser
}

const (
	mongoHeaderSize   = 16
	mongoMaxSize      = 48 << 20
	mongoOpReply      = 1
	mongoOpQuery      = 2004
	mongoOpCompressed = 2012
	mongoOpMsg        = 2013
	mongoMoreToCome   = 1 << 1
	mongoQueryFailure = 1 << 1
)

func (p *mongoParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	p.flows[f].feed(c, f, ts, ch, mongoHeaderSize, p)
}

func (p *mongoParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	n := binary.LittleEndian.Uint32(hdr)
	op := binary.LittleEndian.Uint32(hdr[12:])
	if n < mongoHeaderSize || n > mongoMaxSize {
		return 0, false
	}
	switch op {
	case mongoOpReply, mongoOpQuery, mongoOpCompressed, mongoOpMsg:
		return uint64(n), true
	}
	return 0, false
}

func (p *mongoParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < mongoHeaderSize {
		return false
	}
	if _, ok := p.frameLength(f, d); !ok {
		return false
	}
	responseTo := binary.LittleEndian.Uint32(d[8:])
	if f == c.role.requestFlow() {
		return responseTo == 0
	}
	return p.pending.has(responseTo)
}

func (p *mongoParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	if len(d) < mongoHeaderSize {
		return
	}
	le := binary.LittleEndian
	requestID := le.Uint32(d[4:])
	responseTo := le.Uint32(d[8:])
	op := le.Uint32(d[12:])
	if f == c.role.requestFlow() {
		if responseTo != 0 || op == mongoOpReply {
			p.flows[f].lose(c, true)
			return
		}
		if op == mongoOpMsg && len(d) >= 20 && le.Uint32(d[16:])&mongoMoreToCome != 0 {
			c.confirm()
			c.t.unsupported.Add(1) // an unacknowledged write: no reply comes
			return
		}
		p.pending.push(c, pendingReq{start: ts, id: requestID})
		c.confirm()
		return
	}
	r, ok := p.pending.take(responseTo)
	if !ok {
		c.t.unmatched.Add(1) // exhaust cursors' further replies among them
		return
	}
	c.report(mongoReplyStatus(d, op), MethodNone, r.start, ts)
}

func mongoReplyStatus(d []byte, op uint32) Status {
	le := binary.LittleEndian
	switch op {
	case mongoOpMsg:
		// flagBits, then sections; the body (kind 0) comes first in replies
		if len(d) < 21 || d[20] != 0 {
			return StatusOK
		}
		return bsonStatus(d[21:])
	case mongoOpReply:
		if len(d) < 36 {
			return StatusOK
		}
		if le.Uint32(d[16:])&mongoQueryFailure != 0 {
			return StatusFailed
		}
		return bsonStatus(d[36:])
	case mongoOpCompressed:
		return StatusUnknown // the body is compressed
	}
	return StatusOK
}

// bsonStatus scans the top-level fields of a (possibly truncated) BSON document for the
// fields that say a command failed.
func bsonStatus(doc []byte) Status {
	if len(doc) < 5 {
		return StatusOK
	}
	i := 4 // document size
	for k := 0; k < 64 && i < len(doc); k++ {
		t := doc[i]
		if t == 0 {
			break
		}
		i++
		end := bytes.IndexByte(doc[i:], 0)
		if end < 0 {
			break
		}
		name := doc[i : i+end]
		i += end + 1
		switch string(name) {
		case "ok":
			if v, ok := bsonNumber(doc[i:], t); ok && v == 0 {
				return StatusFailed
			}
			return StatusOK
		case "$err", "writeErrors", "writeConcernError":
			return StatusFailed
		}
		n, ok := bsonValueSize(doc[i:], t)
		if !ok {
			break
		}
		i += n
	}
	return StatusOK
}

func bsonNumber(b []byte, t byte) (float64, bool) {
	le := binary.LittleEndian
	switch t {
	case 0x01:
		if len(b) >= 8 {
			return math.Float64frombits(le.Uint64(b)), true
		}
	case 0x10:
		if len(b) >= 4 {
			return float64(int32(le.Uint32(b))), true
		}
	case 0x12:
		if len(b) >= 8 {
			return float64(int64(le.Uint64(b))), true
		}
	case 0x08:
		if len(b) >= 1 {
			return float64(b[0]), true
		}
	}
	return 0, false
}

// bsonValueSize returns the encoded size of a value of BSON type t at the start of b.
func bsonValueSize(b []byte, t byte) (int, bool) {
	le := binary.LittleEndian
	i32 := func(off int) (int, bool) {
		if len(b) < off+4 {
			return 0, false
		}
		v := int32(le.Uint32(b[off:]))
		return int(v), v >= 0
	}
	switch t {
	case 0x01, 0x09, 0x11, 0x12: // double, datetime, timestamp, int64
		return 8, true
	case 0x02, 0x0D, 0x0E: // string, JavaScript, symbol
		n, ok := i32(0)
		return 4 + n, ok
	case 0x03, 0x04, 0x0F: // document, array, code with scope: the size includes itself
		return i32(0)
	case 0x05: // binary
		n, ok := i32(0)
		return 5 + n, ok
	case 0x06, 0x0A, 0xFF, 0x7F: // undefined, null, min key, max key
		return 0, true
	case 0x07: // ObjectId
		return 12, true
	case 0x08: // bool
		return 1, true
	case 0x0B: // regex: two cstrings
		a := bytes.IndexByte(b, 0)
		if a < 0 {
			return 0, false
		}
		c := bytes.IndexByte(b[a+1:], 0)
		if c < 0 {
			return 0, false
		}
		return a + c + 2, true
	case 0x0C: // DBPointer
		n, ok := i32(0)
		return 4 + n + 12, ok
	case 0x10: // int32
		return 4, true
	case 0x13: // decimal128
		return 16, true
	}
	return 0, false
}
