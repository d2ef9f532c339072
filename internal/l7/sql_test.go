package l7

import (
	"encoding/binary"
	"strings"
	"testing"
)

// pg builds a PostgreSQL message: type, int32 length (counting itself), body.
func pg(t byte, body ...string) string {
	b := strings.Join(body, "")
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)+4))
	return string(t) + string(l[:]) + b
}

func pgStartup() string {
	body := "\x00\x03\x00\x00user\x00app\x00database\x00app\x00\x00"
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(body)+4))
	return string(l[:]) + body
}

var (
	pgReady     = pg('Z', "I")
	pgStartupOK = pg('R', "\x00\x00\x00\x00") + pg('S', "server_version\x0016.1\x00") + pg('K', "\x00\x00\x00\x01\x00\x00\x00\x02") + pgReady
	pgErr       = pg('E', "SERROR\x00C42P01\x00Mrelation \"nope\" does not exist\x00\x00")
	pgRowDesc   = pg('T', "\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00")
	pgRow       = pg('D', "\x00\x01\x00\x00\x00\x011")
)

func pgExtended(query string) string {
	return pg('P', "\x00", query, "\x00\x00\x00") + pg('B', "\x00\x00\x00\x00\x00\x00\x00\x00") +
		pg('D', "P\x00") + pg('E', "\x00\x00\x00\x00\x00")
}

func TestPostgres(t *testing.T) {
	manyRows := strings.Repeat(pgRow, 500)
	runConvCases(t, []convCase{
		{"startup, simple query ok and failed", func() *conv {
			return newConv(t, ProtocolPostgres, RoleClient).
				at(0).write(pgStartup()).at(1).read(pgStartupOK).
				at(2).write(pg('Q', "SELECT 1\x00")).at(5).read(pgRowDesc, pgRow, pg('C', "SELECT 1\x00"), pgReady).
				at(6).write(pg('Q', "SELECT * FROM nope\x00")).at(7).read(pgErr, pgReady)
		}, []got{r("ok", 3), r("failed", 1)}, nil},
		{"extended query batch: ok, error, skipped", func() *conv {
			return newConv(t, ProtocolPostgres, RoleClient).
				at(0).write(pgExtended("SELECT $1"), pgExtended("SELECT x FROM nope"), pgExtended("SELECT 3"), pg('S')).
				at(4).read(pg('1'), pg('2'), pgRowDesc, pgRow, pg('C', "SELECT 1\x00"), pg('1'), pgErr, pg('Z', "I"))
		}, []got{r("ok", 4), r("failed", 4), r("failed", 4)}, nil},
		{"prepare without execute is one query", func() *conv {
			return newConv(t, ProtocolPostgres, RoleClient).
				at(0).write(pg('P', "stmt1\x00SELECT $1\x00\x00\x00"), pg('D', "Sstmt1\x00"), pg('S')).
				at(2).read(pg('1'), pg('t', "\x00\x00"), pg('n'), pgReady).
				at(3).write(pg('C', "Sstmt1\x00"), pg('S')).at(4).read(pg('3'), pgReady)
		}, []got{r("ok", 2)}, nil},
		{"a large result beyond the capture, then the next query", func() *conv {
			res := pgRowDesc + manyRows + pg('C', "SELECT 500\x00") + pgReady
			p := splitAt(res, 4000)
			return newConv(t, ProtocolPostgres, RoleClient).
				at(0).write(pg('Q', "SELECT * FROM big\x00")).at(3).read(p[0]).at(4).read(p[1]).
				at(5).write(pg('Q', "SELECT bad\x00")).at(6).read(pgErr, pgReady)
		}, []got{r("ok", 3), r("failed", 1)}, nil},
		{"SSLRequest refused, plain startup follows", func() *conv {
			return newConv(t, ProtocolPostgres, RoleClient).
				at(0).write("\x00\x00\x00\x08\x04\xd2\x16\x2f").at(1).read("N").
				at(2).write(pgStartup()).at(3).read(pgStartupOK).
				at(4).write(pg('Q', "SELECT 1\x00")).at(5).read(pg('C', "SELECT 1\x00"), pgReady)
		}, []got{r("ok", 1)}, nil},
		{"server side", func() *conv {
			return newConv(t, ProtocolPostgres, RoleServer).
				at(0).read(pg('Q', "BEGIN\x00")).at(1).write(pg('C', "BEGIN\x00"), pg('Z', "T"))
		}, []got{rs("ok", 1)}, nil},
		{"notices and parameter status are not responses", func() *conv {
			return newConv(t, ProtocolPostgres, RoleClient).
				at(0).write(pg('Q', "VACUUM\x00")).at(2).read(pg('N', "SWARNING\x00Mx\x00\x00")).at(4).read(pg('C', "VACUUM\x00"), pgReady)
		}, []got{r("ok", 4)}, nil},
	})
}

