package l7

// MySQL and MariaDB client/server protocol: every packet is a 3-byte little-endian payload
// length, a sequence id and the payload. A command is a packet with sequence id 0 sent by
// the client; its response starts with the server's packet of sequence id 1, whose first
// byte is 0x00 (OK, or COM_STMT_PREPARE_OK), 0xFE (EOF), 0xFF (ERR) or a result set's
// column count. COM_QUERY, COM_STMT_PREPARE and COM_STMT_EXECUTE are counted; ERR fails.
// COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA and COM_QUIT get no response. The handshake
// (server greeting with sequence id 0, client reply with sequence id 1) matches no command.

type mysqlParser struct {
	framedParser
}

const (
	mysqlHeaderSize   = 4
	mysqlComQuit      = 0x01
	mysqlComQuery     = 0x03
	mysqlComPrepare   = 0x16
	mysqlComExecute   = 0x17
	mysqlComLongData  = 0x18
	mysqlComStmtClose = 0x19
	mysqlMaxCommand   = 0x20
	mysqlRespERR      = 0xFF
	mysqlMaxPacket    = 1<<24 - 1
)

func (p *mysqlParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	p.flows[f].feed(c, f, ts, ch, mysqlHeaderSize, p)
}

func (p *mysqlParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	n := uint64(hdr[0]) | uint64(hdr[1])<<8 | uint64(hdr[2])<<16
	return mysqlHeaderSize + n, true
}

func (p *mysqlParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < 5 {
		return false
	}
	if f == c.role.requestFlow() {
		return d[3] == 0 && d[4] < mysqlMaxCommand && d[0]|d[1]|d[2] != 0
	}
	return d[3] == 1 && p.pending.len() > 0
}

func (p *mysqlParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	if len(d) < 5 {
		return
	}
	seq := d[3]
	if f == c.role.requestFlow() {
		if seq != 0 {
			return // handshake reply, auth switch data, or a continuation of a 16 MiB packet
		}
		cmd := d[4]
		if cmd >= mysqlMaxCommand {
			p.flows[f].lose(c, true)
			return
		}
		c.confirm()
		switch cmd {
		case mysqlComQuit, mysqlComLongData, mysqlComStmtClose:
			return // no response
		}
		p.pending.push(c, pendingReq{start: ts, kind: uint16(cmd)})
		return
	}
	if seq != 1 {
		return // the rest of a response, or the server greeting
	}
	r, ok := p.pending.pop()
	if !ok {
		return // a sequence id that wrapped around inside a long result set
	}
	switch r.kind {
	case mysqlComQuery, mysqlComPrepare, mysqlComExecute:
	default:
		return // COM_PING, COM_INIT_DB, ...: answered, not counted
	}
	status := StatusOK
	if d[4] == mysqlRespERR {
		status = StatusFailed
	}
	c.report(status, MethodNone, r.start, ts)
}
