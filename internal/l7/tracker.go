package l7

import (
	"sync/atomic"
)

// TrackerOptions bound a Tracker's memory.
type TrackerOptions struct {
	// MaxConnections is how many connections the Tracker keeps parser state for; a new one
	// beyond it evicts the least recently active. Default 16384.
	MaxConnections int
	// IdleTimeout forgets a connection with no segment for this long (kernel ns), and a
	// request with no response for this long. Default 5 minutes.
	IdleTimeout uint64
	// Disabled switches protocols off (the per-protocol configuration): their segments are
	// dropped and counted.
	Disabled [protocolCount]bool
}

const (
	defaultMaxConnections = 16384
	defaultIdleTimeout    = uint64(5 * 60 * 1e9)
)

// Stats are a Tracker's self-metrics; every count is cumulative.
type Stats struct {
	Segments        uint64 // segments fed
	Requests        uint64 // requests and messages reported
	DecodeErrors    uint64 // malformed digests
	Disabled        uint64 // segments of a switched-off protocol
	FalsePositives  uint64 // connections whose first message the full parser rejected
	ProtocolChanges uint64 // connections the kernel re-detected as another protocol
	Gaps            uint64 // bytes missing from a flow (ring buffer full, suppressed transfer)
	LostSync        uint64 // times a flow's message boundaries were lost (then re-found heuristically)
	HPACKResets     uint64 // HTTP/2 header decoders reset after missing header blocks
	Unanswered      uint64 // requests dropped without a response: timed out, evicted, or answered in unseen bytes
	Unmatched       uint64 // responses that matched no pending request
	Unsupported     uint64 // requests a parser cannot report (compressed, quiet memcached commands, ...)
	Evicted         uint64 // connections dropped to stay under MaxConnections
}

// Tracker turns segments into requests: it keeps the per-connection parser state (message
// framing per flow, pending requests, HTTP/2 header tables) and reports every completed
// request to its callback. Feed, Close and Expire must be called from one goroutine; Stats
// may be called from any.
type Tracker struct {
	opts  TrackerOptions
	emit  func(*Request)
	conns map[uint64]*Conn
	// lru is a doubly linked list of conns, most recently fed first.
	lruHead *Conn
	free    [protocolCount][]*Conn
	req     Request
	// ch is the chunk being parsed; a field, not a local: the parsers are called through an
	// interface, which would move a local to the heap for every segment.
	ch chunk

	segments, requests, decodeErrors, disabled, falsePositives, protocolChanges atomic.Uint64
	gaps, lostSync, hpackResets, unanswered, unmatched, unsupported, evicted    atomic.Uint64
}

// NewTracker returns a Tracker calling emit for every completed request. emit must not
// keep the *Request.
func NewTracker(opts TrackerOptions, emit func(*Request)) *Tracker {
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = defaultMaxConnections
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = defaultIdleTimeout
	}
	return &Tracker{opts: opts, emit: emit, conns: map[uint64]*Conn{}}
}

// Stats returns the self-metrics.
func (t *Tracker) Stats() Stats {
	return Stats{
		Segments: t.segments.Load(), Requests: t.requests.Load(), DecodeErrors: t.decodeErrors.Load(),
		Disabled: t.disabled.Load(), FalsePositives: t.falsePositives.Load(),
		ProtocolChanges: t.protocolChanges.Load(), Gaps: t.gaps.Load(), LostSync: t.lostSync.Load(),
		HPACKResets: t.hpackResets.Load(), Unanswered: t.unanswered.Load(), Unmatched: t.unmatched.Load(),
		Unsupported: t.unsupported.Load(), Evicted: t.evicted.Load(),
	}
}

// Connections returns how many connections the Tracker holds state for.
func (t *Tracker) Connections() int { return len(t.conns) }

// Conn is the parser state of one connection.
type Conn struct {
	t        *Tracker
	sock     uint64
	protocol Protocol
	role     Role
	udp      bool
	lastSeen uint64
	// verdict: 0 undecided, 1 confirmed by the parser, 2 rejected (a false positive)
	verdict uint8

	// the segment being fed, for the requests it completes
	pid      uint32
	cgroupID uint64

	prev, next *Conn

	p parser
}

// parser is one protocol's state machine over a connection's chunks.
type parser interface {
	// reset drops all state: a new connection begins.
	reset()
	// feed reads one chunk of flow f that arrived at ts.
	feed(c *Conn, f Flow, ts uint64, ch *chunk)
	// expire drops requests pending since before deadline.
	expire(c *Conn, deadline uint64)
}

func newParser(p Protocol) parser {
	switch p {
	case ProtocolHTTP:
		return &http1Parser{}
	case ProtocolHTTP2:
		return &http2Parser{}
	case ProtocolPostgres:
		return &postgresParser{}
	case ProtocolMySQL:
		return &mysqlParser{}
	case ProtocolRedis:
		return &redisParser{}
	case ProtocolMemcached:
		return &memcachedParser{}
	case ProtocolMongo:
		return &mongoParser{}
	case ProtocolKafka:
		return &kafkaParser{}
	case ProtocolCassandra:
		return &cassandraParser{}
	case ProtocolDNS:
		return &dnsParser{}
	case ProtocolClickHouse:
		return &clickhouseParser{}
	case ProtocolZooKeeper:
		return &zookeeperParser{}
	case ProtocolRabbitMQ:
		return &amqpParser{}
	case ProtocolNATS:
		return &natsParser{}
	}
	return nil
}

