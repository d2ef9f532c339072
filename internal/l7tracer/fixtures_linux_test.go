package l7tracer

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Protocols without a server on this machine (Cassandra, ClickHouse): byte fixtures built from
// their specifications, written and read over a loopback TCP connection by two helper
// processes (fixture-server, fixture-client), each in its cgroup, so that the kernel side sees
// real syscalls. The v5 CQL request segment is the one the DataStax Python driver (Debian's
// python3-cassandra 3.25.0, its segment codec and QueryMessage) produces for "SELECT 1" on
// stream 7: cqlSegment must reproduce it byte for byte (TestCQLSegmentMatchesDriver), which
// pins the CRC24 of the header and the CRC32 of the payload to an implementation that talks to
// real Cassandra servers.

// roundTrip is one round trip: the client writes req in one write, the server reads it whole,
// waits injectedDelay when slow, then writes each part of resp in a write of its own.
type roundTrip struct {
	req  string
	resp []string
	slow bool
}

// Driver-produced bytes (python3-cassandra 3.25.0): the v5 QUERY "SELECT 1" (consistency ONE,
// stream 7) as a frame and wrapped in a self-contained uncompressed segment.
const (
	driverCQLFrame   = "0500000707000000120000000853454c4543542031000100000000"
	driverCQLSegment = "1b00023835ca0500000707000000120000000853454c4543542031000100000000efdda78b"
)

func be16s(v uint16) string { return string(binary.BigEndian.AppendUint16(nil, v)) }
func be32s(v uint32) string { return string(binary.BigEndian.AppendUint32(nil, v)) }
func le32s(v uint32) string { return string(binary.LittleEndian.AppendUint32(nil, v)) }

// cqlFrame is a CQL v4/v5 frame (native_protocol_v4.spec §2, v5 §2.4.1): version (0x80 set on
// responses), flags, stream, opcode, body length, body.
func cqlFrame(version byte, stream uint16, opcode byte, body string) string {
	return string([]byte{version, 0}) + be16s(stream) + string([]byte{opcode}) + be32s(uint32(len(body))) + body
}

// cqlSegment wraps frames in a v5 uncompressed self-contained segment (native_protocol_v5.spec
// §2.1): a 3-byte little-endian header (17 bits of payload length, the self-contained flag),
// its CRC24, the payload, and the payload's CRC32 (seeded with the bytes fa 2d 55 ca, as the
// drivers and the server do).
func cqlSegment(payload string) string {
	v := uint32(len(payload)) | 1<<17
	crc := uint32(0x875060)
	for i, x := 0, v; i < 3; i, x = i+1, x>>8 {
		crc ^= (x & 0xff) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1974F0B
			}
		}
	}
	crc &= 0xffffff
	h := []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(crc), byte(crc >> 8), byte(crc >> 16)}
	c := crc32.Update(crc32.ChecksumIEEE([]byte{0xfa, 0x2d, 0x55, 0xca}), crc32.IEEETable, []byte(payload))
	return string(h) + payload + le32s(c)
}

const (
	cqlError, cqlStartup, cqlReady, cqlOptions, cqlQuery, cqlResult, cqlSupported = 0x00, 0x01, 0x02, 0x05, 0x07, 0x08, 0x06
)

// cqlQueryBody is a QUERY's body: the query, consistency ONE and no flags (a byte in v4, an
// int in v5).
func cqlQueryBody(q string) string  { return be32s(uint32(len(q))) + q + be16s(1) + "\x00" }
func cqlQueryBody5(q string) string { return be32s(uint32(len(q))) + q + be16s(1) + be32s(0) }

// cqlRows is a RESULT of kind Rows: one column "key" of type varchar, one row "x".
var cqlRows = be32s(2) + be32s(1) + be32s(1) + be16s(6) + "system" + be16s(5) + "local" + be16s(3) + "key" + be16s(0xd) + be32s(1) + be32s(1) + "x"

// cqlErrorBody is an ERROR "Syntax error in CQL query" (0x2000).
var cqlErrorBody = be32s(0x2000) + be16s(12) + "invalid stmt"

func cqlStartupBody() string { return be16s(1) + be16s(11) + "CQL_VERSION" + be16s(5) + "3.0.0" }

// chStr is a ClickHouse string: its length as a varint (< 128 here) and the bytes.
func chStr(s string) string { return string([]byte{byte(len(s))}) + s }

// chQuery is a client Query packet (type 1) with client info, as clickhouse-client sends it
// (revision 54456), and the empty data block that ends its external tables.
func chQuery(id, q string) string {
	return "\x01" + chStr(id) + "\x01" + chStr("") + chStr("") + chStr("0.0.0.0:0") +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x01" + chStr("me") + chStr("host") + chStr("ClickHouse client") +
		"\x18\x08\xd5\xa9\x03" + chStr("") + "\x00\x00\x00\x02\x00" + chStr(q) +
		"\x02\x00\x01\x00\x02\xff\xff\xff\xff\x00\x00\x00"
}

func chException(msg string) string {
	return "\x02" + le32s(62) + chStr("DB::Exception") + chStr(msg) + chStr("") + "\x00"
}

