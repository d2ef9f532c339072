package l7

import (
	"bytes"
	"encoding/binary"
)

// AMQP 0-9-1 (the AMQP 0-9-1 specification; RabbitMQ): the client opens with the protocol
// header "AMQP\x00\x00\x09\x01", then every frame is type (1 method, 2 content header,
// 3 body, 8 heartbeat), channel uint16, payload size uint32, the payload and the frame-end
// byte 0xCE. A method frame's payload starts with class id and method id. Every
// Basic.Publish (60.40) a client sends is a message produced; every Basic.Deliver (60.60)
// or Basic.Get-Ok (60.71) it receives one consumed: container_rabbitmq_messages_total
// {method} with status ok. The broker's side is not counted (no inbound metric in coroot).

type amqpParser struct {
	flows [2]framing
}

const (
	amqpHeaderSize   = 7
	amqpFrameEnd     = 0xCE
	amqpMaxFrame     = 128 << 20
	amqpClassBasic   = 60
	amqpBasicPublish = 40
	amqpBasicDeliver = 60
	amqpBasicGetOk   = 71
)

var amqpProtocolHeader = []byte("AMQP\x00\x00\x09\x01")

func (p *amqpParser) reset() {
	p.flows[0].reset()
	p.flows[1].reset()
}

func (p *amqpParser) expire(c *Conn, deadline uint64) {}

func (p *amqpParser) feed(c *Conn, f Flow, ts uint64, ch *chunk) {
	if c.role == RoleServer {
		return
	}
	if f == Sent && ch.offset == 0 && len(ch.data) >= 8 && bytes.Equal(ch.data[:8], amqpProtocolHeader) {
		c.confirm()
		fr := &p.flows[f]
		fr.synced, fr.next = true, 8
		if ch.end > 8 {
			fr.feed(c, f, ts, ch, amqpHeaderSize, p)
		}
		return
	}
	p.flows[f].feed(c, f, ts, ch, amqpHeaderSize, p)
}

func amqpFrameType(t byte) bool { return t == 1 || t == 2 || t == 3 || t == 8 }

func (p *amqpParser) frameLength(f Flow, hdr []byte) (uint64, bool) {
	n := binary.BigEndian.Uint32(hdr[3:])
	if !amqpFrameType(hdr[0]) || n > amqpMaxFrame {
		return 0, false
	}
	return amqpHeaderSize + uint64(n) + 1, true
}

func (p *amqpParser) resyncAt(c *Conn, f Flow, d []byte) bool {
	if len(d) < amqpHeaderSize {
		return false
	}
	n, ok := p.frameLength(f, d)
	if !ok {
		return false
	}
	// the frame-end byte, when captured, confirms the boundary
	return n > uint64(len(d)) || d[n-1] == amqpFrameEnd
}

func (p *amqpParser) message(c *Conn, f Flow, ts uint64, d []byte, n uint64) {
	if uint64(len(d)) == n && d[n-1] != amqpFrameEnd {
		p.flows[f].lose(c, true)
		return
	}
	c.confirm()
	if d[0] != 1 || len(d) < amqpHeaderSize+4 {
		return
	}
	class := binary.BigEndian.Uint16(d[7:])
	method := binary.BigEndian.Uint16(d[9:])
	if class != amqpClassBasic {
		return
	}
	switch {
	case f == Sent && method == amqpBasicPublish:
		c.report(StatusOK, MethodProduce, ts, ts)
	case f == Received && (method == amqpBasicDeliver || method == amqpBasicGetOk):
		c.report(StatusOK, MethodConsume, ts, ts)
	}
}
