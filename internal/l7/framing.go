package l7

// Message boundaries and pending requests, shared by the protocol parsers.
//
// A flow is a byte stream; the parsers see it as chunks of captured bytes at stream offsets
// (chunk). Between the captured bytes there may be bytes nobody saw: the rest of a syscall
// beyond the capture size, or whole syscalls the kernel did not forward. A parser stays
// "synced" while it knows where the next message starts; it loses sync when that start lies
// in unseen bytes, and re-syncs at the start of a later chunk that looks like a message.

// framer is implemented by the parsers of length-prefixed protocols.
type framer interface {
	// frameLength returns the wire length of the message whose header starts hdr
	// (len(hdr) ≥ the header size), or false when hdr is not a plausible header.
	frameLength(f Flow, hdr []byte) (uint64, bool)
	// message handles one message: data are its captured bytes from its start, possibly
	// fewer than its wire length n. ts is when its first byte arrived.
	message(c *Conn, f Flow, ts uint64, data []byte, n uint64)
	// resyncAt reports whether a message plausibly starts at data, the first captured bytes
	// of a chunk, after the flow lost its boundaries.
	resyncAt(c *Conn, f Flow, data []byte) bool
}

// assembleMax bounds how much of a message that continues in the next chunk is gathered
// before it is parsed: the parsers read only the first bytes of a message.
const assembleMax = 512

// framing tracks the message boundaries of one flow of a length-prefixed protocol.
type framing struct {
	synced bool
	next   uint64 // when synced and not assembling: stream offset of the next message's first byte
	// A message cut by the end of a fully captured chunk is gathered here from the next
	// chunk(s) until its first assembleMax bytes (or all of it) are known.
	assembling bool
	asm        []byte
	asmStart   uint64 // stream offset of asm[0]
	asmLen     uint64 // the message's wire length; 0 while its header is incomplete
	asmTs      uint64
}

func (fr *framing) reset() {
	fr.synced, fr.next, fr.assembling = false, 0, false
}

// lose marks the boundaries as unknown. A connection not yet confirmed is a false positive
// when its own bytes do not parse (bad), not when they are merely missing.
func (fr *framing) lose(c *Conn, bad bool) {
	fr.synced, fr.assembling = false, false
	if bad && c.reject() {
		return
	}
	c.t.lostSync.Add(1)
}

// feed walks the messages that start in ch. hsize is the protocol's header size.
func (fr *framing) feed(c *Conn, f Flow, ts uint64, ch *chunk, hsize int, p framer) {
	d := ch.data
	i := 0
	if fr.synced && fr.assembling {
		var ok bool
		if i, ok = fr.assemble(c, f, ch, hsize, p); !ok {
			return
		}
	}
	switch {
	case !fr.synced:
	case fr.next < ch.offset:
		c.t.gaps.Add(1)
		fr.lose(c, false)
	case fr.next >= ch.end:
		return // inside a message body
	default:
		i = int(fr.next - ch.offset)
		if i > len(d) {
			fr.lose(c, false) // the next message starts in bytes beyond the capture
			return
		}
	}
	if !fr.synced {
		if ch.offset != 0 && !p.resyncAt(c, f, d) {
			return
		}
		// The first bytes of a flow are a message start by the kernel's detection.
		fr.synced = true
		fr.next = ch.offset
		i = 0
	}
	fr.walk(c, f, ts, ch, i, hsize, p)
}

// walk parses the messages starting at d[i:] of ch.
func (fr *framing) walk(c *Conn, f Flow, ts uint64, ch *chunk, i, hsize int, p framer) {
	d := ch.data
	wholeChunk := ch.offset+uint64(len(d)) == ch.end // nothing beyond the capture
	for i < len(d) {
		if len(d)-i < hsize {
			if wholeChunk {
				fr.startAssembly(ch.offset+uint64(i), d[i:], 0, ts) // the header continues in the next chunk
				return
			}
			fr.lose(c, false)
			return
		}
		n, ok := p.frameLength(f, d[i:])
		if !ok || n < uint64(hsize) {
			fr.lose(c, true)
			return
		}
		avail := uint64(len(d) - i)
		if avail < min(n, assembleMax) && wholeChunk {
			fr.startAssembly(ch.offset+uint64(i), d[i:], n, ts)
			return
		}
		p.message(c, f, ts, d[i:i+int(min(n, avail))], n)
		if c.verdict == verdictRejected || !fr.synced {
			return
		}
		fr.next = ch.offset + uint64(i) + n
		if n > avail {
			return // the message runs past the captured bytes; fr.next says where it ends
		}
		i += int(n)
	}
	if !wholeChunk {
		fr.lose(c, false) // the next message starts in bytes beyond the capture
	}
}

func (fr *framing) startAssembly(start uint64, b []byte, n, ts uint64) {
	fr.assembling = true
	fr.asm = append(fr.asm[:0], b...)
	fr.asmStart, fr.asmLen, fr.asmTs = start, n, ts
	if n > 0 {
		fr.next = start + n
	}
}

