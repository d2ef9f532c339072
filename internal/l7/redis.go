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
	inData bool // skipping a bulk string's bytes (textFlow.remain)
	depth  int
	left   [redisMaxDepth]int64 // elements still to read in each open aggregate
	// the value being read at the top level is a reply (not a push or attribute)
	topIsReply bool
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
	fl := &p.flows[f]
	request := f == c.role.requestFlow()
	i := fl.begin(c, ch)
	if i == -2 {
		return
	}
	if i < 0 {
		if !p.resyncAt(c, request, ch.data) {
			return
		}
		fl.resync(ch)
		fl.inData, fl.depth = false, 0
		if !request {
			p.pending.dropOlderThan(c, p.lastReqTs)
		}
		i = 0
	}
	d := ch.data[i:]
	for len(d) > 0 && !fl.lost {
		if fl.inData {
			d = fl.skipData(d)
			if fl.remain == 0 {
				fl.inData = false
				p.valueDone(c, fl)
			}
			continue
		}
		line, rest, complete := fl.takeLine(d, ts)
		d = rest
		if !complete {
			break
		}
		p.value(c, fl, request, line)
	}
	fl.finish(c, ch)
}

func (p *redisParser) resyncAt(c *Conn, request bool, d []byte) bool {
	if len(d) < 3 {
		return false
	}
	if request {
		return d[0] == '*' && d[1] >= '0' && d[1] <= '9'
	}
	return p.pending.len() > 0 && redisTypeByte(d[0])
}

func redisTypeByte(b byte) bool {
	switch b {
	case '+', '-', ':', '$', '*', '_', ',', '#', '!', '=', '(', '%', '~', '>', '|':
		return true
	}
	return false
}

// value handles one value header line.
func (p *redisParser) value(c *Conn, fl *redisFlow, request bool, line []byte) {
	if len(line) == 0 {
		if fl.depth == 0 {
			return // an empty inline line
		}
		p.bad(c, fl)
		return
	}
	t := line[0]
	top := fl.depth == 0
	if top {
		if request {
			if t != '*' {
				// an inline command: one line, one command
				if !redisInline(line) {
					p.bad(c, fl)
					return
				}
				p.command(c, fl.lineTs)
				c.confirm()
				return
			}
			p.command(c, fl.lineTs)
		} else {
			fl.topIsReply = t != '>' && t != '|'
			if fl.topIsReply {
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

func (p *redisParser) command(c *Conn, ts uint64) {
	p.pending.push(c, pendingReq{start: ts})
	p.lastReqTs = ts
}

func (p *redisParser) bad(c *Conn, fl *redisFlow) {
	if c.reject() {
		return
	}
	fl.lose(c)
}

// redisInline accepts an inline command: a word of letters, then anything printable.
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
