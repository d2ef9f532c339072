package l7

// NATS client protocol (docs.nats.io, "Client Protocol"). Lines; PUB and HPUB (client to
// server) and MSG and HMSG (server to client) are followed by a payload of the declared
// size. Every PUB/HPUB a client sends is a message produced and every MSG/HMSG it receives
// one consumed: container_nats_messages_total{method} with status ok. The server's side of
// a connection is not counted (coroot has no inbound NATS metric).

type natsParser struct {
	flows [2]textFlow
	words [6][]byte
}

func (p *natsParser) reset()                          { p.flows = [2]textFlow{} }
func (p *natsParser) expire(c *Conn, deadline uint64) {}
func (p *natsParser) dataDone(c *Conn, f Flow)        {}
func (p *natsParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	return natsVerb(f, firstLine(d), p.words[:]) != 0
}

func (p *natsParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	if c.role == RoleServer {
		return
	}
	feedText(c, f, ts, ch, &p.flows[f], p)
}

const (
	natsOther = 1 // a control line
	natsMsg   = 2 // a message: its payload size (for HPUB/HMSG the total size) is the last word
)

// natsVerbs: for each flow seen from the client, a verb and the word counts its message
// lines may have (0: a control line).
var natsVerbs = [2]map[string][2]int{
	Sent: {
		"PUB": {3, 4}, "pub": {3, 4}, "HPUB": {4, 5}, "hpub": {4, 5},
		"CONNECT": {}, "connect": {}, "SUB": {}, "sub": {}, "UNSUB": {}, "unsub": {}, "PING": {}, "ping": {}, "PONG": {}, "pong": {},
	},
	Received: {
		"MSG": {4, 5}, "msg": {4, 5}, "HMSG": {5, 6}, "hmsg": {5, 6},
		"INFO": {}, "info": {}, "+OK": {}, "+ok": {}, "-ERR": {}, "-err": {}, "PING": {}, "ping": {}, "PONG": {}, "pong": {},
	},
}

// natsVerb classifies a line of flow f (seen from the client).
func natsVerb(f Flow, line []byte, words [][]byte) int {
	n := fields(line, words)
	if n == 0 {
		return 0
	}
	counts, ok := natsVerbs[f][string(words[0])]
	switch {
	case !ok:
		return 0
	case counts[0] == 0:
		return natsOther
	case n == counts[0] || n == counts[1]:
		return natsMsg
	}
	return 0
}

func (p *natsParser) line(c *Conn, f Flow, line []byte) {
	if len(line) == 0 {
		return
	}
	fl := &p.flows[f]
	kind := natsVerb(f, line, p.words[:])
	if kind == 0 {
		if c.reject() {
			return
		}
		fl.lose(c)
		return
	}
	c.confirm()
	if kind == natsOther {
		return // INFO and CONNECT lines may be longer than kept: only their verb matters
	}
	if truncatedLine(line) {
		fl.lose(c) // the size is the last word, not kept
		return
	}
	n := fields(line, p.words[:])
	fl.startData(c, p.words[n-1])
	method := MethodProduce
	if f == Received {
		method = MethodConsume
	}
	c.report(StatusOK, method, fl.lineTs, fl.lineTs)
}
