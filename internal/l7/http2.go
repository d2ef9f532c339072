package l7

import (
	"encoding/binary"

	"github.com/codexray/codexray-node-agent/internal/l7/hpack"
)

// HTTP/2 (RFC 9113) and gRPC over it (gRPC's PROTOCOL-HTTP2.md). Frames are a 9-byte
// header (length uint24, type, flags, stream id) and a payload. A request is the HEADERS of
// a client-initiated stream; its response's HEADERS carry :status. A plain HTTP/2 request
// completes at the response's first HEADERS with :status (1xx excepted) and takes it as its
// status. A gRPC request (content-type application/grpc...) completes at the grpc-status of
// the trailers (or of a trailers-only response) with status "grpc:<code>"; a RST_STREAM
// ends it with the code gRPC maps the HTTP/2 error to.
//
// Header blocks are HPACK-coded with a dynamic table per direction, so every HEADERS,
// CONTINUATION and PUSH_PROMISE of a connection must be decoded in order, reported or not.
// A block that cannot be read whole (bytes missing, longer than the capture) makes the
// table unknown: the decoder is reset (Stats.HPACKResets) and blocks that refer to entries
// from before the reset fail to decode and are skipped until the table is rebuilt by the
// peer's later insertions (which land at the lowest dynamic indices, where a fresh table
// finds them).

const (
	h2FrameHeaderSize = 9
	h2Preface         = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	h2MaxBlock        = 64 << 10 // header block assembly bound
	h2MaxStreams      = 128

	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2PushPromise  = 0x5
	h2Continuation = 0x9
	h2MaxType      = 0x9

	h2FlagEndStream  = 0x1
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20
)

type http2Stream struct {
	id         uint32
	start      uint64
	grpc       bool
	httpStatus uint16 // the response's :status, when its headers came before the trailers
}

type http2Flow struct {
	synced bool
	next   uint64 // stream offset of the next frame header

	// a frame header cut by a chunk's end
	hdr    [h2FrameHeaderSize]byte
	hdrLen int

	// a frame whose payload is being assembled from several chunks
	assembling bool
	frame      [h2FrameHeaderSize]byte
	payload    []byte
	want       int    // payload bytes still missing
	frameTs    uint64 // arrival of the frame's first byte

	// a header block being assembled from HEADERS/PUSH_PROMISE and CONTINUATION frames
	inBlock     bool
	block       []byte
	blockStream uint32
	blockFlags  uint8 // the HEADERS frame's flags (END_STREAM)
	blockPush   bool
	blockTs     uint64
	blockBroken bool // a fragment was missed: decode nothing, reset the table at the end

	dec hpack.Decoder
}

type http2Parser struct {
	flows   [2]http2Flow
	streams [h2MaxStreams]http2Stream
	n       int

	// fields of the block being decoded
	status     uint16
	grpcStatus int16
	grpcType   bool
}

func (p *http2Parser) reset() {
	for i := range p.flows {
		fl := &p.flows[i]
		fl.synced, fl.next, fl.hdrLen, fl.assembling, fl.inBlock = false, 0, 0, false, false
		fl.dec.Init(hpack.DefaultTableSize, hpack.MaxTableSizeLimit)
	}
	p.n = 0
}

func (p *http2Parser) expire(c *Conn, deadline uint64) {
	kept := 0
	for i := 0; i < p.n; i++ {
		if p.streams[i].start < deadline {
			c.t.unanswered.Add(1)
			continue
		}
		p.streams[kept] = p.streams[i]
		kept++
	}
	p.n = kept
}

