package l7

import (
	"bytes"
	"encoding/binary"
)

// Protocol detection: the kernel side's guess of which protocol a connection speaks, from
// the first bytes of one syscall. These functions are its reference: each reads only the
// bytes at the offsets its comment names (b is the captured prefix, total the syscall's
// length), loops are bounded by constants, nothing allocates, so each ports to BPF C as it
// is. The user-space parsers re-validate every guess with the full message and drop false
// positives (Stats.FalsePositives).
//
// The kernel runs the detectors on a connection's syscalls until one matches (at most
// DetectAttempts syscalls per flow), in DetectionOrder: unambiguous prefixes first, the
// weaker binary checks last, so that a stronger signature wins when two would match.

// DetectAttempts bounds the syscalls per connection the kernel inspects before it stops
// trying (the connection is then left alone).
const DetectAttempts = 8

// Detection is a detector's verdict: the protocol and the traced process's role.
type Detection struct {
	Protocol Protocol
	Role     Role
}

// detector recognises a message of one protocol in flow f.
type detector struct {
	protocol Protocol
	// request recognises a request (the flow carrying it gives the role); response, if set,
	// a message only the server sends first (a greeting), read by the client.
	request  func(b []byte, total uint32) bool
	response func(b []byte, total uint32) bool
}

// DetectionOrder lists the protocols in the order the kernel tries them. DNS is tried only
// on port 53 (Detect's dnsPort argument).
var DetectionOrder = []Protocol{
	ProtocolHTTP2, ProtocolHTTP, ProtocolPostgres, ProtocolRabbitMQ, ProtocolNATS,
	ProtocolClickHouse, ProtocolMemcached, ProtocolRedis, ProtocolMySQL, ProtocolMongo,
	ProtocolCassandra, ProtocolKafka, ProtocolZooKeeper,
}

var detectors = map[Protocol]detector{
	ProtocolHTTP2:      {ProtocolHTTP2, DetectHTTP2Preface, nil},
	ProtocolHTTP:       {ProtocolHTTP, DetectHTTP1Request, DetectHTTP1Response},
	ProtocolPostgres:   {ProtocolPostgres, DetectPostgres, nil},
	ProtocolRabbitMQ:   {ProtocolRabbitMQ, DetectAMQP, nil},
	ProtocolNATS:       {ProtocolNATS, DetectNATSClient, DetectNATSServer},
	ProtocolClickHouse: {ProtocolClickHouse, DetectClickHouse, nil},
	ProtocolMemcached:  {ProtocolMemcached, DetectMemcached, nil},
	ProtocolRedis:      {ProtocolRedis, DetectRedis, nil},
	ProtocolMySQL:      {ProtocolMySQL, DetectMySQLCommand, DetectMySQLGreeting},
	ProtocolMongo:      {ProtocolMongo, DetectMongo, nil},
	ProtocolCassandra:  {ProtocolCassandra, DetectCassandra, nil},
	ProtocolKafka:      {ProtocolKafka, DetectKafka, nil},
	ProtocolZooKeeper:  {ProtocolZooKeeper, DetectZooKeeper, nil},
}

// Detect returns the protocol of the message that starts b, moved by a syscall of total
// bytes in flow f. dnsPort says the socket's local or peer port is 53; udp that it is a
// datagram socket (only DNS is detected on those).
func Detect(f Flow, b []byte, total uint32, udp, dnsPort bool) (Detection, bool) {
	if dnsPort {
		if DetectDNSQuery(b, total, !udp) {
			return Detection{ProtocolDNS, roleOfRequest(f)}, true
		}
	}
	if udp {
		return Detection{}, false
	}
	for _, p := range DetectionOrder {
		d := detectors[p]
		if d.request(b, total) {
			return Detection{p, roleOfRequest(f)}, true
		}
		if d.response != nil && d.response(b, total) {
			role := RoleClient
			if f == Sent {
				role = RoleServer
			}
			return Detection{p, role}, true
		}
	}
	return Detection{}, false
}

// roleOfRequest: a request sent is a client's, a request received a server's.
func roleOfRequest(f Flow) Role {
	if f == Sent {
		return RoleClient
	}
	return RoleServer
}

// DetectHTTP2Preface reads bytes 0..23: the client connection preface, or its first line
// "PRI * HTTP/2.0" alone and as much of the rest as the syscall moved (Go's net/http server
// reads those 14 bytes first when it serves unencrypted HTTP/2).
func DetectHTTP2Preface(b []byte, total uint32) bool {
	n := min(len(b), len(h2Preface))
	return n >= h2PrefaceLine && string(b[:n]) == h2Preface[:n]
}

// h2PrefaceLine is the length of the preface's first line, "PRI * HTTP/2.0".
const h2PrefaceLine = 14

// DetectHTTP1Request reads bytes 0..8: a method, a space and the first byte of the target.
func DetectHTTP1Request(b []byte, total uint32) bool { return httpMethod(b[:min(len(b), 9)]) != 0 }

