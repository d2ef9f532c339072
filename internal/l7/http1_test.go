package l7

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

const (
	getReq  = "GET /api/items HTTP/1.1\r\nHost: svc:8080\r\nAccept: */*\r\n\r\n"
	headReq = "HEAD /health HTTP/1.1\r\nHost: svc\r\n\r\n"
	ok200   = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
	nf404   = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	err500  = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nerr"
	nc204   = "HTTP/1.1 204 No Content\r\n\r\n"
)

func postReq(body string) string {
	return "POST /api/items HTTP/1.1\r\nHost: svc\r\nContent-Type: application/json\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func chunked(status string, chunks ...string) string {
	s := "HTTP/1.1 " + status + "\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, c := range chunks {
		s += strings.ToLower(hex(len(c))) + "\r\n" + c + "\r\n"
	}
	return s + "0\r\n\r\n"
}

func hex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 16 {
		b = append([]byte{digits[n%16]}, b...)
	}
	return string(b)
}

func TestHTTP1(t *testing.T) {
	big := strings.Repeat("x", 100000)
	runConvCases(t, []convCase{
		{"keep-alive: length and chunked bodies", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).
				at(0).write(getReq).at(3).read(ok200).
				at(10).write(postReq(`{"a":1}`)).at(12).read(chunked("404 Not Found", "no ", "such item")).
				at(20).write(getReq).at(21).read(nc204)
		}, []got{r("200", 3), r("404", 2), r("204", 1)}, nil},
		{"pipelining: three requests in one write, responses in one read", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).
				at(0).write(getReq, getReq, getReq).at(5).read(ok200, err500, nc204)
		}, []got{r("200", 5), r("500", 5), r("204", 5)}, nil},
		{"pipelining: responses split across reads mid-body and mid-header", func() *conv {
			resp := ok200 + chunked("201 Created", "abc", strings.Repeat("y", 40)) + err500
			parts := splitAt(resp, len(ok200)-2, len(ok200)+20, len(ok200)+60)
			c := newConv(t, ProtocolHTTP, RoleClient).at(0).write(getReq, postReq("z"), getReq)
			for i, p := range parts {
				c.at(float64(2 + i)).read(p)
			}
			return c
		}, []got{r("200", 2), r("201", 3), r("500", 5)}, nil},
		{"request line and headers split across writes", func() *conv {
			p := splitAt(postReq("0123456789"), 5, 30, 70)
			return newConv(t, ProtocolHTTP, RoleClient).at(0).write(p[0]).write(p[1]).write(p[2]).write(p[3]).at(9).read(ok200)
		}, []got{r("200", 9)}, nil},
		{"HEAD response has no body", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).
				at(0).write(headReq).at(1).read("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n").
				at(2).write(getReq).at(4).read(nf404)
		}, []got{r("200", 1), r("404", 2)}, nil},
		{"100 Continue is interim", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).
				at(0).write("PUT /blob HTTP/1.1\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n").
				at(1).read("HTTP/1.1 100 Continue\r\n\r\n").at(2).write("data").at(7).read(nc204)
		}, []got{r("204", 7)}, nil},
		{"body far beyond the capture, then the next exchange", func() *conv {
			resp := "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + big
			c := newConv(t, ProtocolHTTP, RoleClient).at(0).write(getReq)
			for i, p := range splitAt(resp, 16384, 32768, 65536) {
				c.at(float64(10 + i)).read(p)
			}
			return c.at(20).write(getReq).at(22).read(err500)
		}, []got{r("200", 10), r("500", 2)}, nil},
		{"a lost body segment of known length", func() *conv {
			resp := "HTTP/1.1 200 OK\r\nContent-Length: 30000\r\n\r\n" + strings.Repeat("q", 30000)
			p := splitAt(resp, 10000, 20000)
			return newConv(t, ProtocolHTTP, RoleClient).at(0).write(getReq).at(1).read(p[0]).
				lose(Received, len(p[1])).read(p[2]).at(5).write(getReq).at(6).read(nf404)
		}, []got{r("200", 1), r("404", 1)}, func(s Stats) string {
			if s.Gaps != 1 || s.LostSync != 0 {
				return fmt.Sprintf("gaps %d lost %d, want 1 and 0", s.Gaps, s.LostSync)
			}
			return ""
		}},
		{"headers longer than the capture: the next response re-syncs", func() *conv {
			long := "HTTP/1.1 503 Service Unavailable\r\nX-Big: " + strings.Repeat("b", 3000) + "\r\nContent-Length: 2\r\n\r\nno"
			return newConv(t, ProtocolHTTP, RoleClient).at(0).write(getReq).at(1).read(long).
				at(2).write(getReq).at(4).read(ok200)
		}, []got{r("503", 1), r("200", 2)}, func(s Stats) string {
			if s.LostSync != 1 {
				return fmt.Sprintf("lost sync %d, want 1", s.LostSync)
			}
			return ""
		}},
		{"a lost response: the next response matches the next request", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).at(0).write(getReq).lose(Received, len(chunked("200 OK", "x"))).
				at(5).write(getReq).at(6).read(nf404)
		}, []got{r("404", 1)}, func(s Stats) string {
			if s.Unanswered != 1 {
				return fmt.Sprintf("unanswered %d, want 1", s.Unanswered)
			}
			return ""
		}},
		{"server side (inbound)", func() *conv {
			return newConv(t, ProtocolHTTP, RoleServer).at(0).read(getReq).at(4).write(err500).
				at(6).read(postReq("abc")).at(7).write(ok200)
		}, []got{rs("500", 4), rs("200", 1)}, nil},
		{"101 Switching Protocols ends parsing", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).
				at(0).write("GET /ws HTTP/1.1\r\nHost: s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").
				at(1).read("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").
				write("\x81\x85GET / HTTP/1.1").read("HTTP/1.1 200 OK\r\n\r\n")
		}, []got{r("101", 1)}, nil},
		{"not HTTP: rejected", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).write("GETX / HTTP/1.1\r\n\r\n").read(ok200)
		}, nil, func(s Stats) string {
			if s.FalsePositives != 1 {
				return fmt.Sprintf("false positives %d, want 1", s.FalsePositives)
			}
			return ""
		}},
		{"HTTP/1.0 response delimited by close", func() *conv {
			return newConv(t, ProtocolHTTP, RoleClient).at(0).write("GET / HTTP/1.0\r\n\r\n").at(2).read("HTTP/1.0 200 OK\r\n\r\nbody until close")
		}, []got{r("200", 2)}, nil},
	})
}

