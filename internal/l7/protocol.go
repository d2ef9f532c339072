package l7

import (
	"strconv"
	"time"
)

// Protocol is an application protocol. Values mirror L7_PROTO_* of the kernel side
// (CONTRACT.md); 0 means not detected.
type Protocol uint8

// The protocols.
const (
	ProtocolUnknown    Protocol = 0
	ProtocolHTTP       Protocol = 1 // HTTP/1.0 and HTTP/1.1
	ProtocolHTTP2      Protocol = 2 // HTTP/2 with prior knowledge (h2c), gRPC included
	ProtocolPostgres   Protocol = 3
	ProtocolMySQL      Protocol = 4 // MySQL and MariaDB
	ProtocolRedis      Protocol = 5
	ProtocolMemcached  Protocol = 6 // text protocol, meta commands included
	ProtocolMongo      Protocol = 7
	ProtocolKafka      Protocol = 8
	ProtocolCassandra  Protocol = 9 // CQL native protocol v3 to v5
	ProtocolDNS        Protocol = 10
	ProtocolClickHouse Protocol = 11 // native TCP protocol
	ProtocolZooKeeper  Protocol = 12
	ProtocolRabbitMQ   Protocol = 13 // AMQP 0-9-1
	ProtocolNATS       Protocol = 14

	protocolCount = 15
)

var protocolNames = [protocolCount]string{
	"unknown", "http", "http2", "postgres", "mysql", "redis", "memcached", "mongo", "kafka",
	"cassandra", "dns", "clickhouse", "zookeeper", "rabbitmq", "nats",
}

func (p Protocol) String() string {
	if p >= protocolCount {
		return "Protocol(" + strconv.Itoa(int(p)) + ")"
	}
	return protocolNames[p]
}

// Valid reports whether p is a known protocol other than ProtocolUnknown.
func (p Protocol) Valid() bool { return p > ProtocolUnknown && p < protocolCount }

// Flow says which way the bytes of a segment moved, seen from the traced process.
type Flow uint8

// The two flows of a connection.
const (
	Sent     Flow = 0 // write, writev, sendto, sendmsg, sendmmsg
	Received Flow = 1 // read, readv, recvfrom, recvmsg
)

func (f Flow) String() string {
	if f == Sent {
		return "sent"
	}
	return "received"
}

// Role is the traced process's side of a connection.
type Role uint8

// The two roles.
const (
	RoleClient Role = 0 // sends requests: outbound metrics
	RoleServer Role = 1 // receives requests: inbound metrics
)

// requestFlow is the flow that carries the traced side's requests (client) or its peer's
// (server).
func (r Role) requestFlow() Flow {
	if r == RoleClient {
		return Sent
	}
	return Received
}

// Method is what a messaging request did. Only RabbitMQ and NATS carry one.
type Method uint8

// The methods coroot labels messages with.
const (
	MethodNone    Method = 0
	MethodProduce Method = 1 // AMQP Basic.Publish, NATS PUB/HPUB
	MethodConsume Method = 2 // AMQP Basic.Deliver/Get-Ok, NATS MSG/HMSG
)

// String returns coroot-node-agent's method label value.
func (m Method) String() string {
	switch m {
	case MethodProduce:
		return "produce"
	case MethodConsume:
		return "consume"
	}
	return ""
}

// Status is the outcome of one request. HTTP statuses are the response code itself,
// gRPC and DNS statuses are offset ranges; Label gives coroot-node-agent's label value.
type Status uint16

// The statuses that are not codes of a protocol.
const (
	StatusUnknown Status = 0
	StatusOK      Status = 1
	StatusFailed  Status = 2

	statusHTTPMin Status = 100 // 100..999: HTTP status code
	statusHTTPMax Status = 999
	statusGRPC    Status = 1000 // 1000+code: gRPC status code (0..255)
	statusDNS     Status = 2000 // 2000+rcode: DNS RCODE (0..15)
)