// DetectHTTP1Response reads bytes 0..12: "HTTP/1.x NNN". A response detected on a read
// makes the reader the client (mid-stream detection of keep-alive connections).
func DetectHTTP1Response(b []byte, total uint32) bool {
	if len(b) < 13 || string(b[:7]) != "HTTP/1." || b[8] != ' ' || b[12] != ' ' && b[12] != '\r' {
		return false
	}
	for _, c := range b[9:12] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return b[9] >= '1' && b[9] <= '5'
}

// DetectPostgres reads bytes 0..7 and, for a 'Q', the last byte of the syscall (total-1,
// read from the syscall's buffer when beyond the capture): a StartupMessage (length,
// protocol 3.0), an SSLRequest or GSSENCRequest, a simple query 'Q' that fills the syscall
// and ends with NUL, or a Parse 'P' whose length fits the syscall.
func DetectPostgres(b []byte, total uint32) bool {
	if len(b) < 8 {
		return false
	}
	n := binary.BigEndian.Uint32(b)
	code := binary.BigEndian.Uint32(b[4:])
	if n == total && n >= 8 && n <= 10000 && (code == pgProtocol3 || code == pgSSLRequest || code == pgGSSENCRequest) {
		return true
	}
	l := binary.BigEndian.Uint32(b[1:])
	switch b[0] {
	case 'Q':
		if l < 5 || l+1 != total {
			return false
		}
		if int(total) <= len(b) {
			return b[total-1] == 0
		}
		return true // the kernel reads the last byte from the syscall's buffer
	case 'P':
		return l >= 8 && l < total && b[5] < 0x80 // statement name: a NUL-terminated string
	}
	return false
}

// DetectAMQP reads bytes 0..7: the AMQP 0-9-1 protocol header.
func DetectAMQP(b []byte, total uint32) bool {
	return len(b) >= 8 && bytes.Equal(b[:8], amqpProtocolHeader)
}

// DetectNATSClient reads bytes 0..8: "CONNECT {", or "PUB "/"HPUB " and a subject byte.
func DetectNATSClient(b []byte, total uint32) bool {
	switch {
	case len(b) >= 9 && string(b[:9]) == "CONNECT {":
		return true
	case len(b) >= 5 && string(b[:4]) == "PUB " && b[4] > ' ':
		return true
	case len(b) >= 6 && string(b[:5]) == "HPUB " && b[5] > ' ':
		return true
	}
	return false
}

// DetectNATSServer reads bytes 0..5: the server's "INFO {" greeting, or "MSG " and a
// subject byte.
func DetectNATSServer(b []byte, total uint32) bool {
	switch {
	case len(b) >= 6 && string(b[:6]) == "INFO {":
		return true
	case len(b) >= 5 && string(b[:4]) == "MSG " && b[4] > ' ':
		return true
	}
	return false
}

// DetectClickHouse reads at most 66 bytes (a Hello's client name) or 260 (a Query's query
// id and client info, four strings of at most 64 bytes): see clickhouseHello and
// clickhouseQuery.
func DetectClickHouse(b []byte, total uint32) bool {
	if len(b) < 2 {
		return false
	}
	switch b[0] {
	case chClientHello:
		return clickhouseHello(b)
	case chClientQuery:
		return clickhouseQuery(b)
	}
	return false
}

var memcachedCommands = [...]string{
	"get ", "gets ", "gat ", "gats ", "set ", "add ", "replace ", "append ", "prepend ", "cas ",
	"delete ", "incr ", "decr ", "touch ", "mg ", "ms ", "md ", "ma ", "mn\r\n", "version\r\n", "stats\r\n", "stats ",
}

// DetectMemcached reads bytes 0..9: a command word followed by a space (or CR LF), then a
// key byte.
func DetectMemcached(b []byte, total uint32) bool {
	for _, c := range memcachedCommands {
		if len(b) >= len(c) && string(b[:len(c)]) == c {
			if c[len(c)-1] == '\n' {
				return true
			}
			return len(b) > len(c) && b[len(c)] > ' ' && b[len(c)] < 0x7f
		}
	}
	return false
}

// DetectRedis reads at most 14 bytes: "*<1-3 digits>\r\n$<1-5 digits>\r\n" and the first
// byte of the command name, a letter.
func DetectRedis(b []byte, total uint32) bool {
	i := 0
	if len(b) < 8 || b[0] != '*' {
		return false
	}
	i = 1
	n := 0
	for ; i < 4 && i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n++
	}
	if n == 0 || i+1 >= len(b) || b[i] != '\r' || b[i+1] != '\n' {
		return false
	}
	i += 2
	if i >= len(b) || b[i] != '$' {
		return false
	}
	i++
	n = 0
	for j := 0; j < 5 && i < len(b) && b[i] >= '0' && b[i] <= '9'; j++ {
		i++
		n++
	}
	if n == 0 || i+2 >= len(b) || b[i] != '\r' || b[i+1] != '\n' {
		return false
	}
	c := b[i+2]
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// DetectMySQLCommand reads bytes 0..4: a packet of sequence id 0 that fills the syscall and
// holds COM_QUERY, COM_STMT_PREPARE or COM_STMT_EXECUTE.
func DetectMySQLCommand(b []byte, total uint32) bool {
	if len(b) < 5 {
		return false
	}
	n := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	if b[3] != 0 || n+4 != total || n < 1 {
		return false
	}
	switch b[4] {
	case mysqlComQuery, mysqlComPrepare, mysqlComExecute:
		return true
	}
	return false
}

