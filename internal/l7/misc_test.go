package l7

import (
	"strings"
	"testing"
)

// DNS (RFC 1035, section 4)
func dnsQName(name string) string {
	s := ""
	for _, l := range strings.Split(name, ".") {
		s += string([]byte{byte(len(l))}) + l
	}
	return s + "\x00"
}

func dnsQuery(id uint16, name string, qtype uint16) string {
	return be16(id) + be16(0x0100) + be16(1) + be16(0) + be16(0) + be16(1) +
		dnsQName(name) + be16(qtype) + be16(1) + "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" // EDNS OPT
}

// dnsAnswer builds a response; answers are (type, rdata) pairs named by a pointer to the
// question (0xc00c).
func dnsResponse(id uint16, rcode uint8, name string, qtype uint16, answers ...[2]string) string {
	s := be16(id) + be16(0x8180|uint16(rcode)) + be16(1) + be16(uint16(len(answers))) + be16(0) + be16(0) +
		dnsQName(name) + be16(qtype) + be16(1)
	for _, a := range answers {
		s += "\xc0\x0c" + a[0] + be16(1) + be32(300) + be16(uint16(len(a[1]))) + a[1]
	}
	return s
}

func aRR(ip string) [2]string {
	a := mustAddr(ip)
	if a.Is4() {
		b := a.As4()
		return [2]string{be16(1), string(b[:])}
	}
	b := a.As16()
	return [2]string{be16(28), string(b[:])}
}

func cnameRR(target string) [2]string { return [2]string{be16(5), dnsQName(target)} }

func tcpDNS(m string) string { return be16(uint16(len(m))) + m }

func TestDNS(t *testing.T) {
	udp := func(role Role) *conv {
		c := newConv(t, ProtocolDNS, role)
		c.udp = true
		return c
	}
	runConvCases(t, []convCase{
		{"UDP client: A, AAAA, NXDOMAIN, out of order", func() *conv {
			return udp(RoleClient).
				at(0).write(dnsQuery(0x1111, "Api.Example.COM", 1)).at(0.5).write(dnsQuery(0x2222, "api.example.com", 28)).
				at(2).read(dnsResponse(0x2222, 0, "api.example.com", 28, aRR("2001:db8::1"))).
				at(3).read(dnsResponse(0x1111, 0, "api.example.com", 1, cnameRR("lb.example.net"), aRR("10.0.0.1"), aRR("10.0.0.2"))).
				at(4).write(dnsQuery(0x3333, "nope.example.com", 1)).at(5).read(dnsResponse(0x3333, 3, "nope.example.com", 1))
		}, []got{
			{Status: "ok", Ms: 1.5, DNS: "TypeAAAA api.example.com 2001:db8::1"},
			{Status: "ok", Ms: 3, DNS: "TypeA api.example.com 10.0.0.1,10.0.0.2"},
			{Status: "nxdomain", Ms: 1, DNS: "TypeA nope.example.com "},
		}, nil},
		{"UDP server, servfail and refused", func() *conv {
			return udp(RoleServer).
				at(0).read(dnsQuery(7, "a.b", 16)).at(1).write(dnsResponse(7, 2, "a.b", 16)).
				at(2).read(dnsQuery(8, "c.d", 15)).at(3).write(dnsResponse(8, 5, "c.d", 15))
		}, []got{
			{Status: "servfail", Ms: 1, Server: true, DNS: "TypeTXT a.b "},
			{Status: "refused", Ms: 1, Server: true, DNS: "TypeMX c.d "},
		}, nil},
		{"TCP, two queries in one write, responses split", func() *conv {
			resp := tcpDNS(dnsResponse(1, 0, "x.io", 1, aRR("1.1.1.1"))) + tcpDNS(dnsResponse(2, 0, "y.io", 1, aRR("2.2.2.2")))
			p := splitAt(resp, 1, 30)
			return newConv(t, ProtocolDNS, RoleClient).
				at(0).write(tcpDNS(dnsQuery(1, "x.io", 1)), tcpDNS(dnsQuery(2, "y.io", 1))).
				at(1).read(p[0]).at(2).read(p[1]).at(3).read(p[2])
		}, []got{{Status: "ok", Ms: 1, DNS: "TypeA x.io 1.1.1.1"}, {Status: "ok", Ms: 3, DNS: "TypeA y.io 2.2.2.2"}}, nil},
	})
}

func TestDNSTypeLabel(t *testing.T) {
	for typ, want := range map[uint16]string{1: "TypeA", 28: "TypeAAAA", 65: "TypeHTTPS", 99: "99", 4096: "4096"} {
		if got := DNSTypeLabel(typ); got != want {
			t.Errorf("%d: %q, want %q", typ, got, want)
		}
	}
}

// ClickHouse native protocol packets.
func chStr(s string) string { return string([]byte{byte(len(s))}) + s }

func chHello() string {
	return "\x00" + chStr("ClickHouse client") + "\x18\x08\xd5\xa9\x03" + chStr("default") + chStr("default") + chStr("")
}

func chQuery(id, q string) string {
	return "\x01" + chStr(id) + "\x01" + chStr("") + chStr("") + chStr("0.0.0.0:0") +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x01" + chStr("me") + chStr("host") + chStr("ClickHouse client") +
		"\x18\x08\xd5\xa9\x03" + chStr("") + "\x00\x00\x00\x02\x00" + chStr(q)
}

const (
	chEmptyData = "\x02\x00\x01\x00\x02\xff\xff\xff\xff\x00\x00\x00"
	chDataResp  = "\x01\x00\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x011\x06UInt8\x01"
	chProgress  = "\x03\x01\x01\x00\x00\x00\x00"
	chEOS       = "\x05"
)