// my builds a MySQL packet: 3-byte length, sequence id, payload.
func my(seq byte, payload ...string) string {
	p := strings.Join(payload, "")
	return string([]byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), seq}) + p
}

var (
	myGreeting  = my(0, "\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00\xff\xf7\x21\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00ijklmnopqrst\x00caching_sha2_password\x00")
	myHandshake = my(1, "\x8d\xa6\xff\x19\x00\x00\x00\x01\x21", strings.Repeat("\x00", 23), "app\x00\x00")
	myOK        = func(seq byte) string { return my(seq, "\x00\x00\x00\x02\x00\x00\x00") }
	myErr       = my(1, "\xff\x7a\x04#42S02Table 'db.nope' doesn't exist")
)

func myResultSet(rows int) string {
	s := my(1, "\x01") + my(2, "\x03def\x00\x00\x00\x011\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00")
	seq := byte(3)
	for i := 0; i < rows; i++ {
		s += my(seq, "\x011")
		seq++
	}
	return s + my(seq, "\xfe\x00\x00\x02\x00\x00\x00")
}

func TestMySQL(t *testing.T) {
	runConvCases(t, []convCase{
		{"handshake, query, error, ping", func() *conv {
			return newConv(t, ProtocolMySQL, RoleClient).
				at(0).read(myGreeting).at(1).write(myHandshake).at(2).read(myOK(2)).
				at(3).write(my(0, "\x03SELECT 1")).at(5).read(myResultSet(1)).
				at(6).write(my(0, "\x03SELECT * FROM nope")).at(7).read(myErr).
				at(8).write(my(0, "\x0e")).at(9).read(myOK(1))
		}, []got{r("ok", 2), r("failed", 1)}, nil},
		{"prepared statements; close has no response", func() *conv {
			return newConv(t, ProtocolMySQL, RoleClient).
				at(0).write(my(0, "\x16SELECT ?")).at(1).read(my(1, "\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00"), my(2, "\x03def"), my(3, "\x03def")).
				at(2).write(my(0, "\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x08\x00\x02\x00\x00\x00\x00\x00\x00\x00")).at(4).read(myResultSet(2)).
				at(5).write(my(0, "\x19\x01\x00\x00\x00")).
				at(6).write(my(0, "\x03COMMIT")).at(7).read(myOK(1))
		}, []got{r("ok", 1), r("ok", 2), r("ok", 1)}, nil},
		{"sequence ids wrap inside a long result set", func() *conv {
			res := myResultSet(600)
			p := splitAt(res, 1000, 3000)
			return newConv(t, ProtocolMySQL, RoleClient).
				at(0).write(my(0, "\x03SELECT * FROM t")).at(2).read(p[0]).at(3).read(p[1]).at(4).read(p[2]).
				at(5).write(my(0, "\x03SELECT 2")).at(6).read(myErr)
		}, []got{r("ok", 2), r("failed", 1)}, nil},
		{"server side", func() *conv {
			return newConv(t, ProtocolMySQL, RoleServer).
				at(0).write(myGreeting).at(1).read(myHandshake).at(2).write(myOK(2)).
				at(3).read(my(0, "\x03INSERT INTO t VALUES (1)")).at(6).write(myOK(1))
		}, []got{rs("ok", 3)}, nil},
	})
}

func FuzzPostgres(f *testing.F) {
	f.Add([]byte("\x00\x20" + pg('Q', "SELECT 1\x00") + "\x90" + pg('C', "SELECT 1\x00") + pgReady))
	f.Add([]byte("\x00\x7f" + pgStartup() + "\xbf" + pgStartupOK))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolPostgres, data) })
}

func FuzzMySQL(f *testing.F) {
	f.Add([]byte("\x00\x20" + my(0, "\x03SELECT 1") + "\x90" + myResultSet(1)))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolMySQL, data) })
}
