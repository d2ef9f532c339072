package l7

// Redis serialization protocol, RESP2 and RESP3 (redis.io/docs/reference/protocol-spec).
// A command is an array of bulk strings (or an inline command line); replies come back in
// command order, so a pipeline of N commands in one write gets N replies. The status is
// decided by the reply's first byte: '-' (error) and '!' (blob error) fail. Push messages
// ('>') are not replies; an attribute ('|') precedes the reply it annotates. Values are
// skipped by their declared lengths across chunks; aggregates are followed by a bounded
// stack of remaining element counts.

const redisMaxDepth = 16

type redisFlow struct {
	textFlow
	depth int
	left  [redisMaxDepth]int64 // elements still to read in each open aggregate
}

type redisParser struct {
	flows     [2]redisFlow
	pending   pendingQueue
	lastReqTs uint64
}

func (p *redisParser) reset() {
	p.flows = [2]redisFlow{}
	p.pending.reset()
	p.lastReqTs = 0
}

func (p *redisParser) expire(c *Conn, deadline uint64) { p.pending.expire(c, deadline) }

func (p *redisParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	feedText(c, f, ts, ch, &p.flows[f].textFlow, p)
}

func (p *redisParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < 3 {
		return false
	}
	if f == c.role.requestFlow() {
		if d[0] != '*' || d[1] < '0' || d[1] > '9' {
			return false
		}
	} else {
		if p.pending.len() == 0 || !redisTypeByte(d[0]) {
			return false
		}
		p.pending.dropOlderThan(c, p.lastReqTs)
	}
	p.flows[f].depth = 0
	return true
}

func redisTypeByte(b byte) bool {
	switch b {
	case '+', '-', ':', '$', '*', '_', ',', '#', '!', '=', '(', '%', '~', '>', '|':
		return true
	}
	return false
}

func (p *redisParser) dataDone(c *Conn, f Flow) { p.valueDone(c, &p.flows[f]) }

// line handles one value header line.
func (p *redisParser) line(c *Conn, f Flow, line []byte) {
	fl := &p.flows[f]
	if len(line) == 0 {
		if fl.depth == 0 {
			return // an empty inline line
		}
		p.bad(c, fl)
		return
	}
	t := line[0]
	if fl.depth == 0 {
		if f == c.role.requestFlow() {
			if t != '*' {
				// an inline command: one line, one command
				if !redisInline(line) {
					p.bad(c, fl)
					return
				}
				p.command(fl.lineTs, c)
				c.confirm()
				return
			}
			p.command(fl.lineTs, c)
		} else if t != '>' && t != '|' { // a reply, not a push or an attribute
			r, ok := p.pending.pop()
			if !ok {
				c.t.unmatched.Add(1) // RESP2 pub/sub messages among them
			} else {
				status := StatusOK
				if t == '-' || t == '!' {
					status = StatusFailed
				}
				c.report(status, MethodNone, r.start, fl.lineTs)
			}
		}
	}
	switch t {
	case '+', '-', ':', '_', ',', '#', '(':
		p.valueDone(c, fl)
	case '$', '!', '=':
		n, ok := redisLength(line[1:])
		if !ok {
			p.bad(c, fl)
			return
		}
		if n < 0 {
			p.valueDone(c, fl) // null bulk string
			return
		}
		fl.inData, fl.remain = true, uint64(n)+2
	case '*', '%', '~', '>', '|':
		n, ok := redisLength(line[1:])
		if !ok {
			p.bad(c, fl)
			return
		}
		if t == '%' || t == '|' {
			n *= 2
		}
		if n <= 0 {
			p.valueDone(c, fl) // empty or null aggregate
			return
		}
		if fl.depth == redisMaxDepth {
			fl.lose(c)
			return
		}
		fl.left[fl.depth] = n
		fl.depth++
	default:
		p.bad(c, fl)
	}
}

// valueDone closes the aggregates a complete value finishes. A complete top-level value
// confirms the connection.
func (p *redisParser) valueDone(c *Conn, fl *redisFlow) {
	for fl.depth > 0 {
		fl.left[fl.depth-1]--
		if fl.left[fl.depth-1] > 0 {
			return
		}
		fl.depth--
	}
	c.confirm()
}

func (p *redisParser) command(ts uint64, c *Conn) {
	p.pending.push(c, pendingReq{start: ts})
	p.lastReqTs = ts
}

func (p *redisParser) bad(c *Conn, fl *redisFlow) {
	if c.reject() {
		return
	}
	fl.lose(c)
}

// redisInline accepts an inline command: a word of letters, then anything.
func redisInline(line []byte) bool {
	n := 0
	for _, b := range line {
		if b == ' ' {
			break
		}
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z') {
			return false
		}
		n++
	}
	return n > 0
}

// redisLength parses a length or count: a decimal, or -1.
func redisLength(b []byte) (int64, bool) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return -1, true
	}
	n, ok := parseUint(b)
	if !ok || n > 1<<32 {
		return 0, false
	}
	return int64(n), true
}
