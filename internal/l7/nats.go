package l7

// NATS client protocol (docs.nats.io, "Client Protocol"). Lines; PUB and HPUB (client to
// server) and MSG and HMSG (server to client) are followed by a payload of the declared
// size. Every PUB/HPUB a client sends is a message produced and every MSG/HMSG it receives
// one consumed: container_nats_messages_total{method} with status ok. The server's side of
// a connection is not counted (coroot has no inbound NATS metric).

type natsParser struct {
	flows [2]textFlow
	data  [2]bool
	words [6][]byte
}

func (p *natsParser) reset() {
	p.flows = [2]textFlow{}
	p.data = [2]bool{}
}

func (p *natsParser) expire(c *Conn, deadline uint64) {}

func (p *natsParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	if c.role == RoleServer {
		return
	}
	fl := &p.flows[f]
	i := fl.begin(c, ch)
	if i == -2 {
		return
	}
	if i < 0 {
		if natsVerb(f, firstLine(ch.data), p.words[:]) == 0 {
			return
		}
		fl.resync(ch)
		p.data[f] = false
		i = 0
	}
	d := ch.data[i:]
	for len(d) > 0 && !fl.lost {
		if p.data[f] {
			d = fl.skipData(d)
			if fl.remain == 0 {
				p.data[f] = false
			}
			continue
		}
		line, rest, complete := fl.takeLine(d, ts)
		d = rest
		if !complete {
			break
		}
		p.line(c, f, fl, line)
	}
	fl.finish(c, ch)
}

const (
	natsOther = 1 // a control line
	natsPub   = 2 // a message with a payload size as the last word
	natsHPub  = 3 // a message with header and total sizes as the last two words
)

// natsVerb classifies a line of flow f (seen from the client).
func natsVerb(f Flow, line []byte, words [][]byte) int {
	n := fields(line, words)
	if n == 0 {
		return 0
	}
	v := string(words[0])
	if f == Sent {
		switch v {
		case "PUB", "pub":
			if n == 3 || n == 4 {
				return natsPub
			}
		case "HPUB", "hpub":
			if n == 4 || n == 5 {
				return natsHPub
			}
		case "CONNECT", "connect", "SUB", "sub", "UNSUB", "unsub", "PING", "ping", "PONG", "pong":
			return natsOther
		}
		return 0
	}
	switch v {
	case "MSG", "msg":
		if n == 4 || n == 5 {
			return natsPub
		}
	case "HMSG", "hmsg":
		if n == 5 || n == 6 {
			return natsHPub
		}
	case "INFO", "info", "+OK", "+ok", "-ERR", "-err", "PING", "ping", "PONG", "pong":
		return natsOther
	}
	return 0
}

func (p *natsParser) line(c *Conn, f Flow, fl *textFlow, line []byte) {
	if len(line) == 0 {
		return
	}
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
	size, ok := parseUint(p.words[n-1]) // the payload size; for HPUB/HMSG the total size
	if !ok {
		fl.lose(c)
		return
	}
	p.data[f], fl.remain = true, size+2
	method := MethodProduce
	if f == Received {
		method = MethodConsume
	}
	c.report(StatusOK, method, fl.lineTs, fl.lineTs)
}