const (
	chDataResp = "\x01\x00\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x011\x06UInt8\x01"
	chProgress = "\x03\x01\x01\x00\x00\x00\x00"
	chEOS      = "\x05"
)

// fixtures are the conversations by name; the expected counts are in serverCases.
func fixtures(name string) []roundTrip {
	switch name {
	case "cql-v4":
		return []roundTrip{
			{req: cqlFrame(4, 0, cqlOptions, ""), resp: []string{cqlFrame(0x84, 0, cqlSupported, be16s(0))}},
			{req: cqlFrame(4, 1, cqlStartup, cqlStartupBody()), resp: []string{cqlFrame(0x84, 1, cqlReady, "")}},
			{req: cqlFrame(4, 2, cqlQuery, cqlQueryBody("SELECT * FROM system.local")), resp: []string{cqlFrame(0x84, 2, cqlResult, cqlRows)}},
			{req: cqlFrame(4, 3, cqlQuery, cqlQueryBody("SELECT * FROM system.peers")), resp: []string{cqlFrame(0x84, 3, cqlResult, cqlRows)}, slow: true},
			// Two queries in flight, answered in the other order.
			{
				req:  cqlFrame(4, 4, cqlQuery, cqlQueryBody("SELECT 1")) + cqlFrame(4, 5, cqlQuery, cqlQueryBody("SELEKT")),
				resp: []string{cqlFrame(0x84, 5, cqlError, cqlErrorBody), cqlFrame(0x84, 4, cqlResult, cqlRows)},
			},
		}
	case "cql-v5":
		driver, _ := hex.DecodeString(driverCQLSegment)
		return []roundTrip{
			// The handshake keeps the v4 framing with version 5 (v5 spec §2.3.1).
			{req: cqlFrame(5, 0, cqlOptions, ""), resp: []string{cqlFrame(0x85, 0, cqlSupported, be16s(0))}},
			{req: cqlFrame(5, 1, cqlStartup, cqlStartupBody()), resp: []string{cqlFrame(0x85, 1, cqlReady, "")}},
			{req: string(driver), resp: []string{cqlSegment(cqlFrame(0x85, 7, cqlResult, cqlRows))}},
			{req: cqlSegment(cqlFrame(5, 8, cqlQuery, cqlQueryBody5("SELECT * FROM system.peers"))), resp: []string{cqlSegment(cqlFrame(0x85, 8, cqlResult, cqlRows))}, slow: true},
			// Two envelopes in one segment each way, answered in the other order.
			{
				req:  cqlSegment(cqlFrame(5, 9, cqlQuery, cqlQueryBody5("SELECT 1")) + cqlFrame(5, 10, cqlQuery, cqlQueryBody5("SELEKT"))),
				resp: []string{cqlSegment(cqlFrame(0x85, 10, cqlError, cqlErrorBody) + cqlFrame(0x85, 9, cqlResult, cqlRows))},
			},
		}
	case "clickhouse":
		return []roundTrip{
			{
				req:  "\x00" + chStr("ClickHouse client") + "\x18\x08\xd5\xa9\x03" + chStr("default") + chStr("default") + chStr(""),
				resp: []string{"\x00" + chStr("ClickHouse") + "\x18\x08\xd5\xa9\x03" + chStr("UTC")},
			},
			{req: chQuery("q1", "SELECT 1"), resp: []string{chDataResp, chProgress, chEOS}},
			{req: chQuery("q2", "SELECT sleep(0.06)"), resp: []string{chDataResp, chEOS}, slow: true},
			{req: chQuery("q3", "SELEC 1"), resp: []string{chException("Syntax error")}},
			{req: "\x04", resp: []string{"\x04"}}, // Ping, Pong: not counted
		}
	}
	return nil
}

// TestCQLSegmentMatchesDriver: the segment framing of the fixtures is the driver's.
func TestCQLSegmentMatchesDriver(t *testing.T) {
	frame, _ := hex.DecodeString(driverCQLFrame)
	if got := hex.EncodeToString([]byte(cqlSegment(string(frame)))); got != driverCQLSegment {
		t.Fatalf("segment\n%s, the driver's\n%s", got, driverCQLSegment)
	}
	// The frame itself is a QUERY "SELECT 1" on stream 7, as cqlFrame writes it.
	if want := cqlFrame(5, 7, cqlQuery, cqlQueryBody5("SELECT 1")); string(frame) != want {
		t.Fatalf("frame %x, want %x", frame, want)
	}
}

// runFixture plays one side of a fixture's conversation on c.
func runFixture(c net.Conn, name string, server bool) error {
	for i, ex := range fixtures(name) {
		if server {
			if _, err := io.ReadFull(c, make([]byte, len(ex.req))); err != nil {
				return fmt.Errorf("exchange %d: reading the request: %w", i, err)
			}
			if ex.slow {
				time.Sleep(injectedDelay)
			}
			for _, p := range ex.resp {
				if _, err := io.WriteString(c, p); err != nil {
					return err
				}
				time.Sleep(time.Millisecond) // one write, one read: the parts stay apart
			}
			continue
		}
		if _, err := io.WriteString(c, ex.req); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, make([]byte, len(strings.Join(ex.resp, "")))); err != nil {
			return fmt.Errorf("exchange %d: reading the response: %w", i, err)
		}
	}
	return nil
}