func (p *http2Parser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	fl := &p.flows[f]
	d := ch.data
	pos := ch.offset // the stream offset of d[i]
	i := 0

	if ch.offset == 0 && f == c.role.requestFlow() && !fl.synced {
		// the client connection preface, possibly cut by the end of a fully captured chunk
		n := min(len(d), len(h2Preface))
		full := n == len(h2Preface) || uint64(n) == ch.end
		if !full || string(d[:n]) != h2Preface[:n] {
			if c.reject() {
				return
			}
		} else {
			fl.synced, fl.next = true, uint64(len(h2Preface))
		}
	} else if ch.offset == 0 && !fl.synced {
		fl.synced, fl.next = true, 0 // the server's first frame (SETTINGS)
	}

	if fl.synced && fl.assembling {
		if ch.offset != fl.next-uint64(fl.want) {
			// the rest of the frame is missing
			c.t.gaps.Add(1)
			fl.assembling = false
			p.blockMissing(c, f)
		} else {
			n := min(fl.want, len(d))
			fl.payload = append(fl.payload, d[:n]...)
			fl.want -= n
			i = n
			if fl.want > 0 {
				if uint64(len(d)) < ch.end-ch.offset {
					fl.assembling = false
					p.blockMissing(c, f) // the rest is beyond the capture
				}
				p.finish(c, f, ch)
				return
			}
			fl.assembling = false
			p.frameDone(c, f, fl.frameTs, fl.frame[:], fl.payload)
		}
	}
	if fl.synced && fl.hdrLen > 0 {
		if ch.offset != fl.next+uint64(fl.hdrLen) {
			c.t.gaps.Add(1)
			fl.hdrLen = 0
			p.lose(c, f)
		} else {
			n := copy(fl.hdr[fl.hdrLen:], d)
			if fl.hdrLen+n < h2FrameHeaderSize {
				fl.hdrLen += n
				p.finish(c, f, ch)
				return
			}
			var h [h2FrameHeaderSize]byte
			copy(h[:], fl.hdr[:])
			fl.hdrLen = 0
			i = n
			// the frame's payload starts at d[n:]
			p.frame(c, f, ts, ch, h[:], fl.next, n)
			if !fl.synced {
				return
			}
		}
	}
	if fl.synced {
		switch {
		case fl.next < ch.offset:
			c.t.gaps.Add(1)
			p.lose(c, f)
		case fl.next >= ch.end:
			return // inside a frame's payload
		default:
			i = int(fl.next - pos)
			if i > len(d) {
				p.lose(c, f) // the next frame starts beyond the capture
				return
			}
		}
	}
	if !fl.synced {
		if !h2FrameHeaderPlausible(d) {
			return
		}
		fl.synced, fl.next, i = true, ch.offset, 0
	}
	for fl.synced && !fl.assembling && i < len(d) {
		if len(d)-i < h2FrameHeaderSize {
			if uint64(len(d)) == ch.end-ch.offset {
				fl.hdrLen = copy(fl.hdr[:], d[i:])
				fl.next = pos + uint64(i)
				return
			}
			p.lose(c, f)
			return
		}
		var h [h2FrameHeaderSize]byte
		copy(h[:], d[i:i+h2FrameHeaderSize])
		start := pos + uint64(i)
		p.frame(c, f, ts, ch, h[:], start, i+h2FrameHeaderSize)
		if !fl.synced || fl.assembling || fl.next >= ch.end {
			break
		}
		i = int(fl.next - pos)
	}
	p.finish(c, f, ch)
}

// finish checks the chunk's uncaptured bytes: a frame starting there is unseen.
func (p *http2Parser) finish(c *Conn, f Flow, ch *chunk) {
	fl := &p.flows[f]
	capEnd := ch.offset + uint64(len(ch.data))
	if !fl.synced || fl.assembling || fl.hdrLen > 0 || capEnd == ch.end {
		return
	}
	if fl.next < ch.end {
		p.lose(c, f)
	}
}

// frame handles the frame with header h starting at stream offset start; its payload
// starts at ch.data[payloadAt].
func (p *http2Parser) frame(c *Conn, f Flow, ts uint64, ch *chunk, h []byte, start uint64, payloadAt int) {
	fl := &p.flows[f]
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ := h[3]
	if h[5]&0x80 != 0 { // the reserved bit of the stream id
		p.lose(c, f)
		return
	}
	fl.next = start + h2FrameHeaderSize + uint64(length)
	needPayload := typ == h2Headers || typ == h2Continuation || typ == h2PushPromise || typ == h2RSTStream
	if !needPayload {
		p.frameDone(c, f, ts, h, nil)
		return
	}
	d := ch.data
	avail := len(d) - payloadAt
	if avail >= length {
		p.frameDone(c, f, ts, h, d[payloadAt:payloadAt+length])
		return
	}
	if length > h2MaxBlock {
		p.frameMissing(c, f, h) // longer than we assemble: the block is lost
		return
	}
	// The payload continues in the next chunk: the next raw segment, or the digest's
	// continuation entry. If the capture cut it instead, the next chunk does not start
	// where the payload continues, and the block is lost then.
	fl.assembling = true
	copy(fl.frame[:], h)
	fl.payload = append(fl.payload[:0], d[payloadAt:]...)
	fl.want = length - avail
	fl.frameTs = ts
}

