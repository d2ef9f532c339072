package l7

import (
	"fmt"
	"strings"
	"testing"
)

// resp encodes a command as RESP: an array of bulk strings.
func resp(args ...string) string {
	s := "*" + itoa(len(args)) + "\r\n"
	for _, a := range args {
		s += "$" + itoa(len(a)) + "\r\n" + a + "\r\n"
	}
	return s
}

func bulk(v string) string { return "$" + itoa(len(v)) + "\r\n" + v + "\r\n" }

func TestRedis(t *testing.T) {
	bigVal := strings.Repeat("v", 5000)
	runConvCases(t, []convCase{
		{"simple, error and nil replies", func() *conv {
			return newConv(t, ProtocolRedis, RoleClient).
				at(0).write(resp("SET", "k", "v")).at(1).read("+OK\r\n").
				at(2).write(resp("INCR", "k")).at(4).read("-ERR value is not an integer or out of range\r\n").
				at(5).write(resp("GET", "missing")).at(6).read("$-1\r\n")
		}, []got{r("ok", 1), r("failed", 2), r("ok", 1)}, nil},
		{"pipeline: N commands in one write, N replies", func() *conv {
			return newConv(t, ProtocolRedis, RoleClient).
				at(0).write(resp("SET", "a", "1"), resp("GET", "a"), resp("LPUSH", "l", "x"), resp("HGETALL", "h"), resp("BAD")).
				at(3).read("+OK\r\n", bulk("1"), ":1\r\n", "*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n", "-ERR unknown command 'BAD'\r\n")
		}, []got{r("ok", 3), r("ok", 3), r("ok", 3), r("ok", 3), r("failed", 3)}, nil},
		{"pipeline replies across reads, a bulk value beyond the capture", func() *conv {
			replies := bulk(bigVal) + "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n" + ":7\r\n"
			p := splitAt(replies, 1000, 5009)
			return newConv(t, ProtocolRedis, RoleClient).
				at(0).write(resp("GET", "big"), resp("LLEN", "big"), resp("DBSIZE")).
				at(2).read(p[0]).at(3).read(p[1]).at(4).read(p[2])
		}, []got{r("ok", 2), r("failed", 4), r("ok", 4)}, nil},
		{"a reply that starts beyond the capture is not guessed", func() *conv {
			replies := bulk(bigVal) + "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n" + ":7\r\n"
			p := splitAt(replies, 1000, 5010)
			return newConv(t, ProtocolRedis, RoleClient).
				at(0).write(resp("GET", "big"), resp("LLEN", "big"), resp("DBSIZE")).
				at(2).read(p[0]).at(3).read(p[1]).at(4).read(p[2])
		}, []got{r("ok", 2)}, func(s Stats) string {
			if s.LostSync != 1 {
				return fmt.Sprintf("lost sync %d", s.LostSync)
			}
			return ""
		}},
		{"RESP3: map, push messages are not replies, attribute before a reply, blob error", func() *conv {
			return newConv(t, ProtocolRedis, RoleClient).
				at(0).write(resp("HELLO", "3")).at(1).read("%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n").
				at(2).write(resp("GET", "x")).
				at(3).read(">3\r\n+message\r\n+ch\r\n+hi\r\n", "|1\r\n+ttl\r\n:10\r\n", bulk("val")).
				at(4).write(resp("FCALL", "f", "0")).at(6).read("!21\r\nSYNTAX invalid syntax\r\n")
		}, []got{r("ok", 1), r("ok", 1), r("failed", 2)}, nil},
		{"RESP3 blob error fails", func() *conv {
			return newConv(t, ProtocolRedis, RoleClient).at(0).write(resp("X")).at(2).read("!9\r\nERR nope!\r\n")
		}, []got{r("failed", 2)}, nil},
		{"inline command", func() *conv {
			return newConv(t, ProtocolRedis, RoleClient).at(0).write(resp("PING")).at(1).read("+PONG\r\n").
				at(2).write("PING\r\n").at(3).read("+PONG\r\n")
		}, []got{r("ok", 1), r("ok", 1)}, nil},
		{"server side", func() *conv {
			return newConv(t, ProtocolRedis, RoleServer).at(0).read(resp("GET", "k"), resp("GET", "j")).at(1).write(bulk("v"), "$-1\r\n")
		}, []got{rs("ok", 1), rs("ok", 1)}, nil},
		{"garbage is rejected", func() *conv {
			return newConv(t, ProtocolRedis, RoleClient).write("*2\r\n@@@\r\n").read("+OK\r\n")
		}, nil, func(s Stats) string {
			if s.FalsePositives != 1 {
				return fmt.Sprintf("false positives %d", s.FalsePositives)
			}
			return ""
		}},
	})
}

