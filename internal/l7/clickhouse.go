package l7

// ClickHouse native protocol (ClickHouse's src/Core/Protocol.h and the client/server
// packet layouts). Packets are a varint type and fields without a length, and data blocks
// cannot be skipped without their column types, so packets are classified where a chunk
// starts (writers flush packet by packet). A client Query packet (type 1, checked through
// its query id and client info) starts a query; the server's Exception (2) ends it failed
// and EndOfStream (5) ends it ok, at a chunk's start or as the whole chunk's last byte.
// Queries are sequential on a connection: a new Query also ends a previous query that had
// response bytes (ok: its end was in unseen bytes) and drops one that had none. Pings are
// answered by Pong and not counted.

type clickhouseParser struct {
	pending   pendingQueue
	firstResp uint64 // the head query's first response byte
	hello     bool   // a client Hello awaits the server's Hello
}

const (
	chClientHello = 0
	chClientQuery = 1
	chClientPing  = 4

	chServerHello       = 0
	chServerException   = 2
	chServerPong        = 4
	chServerEndOfStream = 5
	chServerMaxPacket   = 18

	chKindQuery = 1
	chKindPing  = 2
)

func (p *clickhouseParser) reset() {
	p.pending.reset()
	p.firstResp, p.hello = 0, false
}

func (p *clickhouseParser) expire(c *Conn, deadline uint64) {
	n := p.pending.len()
	p.pending.expire(c, deadline)
	if n != p.pending.len() {
		p.firstResp = 0
	}
}

func (p *clickhouseParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	d := ch.data
	if len(d) == 0 {
		return
	}
	if f == c.role.requestFlow() {
		p.request(c, ts, d)
		return
	}
	head, ok := p.pending.peek()
	switch d[0] {
	case chServerHello:
		if p.hello && len(d) > 1 {
			p.hello = false
			return
		}
	case chServerPong:
		if ok && head.kind == chKindPing {
			p.pending.pop()
			return
		}
	case chServerException:
		if ok && head.kind == chKindQuery {
			p.complete(c, StatusFailed, ts)
			return
		}
	case chServerEndOfStream:
		if ok && head.kind == chKindQuery {
			p.complete(c, StatusOK, ts)
			return
		}
	}
	if !ok || head.kind != chKindQuery {
		return
	}
	if p.firstResp == 0 {
		p.firstResp = ts
	}
	if uint64(len(d)) == ch.end-ch.offset && d[len(d)-1] == chServerEndOfStream {
		p.complete(c, StatusOK, ts)
	}
}

func (p *clickhouseParser) request(c *Conn, ts uint64, d []byte) {
	switch d[0] {
	case chClientHello:
		if !clickhouseHello(d) {
			c.reject()
			return
		}
		p.hello = true
		c.confirm()
	case chClientQuery:
		if !clickhouseQuery(d) {
			c.reject()
			return
		}
		if head, ok := p.pending.peek(); ok && head.kind == chKindQuery {
			if p.firstResp != 0 {
				p.complete(c, StatusOK, ts)
			} else {
				p.pending.pop()
				c.t.unanswered.Add(1)
			}
		}
		p.pending.push(c, pendingReq{start: ts, kind: chKindQuery})
		c.confirm()
	case chClientPing:
		if len(d) == 1 {
			p.pending.push(c, pendingReq{start: ts, kind: chKindPing})
		}
	default:
		if c.verdict == verdictUndecided {
			c.reject()
		}
	}
}

func (p *clickhouseParser) complete(c *Conn, status Status, ts uint64) {
	r, _ := p.pending.pop()
	end := p.firstResp
	if end == 0 {
		end = ts
	}
	p.firstResp = 0
	c.report(status, MethodNone, r.start, max(end, r.start))
}

// chString reads a varint-length string at d[i:]; it fails beyond limit bytes or when a byte
// is not printable ASCII.
func chString(d []byte, i, limit int) ([]byte, int, bool) {
	if i >= len(d) {
		return nil, 0, false
	}
	n := int(d[i])
	if n >= 0x80 || n > limit || i+1+n > len(d) {
		return nil, 0, false
	}
	s := d[i+1 : i+1+n]
	for _, b := range s {
		if b < 0x20 || b > 0x7e {
			return nil, 0, false
		}
	}
	return s, i + 1 + n, true
}

// clickhouseHello checks a client Hello: type 0, then a client name naming ClickHouse.
func clickhouseHello(d []byte) bool {
	name, _, ok := chString(d, 1, 64)
	if !ok {
		return false
	}
	return containsFold(name, "clickhouse")
}

// clickhouseQuery checks a client Query: type 1, query id, then the client info's query
// kind (1 initial, 2 secondary), initial user, initial query id and initial address.
func clickhouseQuery(d []byte) bool {
	_, i, ok := chString(d, 1, 64)
	if !ok || i >= len(d) || (d[i] != 1 && d[i] != 2) {
		return false
	}
	i++
	if _, i, ok = chString(d, i, 64); !ok {
		return false
	}
	if _, i, ok = chString(d, i, 64); !ok {
		return false
	}
	addr, _, ok := chString(d, i, 64)
	if !ok {
		return false
	}
	for j := 0; j < len(addr); j++ {
		if addr[j] == ':' {
			return true
		}
	}
	return false
}

func containsFold(s []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for j := 0; j < len(sub); j++ {
			b := s[i+j]
			if b >= 'A' && b <= 'Z' {
				b += 'a' - 'A'
			}
			if b != sub[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
