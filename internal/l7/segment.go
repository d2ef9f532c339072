package l7

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Segment is one ring-buffer record of the kernel side: the bytes one read- or write-family
// syscall moved on a connection whose protocol the kernel detected (CONTRACT.md). Decode
// fills it without allocating; Payload aliases the record.
type Segment struct {
	Timestamp uint64 // CLOCK_MONOTONIC ns when the syscall moved the bytes
	Sock      uint64 // struct sock address: the connection identity the TCP tracer uses
	CgroupID  uint64
	// Offset is the number of bytes the kernel had counted in this flow of this connection
	// before this syscall. Consecutive segments of a flow are contiguous; a jump means bytes
	// the kernel did not forward (ring buffer full, suppressed bulk transfer).
	Offset   uint64
	PID      uint32
	FD       uint32
	Length   uint32 // bytes the syscall moved (its return value)
	Protocol Protocol
	Flags    uint8
	// Payload is what the kernel captured: the first bytes of the syscall's data (raw), or a
	// frame digest (FlagDigest).
	Payload []byte
}

// Segment flags; values mirror L7_SEG_* of the kernel side.
const (
	FlagReceived  uint8 = 1 << 0 // read family; else write family
	FlagServer    uint8 = 1 << 1 // the traced process is the connection's server
	FlagDigest    uint8 = 1 << 2 // Payload is a sequence of digest entries
	FlagNew       uint8 = 1 << 3 // the first segment since the kernel detected the protocol
	FlagUDP       uint8 = 1 << 4 // a datagram socket: each segment is one whole message
	FlagTruncated uint8 = 1 << 5 // the digest lost entries (frames of this syscall not described)
	// FlagClosed marks a record without payload that says the TCP connection closed: sent by
	// the kernel in order with the connection's segments, so none of them comes after it.
	FlagClosed uint8 = 1 << 6
)

// SegmentHeaderSize is the fixed part of a record; the payload follows.
const SegmentHeaderSize = 48

// DigestEntryHeaderSize is the fixed part of one digest entry; its captured bytes follow.
const DigestEntryHeaderSize = 16

// DigestContinuation marks a digest entry that continues a frame begun in an earlier
// entry: its data are the frame's bytes from Offset on.
const DigestContinuation uint16 = 1

// Errors of Decode and of reading digests.
var (
	ErrShortSegment = errors.New("l7: short segment record")
	ErrBadDigest    = errors.New("l7: malformed frame digest")
)

// Decode fills s from one ring-buffer record (little-endian, CONTRACT.md).
func (s *Segment) Decode(b []byte) error {
	if len(b) < SegmentHeaderSize {
		return ErrShortSegment
	}
	le := binary.LittleEndian
	captured := int(le.Uint16(b[44:]))
	if len(b) < SegmentHeaderSize+captured {
		return ErrShortSegment
	}
	p := Protocol(b[46])
	if !p.Valid() {
		return fmt.Errorf("l7: segment with protocol %d", b[46])
	}
	s.Timestamp = le.Uint64(b[0:])
	s.Sock = le.Uint64(b[8:])
	s.CgroupID = le.Uint64(b[16:])
	s.Offset = le.Uint64(b[24:])
	s.PID = le.Uint32(b[32:])
	s.FD = le.Uint32(b[36:])
	s.Length = le.Uint32(b[40:])
	s.Protocol = p
	s.Flags = b[47]
	s.Payload = b[SegmentHeaderSize : SegmentHeaderSize+captured]
	if s.Flags&FlagDigest == 0 && captured > int(s.Length) {
		return fmt.Errorf("l7: segment captured %d of %d bytes", captured, s.Length)
	}
	return nil
}

// Encode appends the record layout of s to dst: the kernel side's output, for tests and
// tools.
func (s *Segment) Encode(dst []byte) []byte {
	var h [SegmentHeaderSize]byte
	le := binary.LittleEndian
	le.PutUint64(h[0:], s.Timestamp)
	le.PutUint64(h[8:], s.Sock)
	le.PutUint64(h[16:], s.CgroupID)
	le.PutUint64(h[24:], s.Offset)
	le.PutUint32(h[32:], s.PID)
	le.PutUint32(h[36:], s.FD)
	le.PutUint32(h[40:], s.Length)
	le.PutUint16(h[44:], uint16(len(s.Payload)))
	h[46] = byte(s.Protocol)
	h[47] = s.Flags
	return append(append(dst, h[:]...), s.Payload...)
}

