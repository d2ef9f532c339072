package l7

import "bytes"

// Helpers of the line-oriented protocols (HTTP/1, Redis, Memcached, NATS).

// lineKeep is how many bytes of a line cut by a chunk's end are kept: enough for every line
// the parsers read (a memcached storage command with a 250-byte key, a NATS PUB with a long
// subject and reply).
const lineKeep = 320

// lineBuf assembles a line from the chunks it spans.
type lineBuf struct {
	line    [lineKeep]byte
	lineLen int    // bytes of the current line seen so far (may exceed lineKeep)
	lineTs  uint64 // when the line's first byte arrived
}

func (lb *lineBuf) clearLine() { lb.lineLen = 0 }

// takeLine consumes bytes up to and including '\n'. When the line completes it returns its
// first bytes (at most lineKeep, without CR LF) and whether it was longer; a line cut by the
// chunk's end is continued by the next chunk.
func (lb *lineBuf) takeLine(d []byte, ts uint64) (line, rest []byte, complete bool) {
	if lb.lineLen == 0 {
		lb.lineTs = ts
	}
	nl := bytes.IndexByte(d, '\n')
	if lb.lineLen == 0 && nl >= 0 {
		// the whole line is in this chunk: no copy (the line is used before the chunk goes)
		line = d[:min(nl, lineKeep)]
		if nl <= lineKeep && nl > 0 && line[nl-1] == '\r' {
			line = line[:nl-1]
		}
		return line, d[nl+1:], true
	}
	part := d
	if nl >= 0 {
		part = d[:nl]
	}
	if lb.lineLen < lineKeep {
		copy(lb.line[lb.lineLen:], part)
	}
	lb.lineLen += len(part)
	if nl < 0 {
		return nil, nil, false
	}
	n := min(lb.lineLen, lineKeep)
	line = lb.line[:n]
	if lb.lineLen <= lineKeep && n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	lb.lineLen = 0
	return line, d[nl+1:], true
}

// truncatedLine reports whether the line just returned by takeLine was longer than kept.
// (takeLine resets lineLen; callers that care check len(line) == lineKeep.)
func truncatedLine(line []byte) bool { return len(line) >= lineKeep }

// fields splits a line on spaces into at most len(out) words without allocating; it
// returns how many it found.
func fields(line []byte, out [][]byte) int {
	n := 0
	for len(line) > 0 && n < len(out) {
		for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			line = line[1:]
		}
		if len(line) == 0 {
			break
		}
		end := 0
		for end < len(line) && line[end] != ' ' && line[end] != '\t' {
			end++
		}
		out[n] = line[:end]
		n++
		line = line[end:]
	}
	return n
}

// parseUint reads a non-negative decimal integer.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// textFlow is the shared stream state of a line protocol's flow: where the next byte is,
// whether the boundaries are known, and how many data bytes (with their CR LF) to skip.
type textFlow struct {
	lost   bool
	next   uint64
	inData bool   // skipping a data block (payload, bulk string) of remain bytes
	remain uint64 // with its CR LF
	lineBuf
}

// textProtocol is a line protocol's handling of one flow's lines and data blocks.
type textProtocol interface {
	// resyncAt reports whether the flow may restart at d, a chunk's first bytes, after its
	// boundaries were lost; when it does, the protocol resets its per-flow state.
	resyncAt(c *Conn, f Flow, d []byte) bool
	// line handles a complete line (without CR LF; at most lineKeep bytes).
	line(c *Conn, f Flow, line []byte)
	// dataDone is called when a data block started by line ends.
	dataDone(c *Conn, f Flow)
}

// feedText reads one chunk of a line protocol's flow: lines, and data blocks of declared
// lengths skipped across chunks.
func feedText(c *Conn, f Flow, ts uint64, ch *chunk, tf *textFlow, p textProtocol) {
	i := tf.begin(c, ch)
	if i == -2 {
		return
	}
	if i < 0 {
		if !p.resyncAt(c, f, ch.data) {
			return
		}
		tf.resync(ch)
		i = 0
	}
	d := ch.data[i:]
	for len(d) > 0 && !tf.lost {
		if tf.inData {
			d = tf.skipData(d)
			if tf.remain == 0 {
				tf.inData = false
				p.dataDone(c, f)
			}
			continue
		}
		line, rest, complete := tf.takeLine(d, ts)
		d = rest
		if !complete {
			break
		}
		p.line(c, f, line)
	}
	tf.finish(c, ch)
}

// startData begins skipping a data block whose size is the decimal word w, plus CR LF.
func (tf *textFlow) startData(c *Conn, w []byte) {
	size, ok := parseUint(w)
	if !ok {
		tf.lose(c)
		return
	}
	tf.inData, tf.remain = true, size+2
}

// begin positions the flow at chunk ch. It returns the index of the first byte to parse,
// or -1 when the chunk cannot be parsed (boundaries lost; the caller may try to re-sync).
func (tf *textFlow) begin(c *Conn, ch *chunk) int {
	if tf.lost {
		return -1
	}
	switch {
	case ch.offset < tf.next:
		skip := tf.next - ch.offset
		if skip >= uint64(len(ch.data)) {
			return -2 // entirely inside bytes already accounted for
		}
		return int(skip)
	case ch.offset > tf.next:
		gap := ch.offset - tf.next
		c.t.gaps.Add(1)
		if tf.inData && gap <= tf.remain {
			tf.remain -= gap
			return 0
		}
		tf.lose(c)
		return -1
	}
	return 0
}

// skipData consumes up to remain bytes of d.
func (tf *textFlow) skipData(d []byte) []byte {
	n := min(tf.remain, uint64(len(d)))
	tf.remain -= n
	return d[n:]
}

// finish accounts for the chunk's bytes beyond the capture: they must fall in data being
// skipped, else the boundaries are lost.
func (tf *textFlow) finish(c *Conn, ch *chunk) {
	uncaptured := ch.end - ch.offset - uint64(len(ch.data))
	tf.next = ch.end
	if uncaptured == 0 || tf.lost {
		return
	}
	if tf.inData && uncaptured <= tf.remain {
		tf.remain -= uncaptured
		return
	}
	tf.lose(c)
}

func (tf *textFlow) lose(c *Conn) {
	if !tf.lost {
		c.t.lostSync.Add(1)
	}
	tf.lost, tf.inData, tf.remain = true, false, 0
	tf.clearLine()
}

// resync restarts the flow at chunk ch.
func (tf *textFlow) resync(ch *chunk) {
	tf.lost, tf.inData, tf.remain, tf.next = false, false, 0, ch.offset
	tf.clearLine()
}

// dropOlderThan drops the pending requests sent before ts: their responses were in bytes
// nobody saw.
func (q *pendingQueue) dropOlderThan(c *Conn, ts uint64) {
	for {
		r, ok := q.peek()
		if !ok || r.start >= ts {
			return
		}
		q.pop()
		c.t.unanswered.Add(1)
	}
}
