package l7

import "bytes"

// HTTP/1.0 and HTTP/1.1 (RFC 9112). Requests and responses are parsed as byte streams:
// start line, header lines, then a body framed by Content-Length or chunked
// Transfer-Encoding, skipped across chunks by its length. Responses answer requests in
// order, so pipelined requests (several in one write) are matched one by one. The status is
// the response code; the duration runs to the status line. Interim 1xx responses do not
// answer a request; 101 (and a 2xx to CONNECT) ends the parsing of the connection.
//
// When a flow's boundaries are lost (headers longer than the capture, a gap in a body of
// unknown length), the request flow re-syncs at a chunk that starts with a method and the
// response flow at a chunk that starts with "HTTP/1." while requests are pending; the
// requests sent before the latest request write are then dropped as answered in unseen bytes.

const (
	h1Start = iota
	h1Headers
	h1Body
	h1ChunkSize
	h1ChunkData
	h1Trailers
	h1Lost
	h1Done // upgraded or tunnelled: nothing more to read
)

type http1Flow struct {
	state  uint8
	next   uint64 // when not lost: the stream offset of the next byte to parse
	remain uint64 // h1Body, h1ChunkData: bytes to skip

	// the message whose headers are being read
	contentLength int64
	chunked       bool
	noBody        bool // a response to HEAD, or 1xx, 204, 304
	interim       bool // a 1xx response other than 101
	upgrade       bool // 101, or 2xx to CONNECT

	lineBuf
}

type http1Parser struct {
	flows     [2]http1Flow
	pending   pendingQueue
	lastReqTs uint64
}

const (
	h1KindHEAD    = 1
	h1KindCONNECT = 2
)

func (p *http1Parser) reset() {
	p.flows = [2]http1Flow{}
	p.pending.reset()
	p.lastReqTs = 0
}

func (p *http1Parser) expire(c *Conn, deadline uint64) { p.pending.expire(c, deadline) }

func (p *http1Parser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	fl := &p.flows[f]
	if fl.state == h1Done {
		return
	}
	request := f == c.role.requestFlow()
	d := ch.data
	i := 0
	if fl.state != h1Lost {
		switch {
		case ch.offset < fl.next:
			// a chunk that starts inside what was already skipped (a digest continuation)
			skip := fl.next - ch.offset
			if skip >= uint64(len(d)) {
				return
			}
			i = int(skip)
		case ch.offset > fl.next:
			gap := ch.offset - fl.next
			c.t.gaps.Add(1)
			switch {
			case fl.state == h1Body && gap <= fl.remain:
				if fl.remain -= gap; fl.remain == 0 {
					fl.state = h1Start
				}
			case fl.state == h1ChunkData && gap <= fl.remain:
				if fl.remain -= gap; fl.remain == 0 {
					fl.state = h1ChunkSize
				}
			default:
				p.lose(c, f)
			}
		}
	}
	if fl.state == h1Lost {
		if !p.resyncAt(c, f, d) {
			return
		}
		fl.state = h1Start
		fl.clearLine()
		if !request {
			p.pending.dropOlderThan(c, p.lastReqTs)
		}
	}
	for i < len(d) && fl.state != h1Lost && fl.state != h1Done {
		switch fl.state {
		case h1Body:
			n := min(fl.remain, uint64(len(d)-i))
			fl.remain -= n
			i += int(n)
			if fl.remain == 0 {
				fl.state = h1Start
			}
		case h1ChunkData:
			n := min(fl.remain, uint64(len(d)-i))
			fl.remain -= n
			i += int(n)
			if fl.remain == 0 {
				fl.state = h1ChunkSize
			}
		default: // line-oriented states
			line, rest, complete := fl.takeLine(d[i:], ts)
			i = len(d) - len(rest)
			if !complete {
				break
			}
			p.handleLine(c, f, request, line)
		}
	}
	// the bytes of the chunk beyond the capture
	uncaptured := ch.end - ch.offset - uint64(len(d))
	fl.next = ch.end
	if uncaptured == 0 || fl.state == h1Lost || fl.state == h1Done {
		return
	}
	switch fl.state {
	case h1Body, h1ChunkData:
		if uncaptured <= fl.remain {
			fl.remain -= uncaptured
			if fl.remain == 0 {
				if fl.state == h1Body {
					fl.state = h1Start
				} else {
					fl.state = h1ChunkSize
				}
			}
			return
		}
	}
	p.lose(c, f)
}