// frameMissing handles a frame of interest whose payload cannot be read.
func (p *http2Parser) frameMissing(c *Conn, f Flow, h []byte) {
	switch h[3] {
	case h2Headers, h2PushPromise, h2Continuation:
		fl := &p.flows[f]
		if !fl.inBlock {
			fl.inBlock = true
			fl.blockStream = binary.BigEndian.Uint32(h[5:]) & 0x7fffffff
			fl.blockFlags = h[4]
		}
		fl.blockBroken = true
		if h[4]&h2FlagEndHeaders != 0 {
			p.blockMissing(c, f)
		}
	}
}

// blockMissing ends a header block that could not be read: the table is unknown.
func (p *http2Parser) blockMissing(c *Conn, f Flow) {
	fl := &p.flows[f]
	fl.inBlock, fl.blockBroken = false, false
	fl.dec.Reset()
	c.t.hpackResets.Add(1)
}

func (p *http2Parser) lose(c *Conn, f Flow) {
	fl := &p.flows[f]
	if fl.synced {
		c.t.lostSync.Add(1)
	}
	fl.synced, fl.hdrLen, fl.assembling = false, 0, false
	// frames were missed, any of them may have been a header block
	fl.inBlock = false
	fl.dec.Reset()
	c.t.hpackResets.Add(1)
}

// h2FrameHeaderPlausible checks a frame header where a chunk starts after the boundaries
// were lost: a known type, a length within the default maximum, the reserved bit clear.
func h2FrameHeaderPlausible(d []byte) bool {
	if len(d) < h2FrameHeaderSize {
		return false
	}
	length := int(d[0])<<16 | int(d[1])<<8 | int(d[2])
	return d[3] <= h2MaxType && length <= 1<<14 && d[5]&0x80 == 0
}

// frameDone handles a frame whose payload (when needed) is complete.
func (p *http2Parser) frameDone(c *Conn, f Flow, ts uint64, h, payload []byte) {
	fl := &p.flows[f]
	typ, flags := h[3], h[4]
	stream := binary.BigEndian.Uint32(h[5:]) & 0x7fffffff
	if fl.inBlock && typ != h2Continuation {
		// RFC 9113 6.10: nothing may interleave a header block; the block was cut short
		p.blockMissing(c, f)
	}
	switch typ {
	case h2Headers, h2PushPromise:
		frag, ok := h2Fragment(typ, flags, payload)
		fl.inBlock, fl.blockStream, fl.blockFlags, fl.blockPush, fl.blockTs = true, stream, flags, typ == h2PushPromise, ts
		fl.blockBroken = !ok
		fl.block = append(fl.block[:0], frag...)
		if flags&h2FlagEndHeaders != 0 {
			p.blockDone(c, f)
		}
	case h2Continuation:
		if !fl.inBlock || stream != fl.blockStream {
			p.blockMissing(c, f) // its HEADERS was missed
			return
		}
		if len(fl.block)+len(payload) > h2MaxBlock {
			fl.blockBroken = true
		} else {
			fl.block = append(fl.block, payload...)
		}
		if flags&h2FlagEndHeaders != 0 {
			p.blockDone(c, f)
		}
	case h2Data:
		if flags&h2FlagEndStream != 0 && f != c.role.requestFlow() {
			if s := p.find(stream); s >= 0 && p.streams[s].grpc && p.streams[s].httpStatus != 0 {
				// a gRPC response that ended without trailers: the HTTP status is all there is
				st := p.streams[s]
				p.remove(s)
				c.report(HTTPStatus(int(st.httpStatus)), MethodNone, st.start, ts)
			}
		}
	case h2RSTStream:
		if len(payload) < 4 {
			return
		}
		s := p.find(stream)
		if s < 0 {
			return
		}
		st := p.streams[s]
		p.remove(s)
		if !st.grpc {
			c.t.unanswered.Add(1)
			return
		}
		c.report(GRPCStatus(grpcCodeOfRST(binary.BigEndian.Uint32(payload))), MethodNone, st.start, ts)
	}
}

