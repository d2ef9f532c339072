package l7

import (
	"testing"
)

// detectCase is one detector fixture: the bytes of one syscall and the verdict.
type detectCase struct {
	name     string
	flow     Flow
	data     string
	udp, dns bool
	want     Protocol
	role     Role
}

// detectCases are the fixtures of TestDetect, shared with the test of the kernel's port.
func detectCases() []detectCase {
	return []detectCase{
		{"HTTP/2 preface", Sent, h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00", false, false, ProtocolHTTP2, RoleClient},
		{"HTTP/2 preface's first line read alone", Received, "PRI * HTTP/2.0", false, false, ProtocolHTTP2, RoleServer},
		{"HTTP/2 preface cut", Received, "PRI * HTTP/2.0\r\n\r\nS", false, false, ProtocolHTTP2, RoleServer},
		{"not a preface", Received, "PRI * HTTP/2.1", false, false, ProtocolUnknown, 0},
		{"HTTP/1 request sent", Sent, getReq, false, false, ProtocolHTTP, RoleClient},
		{"HTTP/1 request received", Received, postReq("x"), false, false, ProtocolHTTP, RoleServer},
		{"HTTP/1 response received", Received, ok200, false, false, ProtocolHTTP, RoleClient},
		{"Postgres startup", Sent, pgStartup(), false, false, ProtocolPostgres, RoleClient},
		{"Postgres simple query", Received, pg('Q', "SELECT 1\x00"), false, false, ProtocolPostgres, RoleServer},
		{"Postgres parse", Sent, pgExtended("SELECT $1"), false, false, ProtocolPostgres, RoleClient},
		{"AMQP header", Sent, "AMQP\x00\x00\x09\x01", false, false, ProtocolRabbitMQ, RoleClient},
		{"NATS connect", Sent, `CONNECT {"verbose":false}` + "\r\n", false, false, ProtocolNATS, RoleClient},
		{"NATS INFO received", Received, `INFO {"server_id":"x"}` + "\r\n", false, false, ProtocolNATS, RoleClient},
		{"NATS PUB", Sent, "PUB a 1\r\nx\r\n", false, false, ProtocolNATS, RoleClient},
		{"ClickHouse hello", Sent, chHello(), false, false, ProtocolClickHouse, RoleClient},
		{"ClickHouse query", Received, chQuery("", "SELECT 1"), false, false, ProtocolClickHouse, RoleServer},
		{"Memcached get", Sent, "get k\r\n", false, false, ProtocolMemcached, RoleClient},
		{"Memcached set", Received, "set k 0 0 1\r\nx\r\n", false, false, ProtocolMemcached, RoleServer},
		{"Redis command", Sent, resp("GET", "k"), false, false, ProtocolRedis, RoleClient},
		{"MySQL query", Sent, my(0, "\x03SELECT 1"), false, false, ProtocolMySQL, RoleClient},
		{"MySQL greeting received", Received, myGreeting, false, false, ProtocolMySQL, RoleClient},
		{"Mongo OP_MSG", Sent, mongoMsg(1, 0, 0, bsonDoc(bsonInt32("ping", 1))), false, false, ProtocolMongo, RoleClient},
		{"Cassandra v4 query", Sent, cql(4, 0, 1, cqlOpQuery, be32(8)+"SELECT 1"+be16(1)+"\x00"), false, false, ProtocolCassandra, RoleClient},
		{"Cassandra v5 segment", Sent, cqlSegment(cql(5, 0, 1, cqlOpQuery, be32(8)+"SELECT 1"+be16(1)+"\x00"), true), false, false, ProtocolCassandra, RoleClient},
		{"Kafka request", Sent, kafkaRequest(3, 9, 1, true, "\x01\x00"), false, false, ProtocolKafka, RoleClient},
		{"Kafka ApiVersions with a null client id", Sent, be32(10) + be16(18) + be16(0) + be32(1) + be16(0xffff), false, false, ProtocolKafka, RoleClient},
		{"ZooKeeper connect", Sent, be32(44) + be32(0) + string(make([]byte, 40)), false, false, ProtocolZooKeeper, RoleClient},
		{"ZooKeeper getData", Received, zkReq(3, 4, be32(2)+"/a\x00"), false, false, ProtocolZooKeeper, RoleServer},
		{"ZooKeeper ping", Sent, zkReq(zkPingXid, 11, ""), false, false, ProtocolZooKeeper, RoleClient},
		{"DNS over UDP", Sent, dnsQuery(1, "example.com", 1), true, true, ProtocolDNS, RoleClient},
		{"DNS over TCP received", Received, tcpDNS(dnsQuery(1, "example.com", 1)), false, true, ProtocolDNS, RoleServer},
		// negatives
		{"DNS query on another port", Sent, dnsQuery(1, "example.com", 1), true, false, ProtocolUnknown, 0},
		{"TLS client hello", Sent, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", false, false, ProtocolUnknown, 0},
		{"SSH banner", Received, "SSH-2.0-OpenSSH_9.2p1\r\n", false, false, ProtocolUnknown, 0},
		// memcached's "get <key>" shape: the memcached parser rejects it at the HTTP reply
		{"lowercase method is not HTTP", Sent, "get / HTTP/1.1\r\n\r\n", false, false, ProtocolMemcached, RoleClient},
		{"MySQL query not filling the syscall", Sent, my(0, "\x03SELECT 1") + "junk", false, false, ProtocolUnknown, 0},
		{"empty", Sent, "", false, false, ProtocolUnknown, 0},
	}
}

func TestDetect(t *testing.T) {
	for _, tt := range detectCases() {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.data)
			d, ok := Detect(tt.flow, b, uint32(len(b)), tt.udp, tt.dns)
			if d.Protocol != tt.want || (ok && d.Role != tt.role) {
				t.Errorf("got %s/%d, want %s/%d", d.Protocol, d.Role, tt.want, tt.role)
			}
			if ok && tt.want != ProtocolUnknown {
				// the parser accepts what the detector accepted: no false positive counted
				c := newConv(t, tt.want, d.Role)
				c.udp = tt.udp
				c.capture = 4096
				c.syscall(tt.flow, b)
				if _, st := c.run(); st.FalsePositives != 0 {
					t.Errorf("the %s parser rejected its own detection", tt.want)
				}
			}
		})
	}
}