// Feed applies one segment; a FlagClosed record closes its connection (Close).
func (t *Tracker) Feed(s *Segment) {
	if s.Flags&FlagClosed != 0 {
		t.Close(s.Sock)
		return
	}
	t.segments.Add(1)
	if !s.Protocol.Valid() {
		return
	}
	if t.opts.Disabled[s.Protocol] {
		t.disabled.Add(1)
		return
	}
	c := t.conns[s.Sock]
	if c != nil && (c.protocol != s.Protocol || s.Flags&FlagNew != 0) {
		if c.protocol != s.Protocol {
			t.protocolChanges.Add(1)
		}
		t.release(c) // a new connection at a reused socket address, or re-detected
		c = nil
	}
	if c == nil {
		c = t.acquire(s)
	} else {
		t.touch(c)
	}
	c.lastSeen = s.Timestamp
	if c.verdict == verdictRejected {
		return
	}
	c.pid, c.cgroupID = s.PID, s.CgroupID
	f := s.Flow()
	it := s.chunks()
	for it.next(&t.ch) {
		c.p.feed(c, f, s.Timestamp, &t.ch)
		if c.verdict == verdictRejected {
			return
		}
	}
	if it.err != nil {
		t.decodeErrors.Add(1)
	}
	if s.Flags&FlagTruncated != 0 {
		t.gaps.Add(1) // the parser sees the missing frames as a gap at the next entry
	}
}

// Close forgets a connection (its TCP close was seen).
func (t *Tracker) Close(sock uint64) {
	if c := t.conns[sock]; c != nil {
		t.release(c)
	}
}

// Expire forgets connections idle since before now-IdleTimeout and drops requests that
// waited that long for a response. now is kernel CLOCK_MONOTONIC ns.
func (t *Tracker) Expire(now uint64) {
	if now < t.opts.IdleTimeout {
		return
	}
	deadline := now - t.opts.IdleTimeout
	for _, c := range t.conns {
		if c.lastSeen < deadline {
			t.release(c)
			continue
		}
		c.p.expire(c, deadline)
	}
}

const (
	verdictUndecided uint8 = 0
	verdictConfirmed uint8 = 1
	verdictRejected  uint8 = 2
)

// confirm records that the parser accepted the connection's first message.
func (c *Conn) confirm() {
	if c.verdict == verdictUndecided {
		c.verdict = verdictConfirmed
	}
}

// reject drops a connection the kernel took for c.protocol but the parser does not accept.
// Only undecided connections are rejected: a confirmed one that later fails to parse lost
// its message boundaries instead (counted in LostSync by the parser).
func (c *Conn) reject() bool {
	if c.verdict != verdictUndecided {
		return false
	}
	c.verdict = verdictRejected
	c.t.falsePositives.Add(1)
	return true
}

// report passes one completed request to the Tracker's callback. A response whose first
// byte came before its request's is not the answer to it (out-of-order input): dropped.
func (c *Conn) report(status Status, method Method, start, end uint64) {
	if end < start {
		c.t.unmatched.Add(1)
		return
	}
	c.confirm()
	r := &c.t.req
	*r = Request{
		Protocol: c.protocol, Role: c.role, Status: status, Method: method,
		Start: start, End: end, Sock: c.sock, PID: c.pid, CgroupID: c.cgroupID,
	}
	c.t.requests.Add(1)
	c.t.emit(r)
}

func (c *Conn) reportDNS(info *DNSInfo, start, end uint64) {
	if end < start {
		c.t.unmatched.Add(1)
		return
	}
	c.confirm()
	r := &c.t.req
	*r = Request{
		Protocol: ProtocolDNS, Role: c.role, Status: DNSStatus(info.Rcode),
		Start: start, End: end, Sock: c.sock, PID: c.pid, CgroupID: c.cgroupID, DNS: info,
	}
	c.t.requests.Add(1)
	c.t.emit(r)
}

func (t *Tracker) acquire(s *Segment) *Conn {
	if len(t.conns) >= t.opts.MaxConnections {
		// evict the least recently fed: the tail of the list
		last := t.lruHead
		if last != nil {
			last = last.prev // the list is circular: head.prev is the tail
			t.release(last)
			t.evicted.Add(1)
		}
	}
	var c *Conn
	if fl := t.free[s.Protocol]; len(fl) > 0 {
		c = fl[len(fl)-1]
		t.free[s.Protocol] = fl[:len(fl)-1]
	} else {
		c = &Conn{p: newParser(s.Protocol)}
	}
	c.t, c.sock, c.protocol, c.role, c.udp = t, s.Sock, s.Protocol, s.Role(), s.Flags&FlagUDP != 0
	c.verdict = verdictUndecided
	c.p.reset()
	t.conns[s.Sock] = c
	t.pushFront(c)
	return c
}

func (t *Tracker) release(c *Conn) {
	c.p.expire(c, ^uint64(0)) // whatever is pending will not be answered
	delete(t.conns, c.sock)
	t.unlink(c)
	if len(t.free[c.protocol]) < 64 {
		t.free[c.protocol] = append(t.free[c.protocol], c)
	}
}

func (t *Tracker) pushFront(c *Conn) {
	if t.lruHead == nil {
		c.prev, c.next = c, c
	} else {
		h := t.lruHead
		c.next, c.prev = h, h.prev
		h.prev.next = c
		h.prev = c
	}
	t.lruHead = c
}

func (t *Tracker) unlink(c *Conn) {
	if c.next == c {
		t.lruHead = nil
	} else {
		c.prev.next = c.next
		c.next.prev = c.prev
		if t.lruHead == c {
			t.lruHead = c.next
		}
	}
	c.prev, c.next = nil, nil
}

func (t *Tracker) touch(c *Conn) {
	if t.lruHead == c {
		return
	}
	t.unlink(c)
	t.pushFront(c)
}