// assemble continues a cut message with chunk ch. It returns where the chunk's own
// messages start, and false when the chunk is used up or the flow lost its boundaries.
func (fr *framing) assemble(c *Conn, f Flow, ch *chunk, hsize int, p framer) (int, bool) {
	d := ch.data
	if ch.offset != fr.asmStart+uint64(len(fr.asm)) {
		// the rest was not seen: parse what there is
		c.t.gaps.Add(1)
		if fr.asmLen == 0 {
			fr.lose(c, false)
			return 0, false
		}
		fr.deliver(c, f, p)
		return 0, fr.synced && c.verdict != verdictRejected
	}
	i := 0
	if fr.asmLen == 0 {
		i = min(hsize-len(fr.asm), len(d))
		fr.asm = append(fr.asm, d[:i]...)
		if len(fr.asm) < hsize {
			if ch.offset+uint64(len(d)) != ch.end {
				fr.lose(c, false)
			}
			return 0, false
		}
		n, ok := p.frameLength(f, fr.asm)
		if !ok || n < uint64(hsize) {
			fr.lose(c, true)
			return 0, false
		}
		fr.asmLen, fr.next = n, fr.asmStart+n
	}
	want := int(min(fr.asmLen, assembleMax)) - len(fr.asm)
	if want > 0 {
		k := min(want, len(d)-i)
		fr.asm = append(fr.asm, d[i:i+k]...)
		i += k
		if k < want && ch.offset+uint64(len(d)) == ch.end {
			return 0, false // still more to come in the next chunk
		}
	}
	fr.deliver(c, f, p)
	return i, fr.synced && c.verdict != verdictRejected
}

func (fr *framing) deliver(c *Conn, f Flow, p framer) {
	fr.assembling = false
	p.message(c, f, fr.asmTs, fr.asm, fr.asmLen)
}

// framedParser is the state every length-prefixed protocol's parser has: the boundaries of
// both flows and the requests awaiting a response.
type framedParser struct {
	flows   [2]framing
	pending pendingQueue
}

func (p *framedParser) reset() {
	p.flows[0].reset()
	p.flows[1].reset()
	p.pending.reset()
}

func (p *framedParser) expire(c *Conn, deadline uint64) { p.pending.expire(c, deadline) }

// pendingCap bounds the requests one connection may have in flight; more evict the oldest.
const pendingCap = 64

type pendingReq struct {
	start uint64
	id    uint32 // correlation id, where the protocol has one
	kind  uint16 // protocol-specific: API key, opcode, command class
	aux   uint16
}

// pendingQueue holds one connection's requests awaiting a response, oldest first.
type pendingQueue struct {
	items [pendingCap]pendingReq
	head  int
	n     int
}

func (q *pendingQueue) reset() { q.head, q.n = 0, 0 }

func (q *pendingQueue) len() int { return q.n }

// push appends r; when full the oldest is dropped (counted unanswered).
func (q *pendingQueue) push(c *Conn, r pendingReq) {
	if q.n == pendingCap {
		q.head = (q.head + 1) % pendingCap
		q.n--
		c.t.unanswered.Add(1)
	}
	q.items[(q.head+q.n)%pendingCap] = r
	q.n++
}

// pop removes and returns the oldest request.
func (q *pendingQueue) pop() (pendingReq, bool) {
	if q.n == 0 {
		return pendingReq{}, false
	}
	r := q.items[q.head]
	q.head = (q.head + 1) % pendingCap
	q.n--
	return r, true
}

// peek returns the oldest request without removing it.
func (q *pendingQueue) peek() (*pendingReq, bool) {
	if q.n == 0 {
		return nil, false
	}
	return &q.items[q.head], true
}

// take removes and returns the request with correlation id id.
func (q *pendingQueue) take(id uint32) (pendingReq, bool) {
	for i := 0; i < q.n; i++ {
		k := (q.head + i) % pendingCap
		if q.items[k].id != id {
			continue
		}
		r := q.items[k]
		// close the hole by moving the older requests one place towards the end
		for j := i; j > 0; j-- {
			q.items[(q.head+j)%pendingCap] = q.items[(q.head+j-1)%pendingCap]
		}
		q.head = (q.head + 1) % pendingCap
		q.n--
		return r, true
	}
	return pendingReq{}, false
}

// has reports whether a request with correlation id id is pending.
func (q *pendingQueue) has(id uint32) bool {
	for i := 0; i < q.n; i++ {
		if q.items[(q.head+i)%pendingCap].id == id {
			return true
		}
	}
	return false
}

// expire drops the requests pending since before deadline, counting them unanswered.
func (q *pendingQueue) expire(c *Conn, deadline uint64) {
	kept := 0
	for i := 0; i < q.n; i++ {
		r := q.items[(q.head+i)%pendingCap]
		if r.start < deadline {
			c.t.unanswered.Add(1)
			continue
		}
		q.items[(q.head+kept)%pendingCap] = r
		kept++
	}
	q.n = kept
}