// HTTPStatus returns the status of an HTTP response code (100..999), or StatusUnknown.
func HTTPStatus(code int) Status {
	if code < int(statusHTTPMin) || code > int(statusHTTPMax) {
		return StatusUnknown
	}
	return Status(code)
}

// GRPCStatus returns the status of a gRPC status code.
func GRPCStatus(code uint8) Status { return statusGRPC + Status(code) }

// DNSStatus returns the status of a DNS RCODE (4 bits).
func DNSStatus(rcode uint8) Status { return statusDNS + Status(rcode&0xf) }

// IsHTTP reports whether s is an HTTP status code, and returns it.
func (s Status) IsHTTP() (int, bool) {
	return int(s), s >= statusHTTPMin && s <= statusHTTPMax
}

// Failed reports whether Coroot's server counts the status as a failure: "failed", HTTP
// 5xx, or a gRPC code other than OK (see coroot.go). DNS statuses are reported as they are.
func (s Status) Failed() bool {
	switch {
	case s == StatusFailed:
		return true
	case s >= 500 && s <= 599:
		return true
	case s > statusGRPC && s < statusGRPC+256:
		return true
	}
	return false
}

// Label returns the value of the status label (coroot-node-agent's vocabulary, see
// coroot.go). It does not allocate. DNS RCODEs coroot has no name for return "".
func (s Status) Label() string {
	switch {
	case s == StatusOK:
		return "ok"
	case s == StatusFailed:
		return "failed"
	case s >= statusHTTPMin && s <= statusHTTPMax:
		return httpLabels[s-statusHTTPMin]
	case s >= statusGRPC && s < statusGRPC+256:
		return grpcLabels[s-statusGRPC]
	case s >= statusDNS && s < statusDNS+16:
		return dnsRcodeLabels[s-statusDNS]
	}
	return "unknown"
}

func (s Status) String() string { return s.Label() }

var httpLabels [statusHTTPMax - statusHTTPMin + 1]string

// grpcCodeNames are google.golang.org/grpc/codes.Code's String values, which coroot puts
// after "grpc:".
var grpcCodeNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
	"OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
}

var grpcLabels [256]string

// dnsRcodeLabels: coroot's names for RCODE 0..5; other codes have none (coroot drops them).
var dnsRcodeLabels = [16]string{"ok", "format_error", "servfail", "nxdomain", "not_implemented", "refused"}

func init() {
	for i := range httpLabels {
		httpLabels[i] = strconv.Itoa(int(statusHTTPMin) + i)
	}
	for i := range grpcLabels {
		if i < len(grpcCodeNames) {
			grpcLabels[i] = "grpc:" + grpcCodeNames[i]
		} else {
			grpcLabels[i] = "grpc:Code(" + strconv.Itoa(i) + ")"
		}
	}
}

// Request is one completed request (or, for RabbitMQ and NATS, one message) as the parsers
// see it. The Tracker passes it to its callback; it is reused for the next request, so the
// callback must copy what it keeps.
type Request struct {
	Protocol Protocol
	Role     Role // RoleServer: measured at the server (inbound metrics)
	Status   Status
	Method   Method
	// Start and End are kernel CLOCK_MONOTONIC nanoseconds: the syscall that carried the
	// request's first byte and the one that carried the response's first byte (for gRPC: its
	// trailers). Equal for messages.
	Start, End uint64
	Sock       uint64 // the connection (socket address, as the TCP tracer keys it)
	PID        uint32 // process of the segment that completed the request
	CgroupID   uint64
	// DNS is set for ProtocolDNS only; valid during the callback.
	DNS *DNSInfo
}

// Duration returns End-Start; zero for messages.
func (r *Request) Duration() time.Duration {
	if r.End <= r.Start {
		return 0
	}
	return time.Duration(r.End - r.Start)
}

// Inbound reports whether the request was measured at the server.
func (r *Request) Inbound() bool { return r.Role == RoleServer }