func (p *http1Parser) handleLine(c *Conn, f Flow, request bool, line []byte) {
	fl := &p.flows[f]
	switch fl.state {
	case h1Start:
		if len(line) == 0 {
			return // a stray CRLF between messages (RFC 9112, section 2.2)
		}
		fl.contentLength, fl.chunked, fl.noBody, fl.interim, fl.upgrade = -1, false, false, false, false
		if request {
			m := httpMethod(line)
			if m == 0 {
				p.badStart(c, f)
				return
			}
			kind := uint16(0)
			switch m {
			case h1MethodHEAD:
				kind = h1KindHEAD
			case h1MethodCONNECT:
				kind = h1KindCONNECT
			}
			p.pending.push(c, pendingReq{start: fl.lineTs, kind: kind})
			p.lastReqTs = fl.lineTs
			c.confirm()
		} else {
			code, ok := httpStatusLine(line)
			if !ok {
				p.badStart(c, f)
				return
			}
			if code >= 100 && code < 200 && code != 101 {
				fl.interim, fl.noBody = true, true
			} else {
				r, ok := p.pending.pop()
				if !ok {
					c.t.unmatched.Add(1)
				} else {
					if r.kind == h1KindHEAD || code == 204 || code == 304 {
						fl.noBody = true
					}
					if code == 101 || (r.kind == h1KindCONNECT && code >= 200 && code < 300) {
						fl.upgrade = true
					}
					c.report(HTTPStatus(code), MethodNone, r.start, fl.lineTs)
				}
			}
		}
		fl.state = h1Headers
	case h1Headers:
		if len(line) == 0 {
			p.endOfHeaders(c, f, request)
			return
		}
		if v, ok := headerValue(line, "content-length"); ok {
			if n, ok := parseUint(bytes.TrimSpace(v)); ok && n < 1<<62 {
				fl.contentLength = int64(n)
			}
		} else if v, ok := headerValue(line, "transfer-encoding"); ok {
			fl.chunked = asciiHasSuffixFold(bytes.TrimSpace(v), "chunked")
		}
	case h1ChunkSize:
		n, ok := parseHexChunkSize(line)
		if !ok {
			p.lose(c, f)
			return
		}
		if n == 0 {
			fl.state = h1Trailers
			return
		}
		fl.remain, fl.state = n+2, h1ChunkData // data then CR LF
	case h1Trailers:
		if len(line) == 0 {
			fl.state = h1Start
		}
	}
}

func (p *http1Parser) endOfHeaders(c *Conn, f Flow, request bool) {
	fl := &p.flows[f]
	switch {
	case fl.upgrade:
		p.flows[0].state, p.flows[1].state = h1Done, h1Done // another protocol follows
	case fl.interim || fl.noBody:
		fl.state = h1Start
	case fl.chunked:
		fl.state = h1ChunkSize
	case fl.contentLength > 0:
		fl.state, fl.remain = h1Body, uint64(fl.contentLength)
	case fl.contentLength == 0 || request:
		fl.state = h1Start // a request without framing headers has no body
	default:
		// a response delimited by the connection's close
		fl.state = h1Lost
	}
}

// badStart handles a start line that does not parse: a false positive on a new connection,
// lost boundaries on a confirmed one.
func (p *http1Parser) badStart(c *Conn, f Flow) {
	if c.reject() {
		return
	}
	p.lose(c, f)
}

func (p *http1Parser) lose(c *Conn, f Flow) {
	if p.flows[f].state != h1Lost {
		c.t.lostSync.Add(1)
	}
	p.flows[f].state = h1Lost
	p.flows[f].clearLine()
}

func (p *http1Parser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if f == c.role.requestFlow() {
		return httpMethod(d) != 0
	}
	return p.pending.len() > 0 && len(d) >= 12 && bytes.HasPrefix(d, []byte("HTTP/1.")) && d[8] == ' '
}

const (
	h1MethodOther   = 1
	h1MethodHEAD    = 2
	h1MethodCONNECT = 3
)

var httpMethods = [...]string{"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// httpMethod recognises a request line's method and the first byte of its target: '/',
// '*' or an absolute URI or authority. It returns 0 when b does not start a request.
func httpMethod(b []byte) int {
	for _, m := range httpMethods {
		if len(b) > len(m) && string(b[:len(m)]) == m {
			t := b[len(m)]
			if t == '/' || t == '*' || (t >= 'a' && t <= 'z') || (t >= 'A' && t <= 'Z') || (t >= '0' && t <= '9') || t == '[' {
				switch m {
				case "HEAD ":
					return h1MethodHEAD
				case "CONNECT ":
					return h1MethodCONNECT
				}
				return h1MethodOther
			}
		}
	}
	return 0
}

// httpStatusLine parses "HTTP/1.x NNN".
func httpStatusLine(l []byte) (int, bool) {
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || l[8] != ' ' {
		return 0, false
	}
	code := 0
	for _, b := range l[9:12] {
		if b < '0' || b > '9' {
			return 0, false
		}
		code = code*10 + int(b-'0')
	}
	if code < 100 || (len(l) > 12 && l[12] != ' ') {
		return 0, false
	}
	return code, true
}

// headerValue returns the value of a header line whose name equals name (lower case).
func headerValue(line []byte, name string) ([]byte, bool) {
	if len(line) <= len(name) || line[len(name)] != ':' {
		return nil, false
	}
	for i := 0; i < len(name); i++ {
		b := line[i]
		if b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != name[i] {
			return nil, false
		}
	}
	return line[len(name)+1:], true
}

func asciiHasSuffixFold(b []byte, suffix string) bool {
	if len(b) < len(suffix) {
		return false
	}
	b = b[len(b)-len(suffix):]
	for i := range suffix {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != suffix[i] {
			return false
		}
	}
	return true
}

// parseHexChunkSize reads a chunk-size line: hex digits, optionally ";extensions".
func parseHexChunkSize(l []byte) (uint64, bool) {
	var n uint64
	digits := 0
	for _, c := range l {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		digits++
		if digits > 15 {
			return 0, false
		}
		n = n<<4 | uint64(v)
	}
	return n, digits > 0
}
