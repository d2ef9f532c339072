package l7

// Memcached text protocol (memcached's doc/protocol.txt), meta commands included. Commands
// are lines; storage commands (set, add, replace, append, prepend, cas, ms) are followed by
// a data block of the declared length. Replies come back in command order. A reply's first
// line decides the status: ERROR, CLIENT_ERROR and SERVER_ERROR fail; misses and
// NOT_STORED/EXISTS/NOT_FOUND answer the command and are ok. Retrieval replies (VALUE blocks
// up to END) and stats (STAT lines up to END) are read to their end. Commands with noreply,
// and meta commands with the q flag, may get no reply: they are not counted.

const (
	mcKindLine      = 1 // one reply line
	mcKindRetrieval = 2 // VALUE blocks then END
	mcKindStats     = 3 // STAT lines then END
	mcKindMeta      = 4 // a meta reply: VA <len> then data, or one line
)

type memcachedFlow struct {
	textFlow
	// response flow: the multi-line reply being read (already reported)
	inReply uint16
}

type memcachedParser struct {
	flows     [2]memcachedFlow
	pending   pendingQueue
	lastReqTs uint64
	words     [8][]byte
}

func (p *memcachedParser) reset() {
	p.flows = [2]memcachedFlow{}
	p.pending.reset()
	p.lastReqTs = 0
}

func (p *memcachedParser) expire(c *Conn, deadline uint64) { p.pending.expire(c, deadline) }

func (p *memcachedParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	feedText(c, f, ts, ch, &p.flows[f].textFlow, p)
}

func (p *memcachedParser) dataDone(c *Conn, f Flow) {}

func (p *memcachedParser) line(c *Conn, f Flow, line []byte) {
	if f == c.role.requestFlow() {
		p.command(c, &p.flows[f], line)
	} else {
		p.reply(c, &p.flows[f], line)
	}
}

func (p *memcachedParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	n := fields(firstLine(d), p.words[:])
	if n == 0 {
		return false
	}
	if f == c.role.requestFlow() {
		return mcCommandKind(p.words[0]) != 0
	}
	if p.pending.len() == 0 || !mcReplyWord(p.words[0]) {
		return false
	}
	p.flows[f].inReply = 0
	p.pending.dropOlderThan(c, p.lastReqTs)
	return true
}

func firstLine(d []byte) []byte {
	for i, b := range d {
		if b == '\r' || b == '\n' {
			return d[:i]
		}
	}
	return d
}

func mcCommandKind(w []byte) uint16 {
	switch string(w) {
	case "get", "gets", "gat", "gats":
		return mcKindRetrieval
	case "stats":
		return mcKindStats
	case "set", "add", "replace", "append", "prepend", "cas", "delete", "incr", "decr", "touch",
		"flush_all", "version", "verbosity", "quit", "mn", "ms", "md", "ma", "me",
		"slabs", "lru_crawler", "lru", "watch", "cache_memlimit", "shutdown", "misbehave":
		return mcKindLine
	case "mg":
		return mcKindMeta
	}
	return 0
}

func mcReplyWord(w []byte) bool {
	switch string(w) {
	case "VALUE", "END", "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED",
		"OK", "VERSION", "STAT", "ERROR", "CLIENT_ERROR", "SERVER_ERROR", "BUSY", "BADCLASS",
		"NOSPARE", "NOTFULL", "UNSAFE", "SAME", "RESET",
		"VA", "HD", "EN", "NF", "NS", "EX", "MN", "ME":
		return true
	}
	if len(w) > 0 && w[0] >= '0' && w[0] <= '9' {
		return true // incr/decr result
	}
	return false
}

func (p *memcachedParser) command(c *Conn, fl *memcachedFlow, line []byte) {
	n := fields(line, p.words[:])
	if n == 0 {
		return
	}
	w := p.words[:n]
	kind := mcCommandKind(w[0])
	if kind == 0 && c.reject() {
		return
	}
	if truncatedLine(line) {
		fl.lose(c)
		return
	}
	if kind == 0 {
		kind = mcKindLine // memcached answers every line it does not know with ERROR
	}
	// data blocks: "set <key> <flags> <exptime> <bytes> [noreply]", "cas ... <bytes> <cas>
	// [noreply]", "ms <key> <datalen> <flags>*"
	switch string(w[0]) {
	case "set", "add", "replace", "append", "prepend", "cas":
		p.valueData(c, fl, w, 4)
	case "ms":
		p.valueData(c, fl, w, 2)
	case "quit":
		return
	}
	if fl.lost {
		return
	}
	if mcQuiet(w) {
		c.t.unsupported.Add(1)
		return
	}
	p.pending.push(c, pendingReq{start: fl.lineTs, kind: kind})
	p.lastReqTs = fl.lineTs
}

// mcQuiet reports whether a command may get no reply: noreply, or a meta command's q flag.
func mcQuiet(w [][]byte) bool {
	switch string(w[0]) {
	case "mg", "ms", "md", "ma":
		for _, f := range w[2:] {
			if len(f) == 1 && f[0] == 'q' {
				return true
			}
		}
		return false
	case "mn", "me", "get", "gets", "gat", "gats", "stats", "version":
		return false
	}
	last := w[len(w)-1]
	return string(last) == "noreply"
}

func (p *memcachedParser) reply(c *Conn, fl *memcachedFlow, line []byte) {
	n := fields(line, p.words[:])
	if n == 0 {
		return
	}
	w := p.words[:n]
	if !mcReplyWord(w[0]) && fl.inReply == 0 {
		if c.reject() {
			return // the connection's first reply is not memcached's
		}
		fl.lose(c)
		return
	}
	if fl.inReply != 0 {
		// inside a multi-line reply that was already reported
		switch string(w[0]) {
		case "END":
			fl.inReply = 0
		case "VALUE":
			p.valueData(c, fl, w, 3)
		case "STAT":
		default:
			fl.inReply = 0
			p.reply(c, fl, line) // the reply ended without END: this line is the next reply
		}
		return
	}
	r, ok := p.pending.pop()
	if !ok {
		c.t.unmatched.Add(1)
		return
	}
	status := StatusOK
	switch string(w[0]) {
	case "ERROR", "CLIENT_ERROR", "SERVER_ERROR":
		status = StatusFailed
	}
	c.report(status, MethodNone, r.start, fl.lineTs)
	if status == StatusFailed {
		return
	}
	switch {
	case r.kind == mcKindRetrieval && string(w[0]) == "VALUE":
		fl.inReply = mcKindRetrieval
		p.valueData(c, fl, w, 3)
	case r.kind == mcKindStats && string(w[0]) == "STAT":
		fl.inReply = mcKindStats
	case r.kind == mcKindMeta && string(w[0]) == "VA":
		p.valueData(c, fl, w, 1)
	}
}

// valueData starts skipping the data block whose size is word i of a VALUE or VA line.
func (p *memcachedParser) valueData(c *Conn, fl *memcachedFlow, w [][]byte, i int) {
	if len(w) <= i {
		fl.lose(c)
		return
	}
	fl.startData(c, w[i])
}
