package l7

import "encoding/binary"

// ZooKeeper client protocol (jute records, zookeeper.jute): every message is an int32
// big-endian length and the record. After the ConnectRequest/ConnectResponse pair (no xid),
// a request starts with xid int32 and type int32, a reply with xid int32, zxid int64 and err
// int32; replies carry their request's xid. Negative xids are not requests of the
// application: -1 watch notifications, -2 pings, -4 auth, -8 set-watches; they are not
// counted. err 0 is ok; the API errors that answer the question (no node, node exists, not
// empty, bad version, no children for ephemerals) are ok too; any other error fails.

type zookeeperParser struct {
	framedParser
	handshake [2]bool // the connect record of the flow is still expected
}

const (
	zkMaxSize       = 64 << 20
	zkConnectReqLen = 44 // protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (4+16); 45 with readOnly
	zkPingXid       = 0xfffffffe
)

// zkKnownOp reports whether t is a request type of the jute protocol (ZooDefs.OpCode).
func zkKnownOp(t int32) bool {
	switch {
	case t >= 1 && t <= 9, t >= 11 && t <= 22, t == 100, t == 101, t == 102, t == 103, t == 104, t == 105, t == 106, t == -11:
		return true
	}
	return false
}

func (p *zookeeperParser) reset() {
	p.framedParser.reset()
	p.handshake = [2]bool{true, true}
}

func (p *zookeeperParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	p.flows[f].feed(c, f, ts, ch, 8, p)
}

func (p *zookeeperParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	n := binary.BigEndian.Uint32(hdr)
	if n < 4 || n > zkMaxSize {
		return 0, false
	}
	return 4 + uint64(n), true
}

func (p *zookeeperParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < 12 {
		return false
	}
	if _, ok := p.frameLength(f, d); !ok {
		return false
	}
	xid := binary.BigEndian.Uint32(d[4:])
	if f == c.role.requestFlow() {
		return zkKnownOp(int32(binary.BigEndian.Uint32(d[8:])))
	}
	return p.pending.has(xid)
}

func (p *zookeeperParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	request := f == c.role.requestFlow()
	if p.handshake[f] {
		p.handshake[f] = false
		// ConnectRequest: length 44 or 45, protocolVersion 0. ConnectResponse: protocolVersion,
		// timeOut, sessionId, passwd; it answers the ConnectRequest seen on the other flow.
		if request && (n == 4+zkConnectReqLen || n == 4+zkConnectReqLen+1) && len(d) >= 8 && binary.BigEndian.Uint32(d[4:]) == 0 {
			p.handshake[1-f] = true
			c.confirm()
			return
		}
		if !request && len(d) >= 8 && binary.BigEndian.Uint32(d[4:]) == 0 && n >= 4+36 && p.pending.len() == 0 {
			return
		}
	}
	if len(d) < 12 {
		return
	}
	xid := binary.BigEndian.Uint32(d[4:])
	if request {
		op := int32(binary.BigEndian.Uint32(d[8:]))
		if !zkKnownOp(op) {
			p.flows[f].lose(c, true)
			return
		}
		c.confirm()
		if int32(xid) < 0 {
			return // ping, auth, set-watches: not counted
		}
		p.pending.push(c, pendingReq{start: ts, id: xid})
		return
	}
	if int32(xid) < 0 {
		return // notification or the answer to a ping
	}
	r, ok := p.pending.take(xid)
	if !ok {
		c.t.unmatched.Add(1)
		return
	}
	status := StatusOK
	if len(d) >= 20 && zkErrFailed(int32(binary.BigEndian.Uint32(d[16:]))) {
		status = StatusFailed
	}
	c.report(status, MethodNone, r.start, ts)
}

// zkErrFailed: KeeperException codes. System errors (-1..-99) and API errors other than
// the answers to the question asked fail.
func zkErrFailed(err int32) bool {
	switch err {
	case 0,
		-101, // NONODE
		-103, // BADVERSION
		-108, // NOCHILDRENFOREPHEMERALS
		-110, // NODEEXISTS
		-111: // NOTEMPTY
		return false
	}
	return true
}
