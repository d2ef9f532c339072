package l7

import "encoding/binary"

// PostgreSQL frontend/backend protocol v3 (PostgreSQL documentation, "Frontend/Backend
// Protocol"): every message is a type byte, an int32 big-endian length that counts itself,
// and the body; only the first frontend message (StartupMessage, SSLRequest,
// GSSENCRequest, CancelRequest) has no type byte.
//
// A simple query ('Q') is one query; it completes at ReadyForQuery ('Z') and fails when an
// ErrorResponse ('E') came before. In the extended protocol every Execute ('E' from the
// client) is one query, completed by its CommandComplete ('C'), EmptyQueryResponse ('I'),
// PortalSuspended ('s') or ErrorResponse; after an error the server skips to the Sync, so
// the Executes still pending at 'Z' failed. A Parse without Execute before Sync (a
// prepare) is one query, completed at 'Z'. The duration runs to the first response byte.
// When the response's messages run into bytes nobody saw (a large result), the queries that
// already had response bytes complete with what was seen: failed if an ErrorResponse was
// seen, else ok.

type postgresParser struct {
	framedParser
	// startup: the request flow's first message has no type byte
	startup bool
	// sslAnswer: an SSLRequest or GSSENCRequest awaits its one-byte answer
	sslAnswer bool
	// batch: since the last Sync, a Parse was sent (parse) and Executes were (executes)
	parse    bool
	executes int
	// batch numbers the batches (a 'Q', or the messages up to a Sync); pendingReq.aux holds it
	batch uint16
	// the oldest pending query's first response byte and whether an error was seen
	firstResp uint64
	sawError  bool
	reqFlow   Flow
}

const (
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
	pgCancelRequest = 80877102
	pgProtocol3     = 196608
	pgMaxMessage    = 1 << 30

	pgKindSimple  = 1
	pgKindExecute = 2
	pgKindPrepare = 3
)

func (p *postgresParser) reset() {
	p.framedParser.reset()
	p.startup, p.sslAnswer, p.parse, p.executes = true, false, false, 0
	p.firstResp, p.sawError, p.batch = 0, false, 0
}

func (p *postgresParser) expire(c *Conn, deadline uint64) {
	n := p.pending.len()
	p.pending.expire(c, deadline)
	if p.pending.len() != n {
		p.firstResp, p.sawError = 0, false
	}
}

func (p *postgresParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	p.reqFlow = c.role.requestFlow()
	request := f == p.reqFlow
	if request && p.startup && ch.offset == 0 && len(ch.data) >= 8 {
		p.startup = false
		n := binary.BigEndian.Uint32(ch.data)
		code := binary.BigEndian.Uint32(ch.data[4:])
		if n >= 8 && n <= 10000 && (code == pgProtocol3 || code == pgSSLRequest || code == pgGSSENCRequest || code == pgCancelRequest) {
			c.confirm()
			p.sslAnswer = code == pgSSLRequest || code == pgGSSENCRequest
			// the rest of the chunk, after the startup message, is framed as usual
			fr := &p.flows[f]
			fr.synced, fr.next = true, uint64(n)
			if uint64(n) < ch.end {
				fr.feed(c, f, ts, ch, 5, p)
			}
			return
		}
	}
	if !request && p.sslAnswer && ch.offset == 0 && len(ch.data) >= 1 {
		p.sslAnswer = false
		if ch.data[0] != 'N' {
			// 'S' or 'G': TLS or GSSAPI encryption follows; nothing more can be read
			c.verdict = verdictRejected
			c.t.unsupported.Add(1)
			return
		}
		fr := &p.flows[f]
		fr.synced, fr.next = true, 1
		if ch.end > 1 {
			fr.feed(c, f, ts, ch, 5, p)
		}
		return
	}
	p.startup = p.startup && ch.offset == 0
	p.flows[f].feed(c, f, ts, ch, 5, p)
	if !request && !p.flows[f].synced && p.firstResp != 0 {
		// The response runs on in bytes nobody saw: the query that had response bytes
		// completes with what was seen.
		status := StatusOK
		if p.sawError {
			status = StatusFailed
		}
		p.complete(c, status, ts)
		p.sawError = false
	}
}

func (p *postgresParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > pgMaxMessage || !pgTypeValid(hdr[0], f == p.reqFlow) {
		return 0, false
	}
	return 1 + uint64(n), true
}

func pgTypeValid(t byte, frontend bool) bool {
	if frontend {
		switch t {
		case 'Q', 'P', 'B', 'E', 'D', 'C', 'S', 'H', 'X', 'F', 'd', 'c', 'f', 'p':
			return true
		}
		return false
	}
	switch t {
	case 'R', 'S', 'K', 'Z', 'T', 'D', 'C', 'E', 'I', 'N', 'A', '1', '2', '3', 'n', 's', 't', 'G', 'H', 'W', 'd', 'c', 'V', 'v':
		return true
	}
	return false
}

func (p *postgresParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < 5 {
		return false
	}
	if _, ok := p.frameLength(f, d); !ok {
		return false
	}
	if f == c.role.requestFlow() {
		return d[0] == 'Q' || d[0] == 'P' || d[0] == 'B'
	}
	return p.pending.len() > 0
}

func (p *postgresParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	if f == c.role.requestFlow() {
		p.frontend(c, ts, d[0])
		return
	}
	p.backend(c, ts, d[0])
}

func (p *postgresParser) frontend(c *Conn, ts uint64, t byte) {
	switch t {
	case 'Q':
		p.batch++
		p.pending.push(c, pendingReq{start: ts, kind: pgKindSimple, aux: p.batch})
		p.batch++
	case 'P':
		p.parse = true
	case 'E':
		p.executes++
		p.pending.push(c, pendingReq{start: ts, kind: pgKindExecute, aux: p.batch})
	case 'S':
		if p.parse && p.executes == 0 {
			p.pending.push(c, pendingReq{start: ts, kind: pgKindPrepare, aux: p.batch})
		}
		p.parse, p.executes = false, 0
		p.batch++
	}
	c.confirm()
}

func (p *postgresParser) backend(c *Conn, ts uint64, t byte) {
	head, ok := p.pending.peek()
	if !ok {
		return // startup, notices, parameter status, notifications
	}
	switch t {
	case 'N', 'A', 'S':
		return // asynchronous: notice, notification, parameter status
	}
	if p.firstResp == 0 {
		p.firstResp = ts
	}
	switch t {
	case 'E':
		p.sawError = true
		if head.kind == pgKindExecute {
			p.complete(c, StatusFailed, ts)
		}
	case 'C', 'I', 's':
		if head.kind == pgKindExecute {
			p.complete(c, StatusOK, ts)
		}
	case 'Z':
		// The end of a simple query or of a batch: what is still pending of the head's batch
		// was skipped after an error, or is the batch's prepare.
		batch := head.aux
		for ok && head.aux == batch {
			status := StatusOK
			if p.sawError {
				status = StatusFailed
			}
			p.complete(c, status, ts)
			head, ok = p.pending.peek()
		}
		p.sawError = false
	}
}

// complete reports the oldest pending query; its response began at the first response
// byte seen for it, or at ts.
func (p *postgresParser) complete(c *Conn, status Status, ts uint64) {
	r, _ := p.pending.pop()
	end := p.firstResp
	if end == 0 {
		end = ts
	}
	c.report(status, MethodNone, r.start, max(end, r.start))
	p.firstResp = 0
}