// TestDetectAmbiguities: messages that a weaker detector would also take.
func TestDetectAmbiguities(t *testing.T) {
	// A ZooKeeper getData reads as Kafka API key 0 version 0 (xid 3 → key 0 version 3),
	// correlation id = type; its client id length is the path length's high half (0).
	zk := zkReq(3, 4, be32(5)+"/a/bc\x00")
	if DetectKafka([]byte(zk), uint32(len(zk))) {
		t.Error("Kafka detector took a ZooKeeper request")
	}
	// A Kafka request with client id "kgo" is not a ZooKeeper request: no '/' at byte 16.
	k := kafkaRequest(0, 3, 4, false, be16(0xffff)+be16(1)+be32(1000))
	if DetectZooKeeper([]byte(k), uint32(len(k))) {
		t.Error("ZooKeeper detector took a Kafka request")
	}
	// A MySQL COM_QUERY's 3-byte little-endian length reads as a huge Kafka size.
	m := my(0, "\x03SELECT 1")
	if DetectKafka([]byte(m), uint32(len(m))) || DetectZooKeeper([]byte(m), uint32(len(m))) || DetectMongo([]byte(m), uint32(len(m))) {
		t.Error("a binary detector took a MySQL command")
	}
	// "stats\r\n" is memcached; Redis' inline "PING\r\n" is not detected (NATS has PING too).
	if DetectRedis([]byte("PING\r\n"), 6) || DetectMemcached([]byte("PING\r\n"), 6) {
		t.Error("an inline PING was taken")
	}
}

// TestDetectorsReadOnlyTheirPrefix: each detector decides from the bytes its comment names.
func TestDetectorsReadOnlyTheirPrefix(t *testing.T) {
	tests := []struct {
		n    int
		data string
		fn   func([]byte, uint32) bool
	}{
		{24, h2Preface + "garbage", DetectHTTP2Preface},
		{9, getReq, DetectHTTP1Request},
		{13, ok200, DetectHTTP1Response},
		{8, pgStartup(), DetectPostgres},
		{8, "AMQP\x00\x00\x09\x01", DetectAMQP},
		{9, "CONNECT {}\r\n", DetectNATSClient},
		{10, "set k 0 0 1\r\nx\r\n", DetectMemcached},
		{14, resp("GET", "k"), DetectRedis},
		{5, my(0, "\x03SELECT 1"), DetectMySQLCommand},
		{16, mongoMsg(1, 0, 0, bsonDoc(bsonInt32("ping", 1))), DetectMongo},
		{9, cql(4, 0, 1, cqlOpQuery, be32(1)+"x"+be16(1)+"\x00"), DetectCassandra},
		{14 + len("franz-go"), kafkaRequest(3, 9, 1, true, "\x01\x00"), DetectKafka},
		{17, zkReq(3, 4, be32(2)+"/a\x00"), DetectZooKeeper},
	}
	for _, tt := range tests {
		b := []byte(tt.data)
		if !tt.fn(b[:tt.n], uint32(len(b))) {
			t.Errorf("%q: not detected from its first %d bytes", tt.data[:min(20, len(tt.data))], tt.n)
		}
	}
}

func FuzzDetect(f *testing.F) {
	f.Add([]byte(getReq), uint8(0))
	f.Add([]byte(zkReq(3, 4, be32(2)+"/a\x00")), uint8(1))
	f.Add([]byte(dnsQuery(1, "a.b", 1)), uint8(6))
	f.Fuzz(func(t *testing.T, b []byte, ctl uint8) {
		total := uint32(len(b)) + uint32(ctl>>3)
		d, ok := Detect(Flow(ctl&1), b, total, ctl&2 != 0, ctl&4 != 0)
		if ok != d.Protocol.Valid() {
			t.Fatalf("ok %v for %v", ok, d)
		}
	})
}

func BenchmarkDetect(b *testing.B) {
	inputs := [][]byte{[]byte(getReq), []byte(zkReq(3, 4, be32(2)+"/a\x00")), []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := inputs[i%len(inputs)]
		Detect(Sent, in, uint32(len(in)), false, false)
	}
}