func TestRedisSplitEverywhere(t *testing.T) {
	cmds := resp("MSET", "a", "1", "b", "2") + resp("MGET", "a", "b", "c") + resp("DEL", "x")
	replies := "+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n-ERR no\r\n"
	for i := 1; i < len(cmds); i += 2 {
		for j := 1; j < len(replies); j++ {
			q, s := splitAt(cmds, i), splitAt(replies, j)
			out, _ := newConv(t, ProtocolRedis, RoleClient).write(q[0]).write(q[1]).read(s[0]).read(s[1]).run()
			if len(out) != 3 || out[0].Status != "ok" || out[1].Status != "ok" || out[2].Status != "failed" {
				t.Fatalf("split %d/%d: %v", i, j, out)
			}
		}
	}
}

func TestMemcached(t *testing.T) {
	runConvCases(t, []convCase{
		{"storage, retrieval, miss, delete", func() *conv {
			return newConv(t, ProtocolMemcached, RoleClient).
				at(0).write("set k 0 60 5\r\nhello\r\n").at(1).read("STORED\r\n").
				at(2).write("get k\r\n").at(4).read("VALUE k 0 5\r\nhello\r\nEND\r\n").
				at(5).write("gets nope\r\n").at(6).read("END\r\n").
				at(7).write("delete nope\r\n").at(8).read("NOT_FOUND\r\n")
		}, []got{r("ok", 1), r("ok", 2), r("ok", 1), r("ok", 1)}, nil},
		{"errors fail", func() *conv {
			return newConv(t, ProtocolMemcached, RoleClient).
				at(0).write("incr k 1\r\n").at(1).read("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n").
				at(2).write("bogus\r\n").at(3).read("ERROR\r\n").
				at(4).write("set big 0 0 1\r\nx\r\n").at(6).read("SERVER_ERROR out of memory storing object\r\n")
		}, []got{r("failed", 1), r("failed", 1), r("failed", 2)}, nil},
		{"pipelined multi-get and noreply sets", func() *conv {
			return newConv(t, ProtocolMemcached, RoleClient).
				at(0).write("set a 0 0 1 noreply\r\n1\r\n", "set b 0 0 1 noreply\r\n2\r\n", "get a b c\r\n", "version\r\n").
				at(2).read("VALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n", "VERSION 1.6.21\r\n")
		}, []got{r("ok", 2), r("ok", 2)}, func(s Stats) string {
			if s.Unsupported != 2 {
				return fmt.Sprintf("unsupported %d, want the 2 noreply sets", s.Unsupported)
			}
			return ""
		}},
		{"value data across reads and beyond the capture", func() *conv {
			v := strings.Repeat("z", 3000)
			rep := "VALUE k 1 3000\r\n" + v + "\r\nEND\r\n"
			p := splitAt(rep, 2000)
			return newConv(t, ProtocolMemcached, RoleClient).at(0).write("get k\r\n").at(1).read(p[0]).at(2).read(p[1]).
				at(3).write("touch k 10\r\n").at(4).read("TOUCHED\r\n")
		}, []got{r("ok", 1), r("ok", 1)}, nil},
		{"meta commands", func() *conv {
			return newConv(t, ProtocolMemcached, RoleClient).
				at(0).write("ms foo 2 T90\r\nhi\r\n", "mg foo v\r\n", "mg bar v\r\n", "md foo q\r\n", "mn\r\n").
				at(1).read("HD\r\n", "VA 2\r\nhi\r\n", "EN\r\n", "MN\r\n")
		}, []got{r("ok", 1), r("ok", 1), r("ok", 1), r("ok", 1)}, nil},
		{"an HTTP request with a lowercase method looks like get, the reply rejects it", func() *conv {
			return newConv(t, ProtocolMemcached, RoleClient).write("get / HTTP/1.1\r\n\r\n").read(ok200)
		}, nil, func(s Stats) string {
			if s.FalsePositives != 1 {
				return fmt.Sprintf("false positives %d", s.FalsePositives)
			}
			return ""
		}},
		{"stats until END", func() *conv {
			return newConv(t, ProtocolMemcached, RoleServer).
				at(0).read("stats\r\n").at(1).write("STAT pid 1\r\nSTAT uptime 10\r\nEND\r\n").
				at(2).read("version\r\n").at(3).write("VERSION 1.6\r\n")
		}, []got{rs("ok", 1), rs("ok", 1)}, nil},
	})
}