// TestHTTP1SplitEverywhere cuts one pipelined exchange at every position of both flows.
func TestHTTP1SplitEverywhere(t *testing.T) {
	reqs := getReq + postReq(`{"k":"v"}`) + headReq
	resps := chunked("200 OK", "ab", "cdef") + err500 + "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
	for i := 1; i < len(reqs); i += 3 {
		for j := 1; j < len(resps); j += 5 {
			q := splitAt(reqs, i)
			s := splitAt(resps, j)
			c := newConv(t, ProtocolHTTP, RoleClient).at(0).write(q[0]).write(q[1]).at(10).read(s[0]).read(s[1])
			out, _ := c.run()
			if len(out) != 3 || out[0].Status != "200" || out[1].Status != "500" || out[2].Status != "304" {
				t.Fatalf("split at %d/%d: %v", i, j, out)
			}
		}
	}
}

func FuzzHTTP1(f *testing.F) {
	f.Add([]byte("\x00\x10" + getReq + "\x90" + ok200))
	f.Add([]byte("\x05\x3f" + postReq("abc") + "\xbf" + chunked("200 OK", "x", "yz")))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolHTTP, data) })
}

func BenchmarkHTTP1Exchange(b *testing.B) {
	req := Segment{Sock: 1, Protocol: ProtocolHTTP, Payload: []byte(getReq), Length: uint32(len(getReq))}
	resp := Segment{Sock: 1, Protocol: ProtocolHTTP, Flags: FlagReceived, Payload: []byte(ok200), Length: uint32(len(ok200))}
	n := 0
	tr := NewTracker(TrackerOptions{}, func(r *Request) { n++ })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Timestamp = uint64(i) * 2
		resp.Timestamp = req.Timestamp + 1
		tr.Feed(&req)
		req.Offset += uint64(req.Length)
		tr.Feed(&resp)
		resp.Offset += uint64(resp.Length)
	}
	if n != b.N {
		b.Fatalf("%d requests, want %d", n, b.N)
	}
}

// BenchmarkHTTP1StdlibBaseline is the baseline of BenchmarkHTTP1Exchange: the same request
// and response read by net/http's ReadRequest and ReadResponse (body included).
func BenchmarkHTTP1StdlibBaseline(b *testing.B) {
	rd := strings.NewReader("")
	br := bufio.NewReader(rd)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rd.Reset(getReq)
		br.Reset(rd)
		req, err := http.ReadRequest(br)
		if err != nil {
			b.Fatal(err)
		}
		rd.Reset(ok200)
		br.Reset(rd)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