// Flow returns the direction of the segment's bytes.
func (s *Segment) Flow() Flow {
	if s.Flags&FlagReceived != 0 {
		return Received
	}
	return Sent
}

// Role returns the traced process's side of the connection.
func (s *Segment) Role() Role {
	if s.Flags&FlagServer != 0 {
		return RoleServer
	}
	return RoleClient
}

// chunk is a run of captured bytes at a stream offset: the unit the parsers read. A raw
// segment is one chunk; a digest is one chunk per entry.
type chunk struct {
	offset uint64 // stream offset of data[0]
	end    uint64 // the bytes [offset, end) are accounted for by this chunk (end ≥ offset+len(data))
	data   []byte
}

// chunkIter walks the chunks of a segment without allocating.
type chunkIter struct {
	seg  *Segment
	rest []byte
	done bool
	err  error
}

func (s *Segment) chunks() chunkIter { return chunkIter{seg: s, rest: s.Payload} }

func (it *chunkIter) next(c *chunk) bool {
	if it.done {
		return false
	}
	s := it.seg
	if s.Flags&FlagDigest == 0 {
		it.done = true
		*c = chunk{offset: s.Offset, end: s.Offset + uint64(s.Length), data: s.Payload}
		return true
	}
	if len(it.rest) == 0 {
		it.done = true
		return false
	}
	if len(it.rest) < DigestEntryHeaderSize {
		it.done, it.err = true, ErrBadDigest
		return false
	}
	le := binary.LittleEndian
	off := le.Uint64(it.rest[0:])
	length := le.Uint32(it.rest[8:])
	n := int(le.Uint16(it.rest[12:]))
	if len(it.rest) < DigestEntryHeaderSize+n || n > int(length) {
		it.done, it.err = true, ErrBadDigest
		return false
	}
	*c = chunk{offset: off, end: off + uint64(length), data: it.rest[DigestEntryHeaderSize : DigestEntryHeaderSize+n]}
	it.rest = it.rest[DigestEntryHeaderSize+n:]
	return true
}

// AppendDigestEntry appends one digest entry (the kernel side's format) to dst.
func AppendDigestEntry(dst []byte, offset uint64, length uint32, flags uint16, data []byte) []byte {
	var h [DigestEntryHeaderSize]byte
	le := binary.LittleEndian
	le.PutUint64(h[0:], offset)
	le.PutUint32(h[8:], length)
	le.PutUint16(h[12:], uint16(len(data)))
	le.PutUint16(h[14:], flags)
	return append(append(dst, h[:]...), data...)
}

// SuppressAfter is how many consecutive segments of one direction the kernel forwards,
// with no segment of the other direction between them, before it stops forwarding that
// direction until the other one moves (CONTRACT.md, section 4). Raw request/response
// protocols only.
const SuppressAfter = 4

// SuppressBytes is the other condition of suppression: the direction also moved this many
// bytes since the other one last moved, so pipelined small messages are never suppressed.
const SuppressBytes = 16 << 10

// CaptureSize is how many bytes of each syscall's data the kernel captures for a protocol
// delivered raw (CONTRACT.md explains each size). For digested protocols it is the bytes
// captured per frame of the types the parser reads.
func CaptureSize(p Protocol) int {
	switch p {
	case ProtocolHTTP, ProtocolRedis, ProtocolMemcached, ProtocolNATS:
		return 1024
	case ProtocolHTTP2:
		return 2048 // per HEADERS, CONTINUATION or PUSH_PROMISE frame
	case ProtocolPostgres, ProtocolMySQL, ProtocolMongo, ProtocolKafka:
		return 512
	case ProtocolDNS:
		return 512
	case ProtocolClickHouse:
		return 256
	case ProtocolCassandra, ProtocolZooKeeper:
		return 128
	case ProtocolRabbitMQ:
		return 512
	}
	return 0
}