func TestNATS(t *testing.T) {
	runConvCases(t, []convCase{
		{"publish and consume", func() *conv {
			return newConv(t, ProtocolNATS, RoleClient).
				read(`INFO {"server_id":"x","version":"2.10.0","max_payload":1048576}`+"\r\n").
				write(`CONNECT {"verbose":false,"pedantic":false}`+"\r\n", "PING\r\n").read("PONG\r\n").
				write("SUB orders 1\r\n").
				write("PUB orders 5\r\nhello\r\n", "HPUB orders _INBOX.1 22 27\r\nNATS/1.0\r\nA: B\r\n\r\nhello\r\n").
				read("MSG orders 1 5\r\nhello\r\nMSG orders 1 _INBOX.2 3\r\nabc\r\n", "HMSG orders 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")
		}, []got{
			{Status: "ok", Method: "produce"},
			{Status: "ok", Method: "produce"},
			{Status: "ok", Method: "consume"},
			{Status: "ok", Method: "consume"},
			{Status: "ok", Method: "consume"},
		}, nil},
		{"payload across reads", func() *conv {
			msg := "MSG big 1 3000\r\n" + strings.Repeat("p", 3000) + "\r\nMSG small 1 1\r\nx\r\n"
			p := splitAt(msg, 1500, 3010)
			return newConv(t, ProtocolNATS, RoleClient).read(p[0]).read(p[1]).read(p[2])
		}, []got{{Status: "ok", Method: "consume"}, {Status: "ok", Method: "consume"}}, nil},
		{"the server side is not counted", func() *conv {
			return newConv(t, ProtocolNATS, RoleServer).read("PUB a 1\r\nx\r\n").write("MSG a 1 1\r\nx\r\n")
		}, nil, nil},
	})
}

func FuzzRedis(f *testing.F) {
	f.Add([]byte("\x00\x20" + resp("SET", "a", "b") + "\x85+OK\r\n"))
	f.Add([]byte("\x01\x7f" + resp("GET", "a") + "\xff" + bulk("xyz")))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolRedis, data) })
}

func FuzzMemcached(f *testing.F) {
	f.Add([]byte("\x00\x20get k\r\n\x90VALUE k 0 1\r\nx\r\nEND\r\n"))
	f.Add([]byte("\x00\x30set k 0 0 2\r\nab\r\n\x88STORED\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolMemcached, data) })
}

func FuzzNATS(f *testing.F) {
	f.Add([]byte("\x00\x20PUB a 1\r\nx\r\n\x90MSG a 1 1\r\nx\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolNATS, data) })
}
