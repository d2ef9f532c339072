package l7

// HTTP2Digester is the reference of the kernel side's HTTP/2 frame digest (CONTRACT.md,
// "HTTP/2 frame digests"): fed the bytes of each syscall of one flow in order, it returns
// the digest payload the kernel puts in that syscall's segment. The kernel walks the frame
// headers in the syscall's buffer and describes every frame that starts there with one
// entry: the frame's 9-byte header, plus its payload for the frames whose payload the
// parser reads (HEADERS, CONTINUATION and PUSH_PROMISE up to DigestBlockCapture bytes,
// RST_STREAM's error code). A frame's payload that continues in the next syscall is
// described there by a continuation entry; a frame header cut by the end of a syscall is
// carried (at most 8 bytes of state) and described in the next. The client's connection
// preface is described as a 24-byte entry.
//
// It is not used on the hot path: tests feed its output to the parser, and it is what a BPF
// implementation is compared with.
type HTTP2Digester struct {
	offset uint64 // stream offset of the next syscall's first byte
	next   uint64 // stream offset of the next frame header
	synced bool

	hdr    [h2FrameHeaderSize]byte // a frame header cut by a syscall's end
	hdrLen int

	// the payload of a frame of interest that continues in the next syscall
	contLeft    uint32 // payload bytes of that frame still to come
	contCapture int    // how many of them to capture
}

// DigestBlockCapture bounds the captured payload of one header-block frame.
const DigestBlockCapture = 2048

// DigestMaxFrames bounds the frames described per syscall (the BPF loop bound); the
// segment of a syscall with more frames gets FlagTruncated and the flow loses its frame
// boundaries until a syscall starts with a plausible frame header.
const DigestMaxFrames = 32

// NewHTTP2Digester returns the digester of a flow; client is true for the flow that starts
// with the connection preface.
func NewHTTP2Digester(client bool) *HTTP2Digester {
	d := &HTTP2Digester{synced: true}
	if !client {
		return d
	}
	d.next = uint64(len(h2Preface)) // the preface is described as its own entry
	return d
}

func h2Captured(typ byte) bool {
	return typ == h2Headers || typ == h2Continuation || typ == h2PushPromise || typ == h2RSTStream
}

// Digest appends the digest of one syscall's bytes to dst. truncated reports that frames
// were left undescribed (FlagTruncated).
func (d *HTTP2Digester) Digest(dst, data []byte) (out []byte, truncated bool) {
	start := d.offset
	end := start + uint64(len(data))
	d.offset = end
	if start == 0 && d.next == uint64(len(h2Preface)) {
		// The preface, or the part of it the first syscall moved (a server may read its first
		// line alone): one entry at offset 0.
		if n := min(len(data), len(h2Preface)); n > 0 && string(data[:n]) == h2Preface[:n] {
			dst = AppendDigestEntry(dst, 0, uint32(n), 0, data[:n])
		}
	}
	if !d.synced {
		if !h2FrameHeaderPlausible(data) {
			return dst, false
		}
		d.synced, d.next, d.hdrLen, d.contLeft = true, start, 0, 0
	}
	if d.contLeft > 0 {
		n := int(min(uint64(d.contLeft), uint64(len(data))))
		c := min(n, d.contCapture)
		dst = AppendDigestEntry(dst, start, d.contLeft, DigestContinuation, data[:c])
		d.contLeft -= uint32(n)
		d.contCapture -= c
	}
	if d.hdrLen > 0 {
		k := copy(d.hdr[d.hdrLen:], data)
		if d.hdrLen+k < h2FrameHeaderSize {
			d.hdrLen += k
			return dst, false
		}
		frameStart := start - uint64(d.hdrLen)
		var h [h2FrameHeaderSize]byte
		copy(h[:], d.hdr[:])
		d.hdrLen = 0
		dst = d.frame(dst, h[:], frameStart, data[k:], end)
	}
	for frames := 0; d.next < end; frames++ {
		if frames == DigestMaxFrames {
			d.synced = false
			return dst, true
		}
		i := int(d.next - start)
		if len(data)-i < h2FrameHeaderSize {
			d.hdrLen = copy(d.hdr[:], data[i:])
			d.next = end
			return dst, false
		}
		dst = d.frame(dst, data[i:i+h2FrameHeaderSize], d.next, data[i+h2FrameHeaderSize:], end)
	}
	return dst, false
}

// frame describes the frame with header h starting at stream offset at; payload is what
// this syscall has of it.
func (d *HTTP2Digester) frame(dst, h []byte, at uint64, payload []byte, end uint64) []byte {
	length := uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
	typ := h[3]
	d.next = at + h2FrameHeaderSize + uint64(length)
	capture := 0
	switch typ {
	case h2Headers, h2Continuation, h2PushPromise:
		capture = DigestBlockCapture
	case h2RSTStream:
		capture = 4
	}
	have := int(min(uint64(length), uint64(len(payload))))
	c := min(have, capture)
	entry := make([]byte, 0, h2FrameHeaderSize+c)
	entry = append(append(entry, h...), payload[:c]...)
	dst = AppendDigestEntry(dst, at, h2FrameHeaderSize+length, 0, entry)
	if d.next > end && h2Captured(typ) {
		d.contLeft = uint32(d.next - end)
		d.contCapture = max(0, min(capture-c, int(d.contLeft)))
	}
	return dst
}

// digestSegmentsHTTP2 rewrites the raw segments of an HTTP/2 connection as the kernel's
// digests; a helper of tests and tools.
func digestSegmentsHTTP2(segs []Segment, role Role) []Segment {
	dg := [2]*HTTP2Digester{NewHTTP2Digester(role == RoleClient), NewHTTP2Digester(role == RoleServer)}
	out := make([]Segment, 0, len(segs))
	for _, s := range segs {
		if uint32(len(s.Payload)) != s.Length {
			panic("digestSegmentsHTTP2 needs fully captured segments")
		}
		payload, truncated := dg[s.Flow()].Digest(nil, s.Payload)
		s.Payload = payload
		s.Flags |= FlagDigest
		if truncated {
			s.Flags |= FlagTruncated
		}
		out = append(out, s)
	}
	return out
}