// DetectMySQLGreeting reads bytes 0..6: the server's initial handshake packet (sequence
// id 0, protocol version 10, a version string starting with a digit) filling the syscall.
func DetectMySQLGreeting(b []byte, total uint32) bool {
	if len(b) < 7 {
		return false
	}
	n := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	return b[3] == 0 && n+4 == total && b[4] == 10 && b[5] >= '0' && b[5] <= '9' && b[6] == '.'
}

// DetectMongo reads bytes 0..15: a header whose length fills the syscall, responseTo 0
// and opCode OP_MSG or OP_QUERY (OP_COMPRESSED too).
func DetectMongo(b []byte, total uint32) bool {
	if len(b) < 16 {
		return false
	}
	le := binary.LittleEndian
	n := le.Uint32(b)
	op := le.Uint32(b[12:])
	return n == total && n >= 21 && le.Uint32(b[8:]) == 0 &&
		(op == mongoOpMsg || op == mongoOpQuery || op == mongoOpCompressed)
}

// DetectCassandra reads bytes 0..8: a v3/v4 request frame header (version 3 or 4, flags,
// opcode of a request) whose length fits the syscall; or, for v5, bytes 0..14: a segment
// header with a valid CRC24 followed by a v5 request envelope header.
func DetectCassandra(b []byte, total uint32) bool {
	if len(b) < cqlHeaderSize {
		return false
	}
	if (b[0] == 3 || b[0] == 4) && cqlFrameValid(b, true) {
		return cqlHeaderSize+binary.BigEndian.Uint32(b[5:]) <= total
	}
	if n, _, ok := cqlSegmentHeader(b); ok && len(b) >= cqlSegHeaderSize+cqlHeaderSize {
		env := b[cqlSegHeaderSize:]
		return env[0] == 5 && cqlFrameValid(env, true) && cqlSegHeaderSize+n+4 <= total
	}
	return false
}

// DetectKafka reads bytes 0..13 and the client id (at most 64 bytes from byte 14): a size
// that fills the syscall, an API key and version in range, a non-negative correlation id,
// and a printable client id of 1 to 64 bytes (a null one only for ApiVersions). The client
// id rules out ZooKeeper, whose requests (xid, type, path length) read as API key 0 with a
// zero-length client id.
func DetectKafka(b []byte, total uint32) bool {
	if len(b) < 14 {
		return false
	}
	n := binary.BigEndian.Uint32(b)
	if n+4 != total || n < 10 || !kafkaRequestHeaderValid(b) {
		return false
	}
	l := int16(binary.BigEndian.Uint16(b[12:]))
	if l == -1 {
		return binary.BigEndian.Uint16(b[4:]) == kafkaAPIVersions
	}
	if l < 1 || l > 64 || len(b) < 14+int(l) {
		return false
	}
	for _, c := range b[14 : 14+int(l)] {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// DetectZooKeeper reads bytes 0..16: a size that fills the syscall, then a ConnectRequest
// (size 44 or 45, protocol version 0), a ping (xid -2, type 11), or a request of a known
// type whose path (length int32, then '/') follows.
func DetectZooKeeper(b []byte, total uint32) bool {
	if len(b) < 12 {
		return false
	}
	be := binary.BigEndian
	n := be.Uint32(b)
	if n+4 != total {
		return false
	}
	if (n == zkConnectReqLen || n == zkConnectReqLen+1) && be.Uint32(b[4:]) == 0 {
		return true
	}
	xid := be.Uint32(b[4:])
	op := int32(be.Uint32(b[8:]))
	if xid == zkPingXid && op == 11 && n == 8 {
		return true
	}
	if len(b) < 17 || !zkKnownOp(op) || int32(xid) < 0 {
		return false
	}
	pl := be.Uint32(b[12:])
	return pl >= 1 && pl <= 1024 && b[16] == '/'
}

// DetectDNSQuery reads bytes 0..12 (UDP) or 0..14 (TCP: after the 2-byte length): a
// standard query header with one question, and the question's first label length (1..63,
// or 0 for the root).
func DetectDNSQuery(b []byte, total uint32, tcp bool) bool {
	if tcp {
		if len(b) < 2 || uint32(binary.BigEndian.Uint16(b))+2 != total {
			return false
		}
		b = b[2:]
	}
	if len(b) <= dnsHeaderSize || !dnsQueryValid(b) {
		return false
	}
	return b[dnsHeaderSize] <= 63
}