// h2Fragment strips padding and priority fields from a HEADERS or PUSH_PROMISE payload.
func h2Fragment(typ, flags uint8, b []byte) ([]byte, bool) {
	pad := 0
	if flags&h2FlagPadded != 0 {
		if len(b) < 1 {
			return nil, false
		}
		pad = int(b[0])
		b = b[1:]
	}
	if typ == h2PushPromise {
		if len(b) < 4 {
			return nil, false
		}
		b = b[4:]
	} else if flags&h2FlagPriority != 0 {
		if len(b) < 5 {
			return nil, false
		}
		b = b[5:]
	}
	if pad > len(b) {
		return nil, false
	}
	return b[:len(b)-pad], true
}

// blockDone decodes a complete header block and applies it to its stream.
func (p *http2Parser) blockDone(c *Conn, f Flow) {
	fl := &p.flows[f]
	fl.inBlock = false
	if fl.blockBroken {
		fl.blockBroken = false
		fl.dec.Reset()
		c.t.hpackResets.Add(1)
		return
	}
	p.status, p.grpcStatus, p.grpcType = 0, -1, false
	if err := fl.dec.Decode(fl.block, p.header); err != nil {
		fl.dec.Reset()
		c.t.hpackResets.Add(1)
		return
	}
	if fl.blockPush {
		return
	}
	stream := fl.blockStream
	if f == c.role.requestFlow() {
		if p.find(stream) >= 0 || stream&1 == 0 {
			return // trailers of a request, or not a client-initiated stream
		}
		p.add(c, http2Stream{id: stream, start: fl.blockTs, grpc: p.grpcType})
		c.confirm()
		return
	}
	s := p.find(stream)
	if s < 0 {
		c.t.unmatched.Add(1)
		return
	}
	st := &p.streams[s]
	st.grpc = st.grpc || p.grpcType
	if p.grpcStatus >= 0 {
		done := *st
		p.remove(s)
		c.report(GRPCStatus(uint8(p.grpcStatus)), MethodNone, done.start, fl.blockTs)
		return
	}
	if p.status == 0 || (p.status >= 100 && p.status < 200) {
		return // trailers without grpc-status, or an interim response
	}
	if st.grpc && fl.blockFlags&h2FlagEndStream == 0 {
		st.httpStatus = p.status // wait for the trailers
		return
	}
	done := *st
	p.remove(s)
	c.report(HTTPStatus(int(p.status)), MethodNone, done.start, fl.blockTs)
}

// header is the hpack callback: it notes the fields that decide a status.
func (p *http2Parser) header(name, value []byte) {
	switch string(name) {
	case ":status":
		if len(value) == 3 {
			v := uint16(0)
			for _, b := range value {
				if b < '0' || b > '9' {
					return
				}
				v = v*10 + uint16(b-'0')
			}
			p.status = v
		}
	case "grpc-status":
		if n, ok := parseUint(value); ok && n < 256 {
			p.grpcStatus = int16(n)
		}
	case "content-type":
		p.grpcType = len(value) >= 16 && string(value[:16]) == "application/grpc"
	}
}

func (p *http2Parser) find(id uint32) int {
	for i := 0; i < p.n; i++ {
		if p.streams[i].id == id {
			return i
		}
	}
	return -1
}

func (p *http2Parser) add(c *Conn, s http2Stream) {
	if p.n == h2MaxStreams {
		// drop the oldest
		oldest := 0
		for i := 1; i < p.n; i++ {
			if p.streams[i].start < p.streams[oldest].start {
				oldest = i
			}
		}
		p.remove(oldest)
		c.t.unanswered.Add(1)
	}
	p.streams[p.n] = s
	p.n++
}

func (p *http2Parser) remove(i int) {
	p.n--
	p.streams[i] = p.streams[p.n]
}

// grpcCodeOfRST maps an HTTP/2 error code to a gRPC status code (gRPC's
// PROTOCOL-HTTP2.md, "Errors").
func grpcCodeOfRST(code uint32) uint8 {
	switch code {
	case 0x7: // REFUSED_STREAM
		return 14 // Unavailable
	case 0x8: // CANCEL
		return 1 // Canceled
	case 0xb: // ENHANCE_YOUR_CALM
		return 8 // ResourceExhausted
	case 0xc: // INADEQUATE_SECURITY
		return 7 // PermissionDenied
	}
	return 13 // Internal
}