func chException(msg string) string {
	return "\x02" + le32(62) + chStr("DB::Exception") + chStr(msg) + chStr("") + "\x00"
}

func TestClickHouse(t *testing.T) {
	runConvCases(t, []convCase{
		{"hello, query ok, query failed, ping", func() *conv {
			return newConv(t, ProtocolClickHouse, RoleClient).
				at(0).write(chHello()).at(1).read("\x00"+chStr("ClickHouse")+"\x18\x08\xd5\xa9\x03"+chStr("UTC")).
				at(2).write(chQuery("", "SELECT 1"), chEmptyData).at(3).read(chDataResp).at(4).read(chProgress).at(5).read(chEOS).
				at(6).write(chQuery("q2", "SELEC 1"), chEmptyData).at(8).read(chException("Syntax error")).
				at(9).write("\x04").at(10).read("\x04")
		}, []got{r("ok", 1), r("failed", 2)}, nil},
		{"EndOfStream as the last byte of a read", func() *conv {
			return newConv(t, ProtocolClickHouse, RoleClient).
				at(0).write(chQuery("", "SELECT 1")).at(2).read(chDataResp + chProgress + chEOS)
		}, []got{r("ok", 2)}, nil},
		{"a new query ends one whose end was unseen", func() *conv {
			return newConv(t, ProtocolClickHouse, RoleClient).
				at(0).write(chQuery("", "SELECT 1")).at(2).read(chDataResp).lose(Received, 40).
				at(5).write(chQuery("", "SELECT 2")).at(6).read(chEOS)
		}, []got{r("ok", 2), r("ok", 1)}, nil},
		{"server side", func() *conv {
			return newConv(t, ProtocolClickHouse, RoleServer).at(0).read(chQuery("x", "SELECT 1")).at(3).write(chException("boom"))
		}, []got{rs("failed", 3)}, nil},
	})
}

// AMQP 0-9-1 frames.
func amqpFrame(typ byte, channel uint16, payload string) string {
	return string([]byte{typ}) + be16(channel) + be32(uint32(len(payload))) + payload + "\xce"
}

func amqpMethod(channel, class, method uint16, args string) string {
	return amqpFrame(1, channel, be16(class)+be16(method)+args)
}

func amqpPublish(body string) string {
	return amqpMethod(1, 60, 40, "\x00\x00"+"\x00"+chStr("orders")+"\x00") +
		amqpFrame(2, 1, be16(60)+be16(0)+be64str(uint64(len(body)))+be16(0)) + amqpFrame(3, 1, body)
}

func amqpDeliver(body string) string {
	return amqpMethod(1, 60, 60, chStr("ctag")+be64str(1)+"\x00"+chStr("")+chStr("orders")) +
		amqpFrame(2, 1, be16(60)+be16(0)+be64str(uint64(len(body)))+be16(0)) + amqpFrame(3, 1, body)
}

func TestAMQP(t *testing.T) {
	runConvCases(t, []convCase{
		{"publish and deliver", func() *conv {
			return newConv(t, ProtocolRabbitMQ, RoleClient).
				write("AMQP\x00\x00\x09\x01").read(amqpMethod(0, 10, 10, "\x00\x09"+be32(0)+be32(0))).
				write(amqpMethod(0, 10, 11, be32(0)+chStr("PLAIN")+be32(0)+chStr("en_US"))).
				write(amqpPublish("hello")).write(amqpPublish("world"), amqpFrame(8, 0, "")).
				read(amqpDeliver("hello"), amqpDeliver("world")).read(amqpMethod(1, 60, 71, be64str(2)+"\x00"+chStr("")+chStr("q")+be32(0)))
		}, []got{
			{Status: "ok", Method: "produce"},
			{Status: "ok", Method: "produce"},
			{Status: "ok", Method: "consume"},
			{Status: "ok", Method: "consume"},
			{Status: "ok", Method: "consume"},
		}, nil},
		{"a large body across reads", func() *conv {
			d := amqpDeliver(strings.Repeat("m", 5000)) + amqpDeliver("x")
			p := splitAt(d, 100, 3000)
			return newConv(t, ProtocolRabbitMQ, RoleClient).read(p[0]).read(p[1]).read(p[2])
		}, []got{{Status: "ok", Method: "consume"}}, nil},
		{"the broker side is not counted", func() *conv {
			return newConv(t, ProtocolRabbitMQ, RoleServer).read("AMQP\x00\x00\x09\x01").read(amqpPublish("x")).write(amqpDeliver("x"))
		}, nil, nil},
	})
}

func FuzzDNS(f *testing.F) {
	f.Add([]byte("\x02\x40" + dnsQuery(1, "a.b", 1) + "\xa0" + dnsResponse(1, 0, "a.b", 1, aRR("1.2.3.4"))))
	f.Add([]byte("\x00\x40" + tcpDNS(dnsQuery(1, "a.b", 1)) + "\xa0" + tcpDNS(dnsResponse(1, 3, "a.b", 1))))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolDNS, data) })
}

func FuzzClickHouse(f *testing.F) {
	f.Add([]byte("\x00\x40" + chQuery("", "SELECT 1") + "\x90" + chDataResp + "\x81" + chEOS))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolClickHouse, data) })
}

func FuzzAMQP(f *testing.F) {
	f.Add([]byte("\x00\x40AMQP\x00\x00\x09\x01" + amqpPublish("x") + "\xa0" + amqpDeliver("y")))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolRabbitMQ, data) })
}
