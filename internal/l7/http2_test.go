package l7

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2peer writes the frames one side of a connection sends, with a real HPACK encoder.
type h2peer struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newH2Peer() *h2peer {
	p := &h2peer{}
	p.fr = http2.NewFramer(&p.buf, nil)
	p.enc = hpack.NewEncoder(&p.hb)
	return p
}

// take returns the bytes written since the last take.
func (p *h2peer) take() string {
	s := p.buf.String()
	p.buf.Reset()
	return s
}

// must panics on the errors of writes to a bytes.Buffer, which cannot fail.
func must(err error) {
	if err != nil {
		panic(err)
	}
}

func (p *h2peer) block(kv ...string) []byte {
	p.hb.Reset()
	for i := 0; i < len(kv); i += 2 {
		must(p.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}))
	}
	return bytes.Clone(p.hb.Bytes())
}

func (p *h2peer) headers(stream uint32, endStream bool, kv ...string) *h2peer {
	must(p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: p.block(kv...), EndStream: endStream, EndHeaders: true}))
	return p
}

func (p *h2peer) data(stream uint32, endStream bool, b string) *h2peer {
	must(p.fr.WriteData(stream, endStream, []byte(b)))
	return p
}

func (p *h2peer) settings() *h2peer { must(p.fr.WriteSettings()); return p }

func grpcReq(path string) []string {
	return []string{
		":method", "POST", ":scheme", "http", ":path", path, ":authority", "127.0.0.1:50051",
		"content-type", "application/grpc", "user-agent", "grpc-go/1.85.0", "te", "trailers",
	}
}

func httpReq(path string) []string {
	return []string{":method", "GET", ":scheme", "http", ":path", path, ":authority", "svc:8080"}
}

var grpcResp = []string{":status", "200", "content-type", "application/grpc"}

func TestHTTP2(t *testing.T) {
	type exchange struct {
		writes, reads []string
	}
	tests := []struct {
		name  string
		build func(cl, sv *h2peer) []exchange
		want  []got
	}{
		{"h2c GETs on two streams, dynamic table reused", func(cl, sv *h2peer) []exchange {
			cl.buf.WriteString(h2Preface)
			cl.settings().headers(1, true, httpReq("/a")...)
			w1 := cl.take()
			sv.settings().headers(1, false, ":status", "200", "content-type", "text/plain").data(1, true, "hello")
			r1 := sv.take()
			cl.headers(3, true, httpReq("/a")...).headers(5, true, httpReq("/b")...)
			w2 := cl.take()
			sv.headers(5, true, ":status", "503").headers(3, false, ":status", "200", "content-type", "text/plain").data(3, true, "x")
			r2 := sv.take()
			return []exchange{{[]string{w1}, []string{r1}}, {[]string{w2}, []string{r2}}}
		}, []got{r("200", 1), r("503", 1), r("200", 1)}},
		{"gRPC unary: ok, not found, trailers-only unavailable", func(cl, sv *h2peer) []exchange {
			cl.buf.WriteString(h2Preface)
			cl.settings().headers(1, false, grpcReq("/pkg.Svc/Get")...).data(1, true, "\x00\x00\x00\x00\x02\x08\x01")
			w1 := cl.take()
			sv.settings().headers(1, false, grpcResp...).data(1, false, "\x00\x00\x00\x00\x00").headers(1, true, "grpc-status", "0")
			r1 := sv.take()
			cl.headers(3, false, grpcReq("/pkg.Svc/Get")...).data(3, true, "\x00\x00\x00\x00\x00")
			w2 := cl.take()
			sv.headers(3, false, grpcResp...)
			r2a := sv.take()
			sv.headers(3, true, "grpc-status", "5", "grpc-message", "no such item")
			r2b := sv.take()
			cl.headers(5, false, grpcReq("/pkg.Svc/List")...).data(5, true, "\x00\x00\x00\x00\x00")
			w3 := cl.take()
			sv.headers(5, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "14")
			r3 := sv.take()
			return []exchange{{[]string{w1}, []string{r1}}, {[]string{w2}, []string{r2a, r2b}}, {[]string{w3}, []string{r3}}}
		}, []got{r("grpc:OK", 1), r("grpc:NotFound", 2), r("grpc:Unavailable", 1)}},
		{"RST_STREAM cancels a gRPC call; CONTINUATION frames", func(cl, sv *h2peer) []exchange {
			cl.buf.WriteString(h2Preface)
			cl.settings().headers(1, false, grpcReq("/pkg.Svc/Watch")...)
			w1 := cl.take()
			must(cl.fr.WriteRSTStream(1, http2.ErrCodeCancel))
			w2 := cl.take()
			// a request whose header block is cut into HEADERS and two CONTINUATIONs
			blk := cl.block(append(httpReq("/big"), "x-big", strings.Repeat("v", 300))...)
			must(cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk[:100], EndStream: true}))
			must(cl.fr.WriteContinuation(3, false, blk[100:200]))
			must(cl.fr.WriteContinuation(3, true, blk[200:]))
			w3 := cl.take()
			sv.settings().headers(3, true, ":status", "404")
			r3 := sv.take()
			return []exchange{{[]string{w1, w2}, nil}, {[]string{w3}, []string{r3}}}
		}, []got{r("grpc:Canceled", 1), r("404", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exs := tt.build(newH2Peer(), newH2Peer())
			// raw segments, then the same bytes as the kernel's digests, then cut everywhere
			c := newConv(t, ProtocolHTTP2, RoleClient)
			c.capture = 1 << 20
			for _, ex := range exs {
				for _, w := range ex.writes {
					c.write(w)
				}
				for _, rd := range ex.reads {
					c.read(rd)
				}
			}
			c.expect(tt.want...)
			d := &conv{t: t, proto: ProtocolHTTP2, role: RoleClient, segs: digestSegmentsHTTP2(c.segs, RoleClient)}
			d.expect(tt.want...)
		})
	}
}

// TestHTTP2SplitEverywhere cuts a gRPC exchange's bytes at every position, raw and as
// digests: frame headers and header blocks cut across syscalls.
func TestHTTP2SplitEverywhere(t *testing.T) {
	cl, sv := newH2Peer(), newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings().headers(1, false, grpcReq("/pkg.Svc/Get")...).data(1, true, "\x00\x00\x00\x00\x00").
		headers(3, false, grpcReq("/pkg.Svc/Get")...).data(3, true, "\x00\x00\x00\x00\x00")
	w := cl.take()
	sv.settings().headers(1, false, grpcResp...).data(1, false, "\x00\x00\x00\x00\x00").headers(1, true, "grpc-status", "0").
		headers(3, false, grpcResp...).headers(3, true, "grpc-status", "3")
	rd := sv.take()
	for i := 1; i < len(w); i += 7 {
		for j := 1; j < len(rd); j += 3 {
			c := newConv(t, ProtocolHTTP2, RoleClient)
			c.capture = 1 << 20
			q, s := splitAt(w, i), splitAt(rd, j)
			c.write(q[0]).write(q[1]).read(s[0]).read(s[1])
			for _, segs := range [][]Segment{c.segs, digestSegmentsHTTP2(c.segs, RoleClient)} {
				cc := &conv{t: t, proto: ProtocolHTTP2, role: RoleClient, segs: segs}
				out, st := cc.run()
				if len(out) != 2 || out[0].Status != "grpc:OK" || out[1].Status != "grpc:InvalidArgument" {
					t.Fatalf("split %d/%d (digest %v): %v %+v", i, j, segs[0].Flags&FlagDigest != 0, out, st)
				}
			}
		}
	}
}

// TestHTTP2BulkDataBeyondCapture: large DATA frames in raw segments captured partly; the
// headers after them still decode.
func TestHTTP2BulkDataBeyondCapture(t *testing.T) {
	cl, sv := newH2Peer(), newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings().headers(1, true, httpReq("/download")...)
	w1 := cl.take()
	sv.settings().headers(1, false, ":status", "200", "content-type", "application/octet-stream")
	for i := 0; i < 10; i++ {
		sv.data(1, i == 9, strings.Repeat("d", 16000))
	}
	r1 := sv.take()
	cl.headers(3, true, httpReq("/download")...)
	w2 := cl.take()
	sv.headers(3, true, ":status", "304")
	r2 := sv.take()
	for _, digest := range []bool{false, true} {
		c := newConv(t, ProtocolHTTP2, RoleClient)
		if digest {
			c.capture = 1 << 20
		}
		c.at(0).write(w1)
		for k, part := range splitAt(r1, 1000, 17000, 40000, 90000, 150000) {
			c.at(float64(2 + k)).read(part)
		}
		c.at(10).write(w2).at(12).read(r2)
		if digest {
			c.segs = digestSegmentsHTTP2(c.segs, RoleClient)
		}
		st := c.expect(r("200", 2), r("304", 2))
		// Raw segments lose the frame headers beyond the capture: the decoder must be reset
		// (here the later block only uses static entries). Digests describe every frame.
		if digest && st.HPACKResets != 0 || !digest && st.HPACKResets == 0 {
			t.Errorf("digest %v: %d HPACK resets", digest, st.HPACKResets)
		}
	}
}

// TestHTTP2LostHeaders: a segment with a header block is lost. The decoder is reset; what
// is reported afterwards is right or not reported, never wrong.
func TestHTTP2LostHeaders(t *testing.T) {
	cl, sv := newH2Peer(), newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings().headers(1, true, httpReq("/a")...)
	w1 := cl.take()
	sv.settings().headers(1, true, ":status", "201", "x-trace", "abc")
	r1 := sv.take()
	cl.headers(3, true, httpReq("/b")...)
	w2 := cl.take()
	sv.headers(3, true, ":status", "202", "x-trace", "def") // lost
	r2 := sv.take()
	cl.headers(5, true, httpReq("/c")...)
	w3 := cl.take()
	sv.headers(5, true, ":status", "404", "x-trace", "abc") // x-trace: abc is a dynamic reference from before the loss
	r3 := sv.take()
	cl.headers(7, true, httpReq("/d")...)
	w4 := cl.take()
	sv.headers(7, true, ":status", "500", "x-new", "1")
	r4 := sv.take()
	c := newConv(t, ProtocolHTTP2, RoleClient)
	c.capture = 1 << 20
	c.at(0).write(w1).at(1).read(r1).at(2).write(w2).lose(Received, len(r2)).
		at(4).write(w3).at(5).read(r3).at(6).write(w4).at(7).read(r4)
	out, st := c.run()
	for _, g := range out {
		switch g.Status {
		case "201", "404", "500":
		default:
			t.Errorf("a wrong status was reported: %v", out)
		}
	}
	if len(out) < 2 || out[0].Status != "201" || out[len(out)-1].Status != "500" {
		t.Errorf("got %v", out)
	}
	if st.HPACKResets == 0 {
		t.Errorf("no HPACK reset counted: %+v", st)
	}
}

func TestHTTP2ServerSide(t *testing.T) {
	cl, sv := newH2Peer(), newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings().headers(1, false, grpcReq("/pkg.Svc/Put")...).data(1, true, "\x00\x00\x00\x00\x00")
	rq := cl.take()
	sv.settings().headers(1, false, grpcResp...).headers(1, true, "grpc-status", "13")
	rs := sv.take()
	newConv(t, ProtocolHTTP2, RoleServer).at(0).read(rq).at(3).write(rs).expect(got{Status: "grpc:Internal", Ms: 3, Server: true})
}

func TestHTTP2NotHTTP2(t *testing.T) {
	st := newConv(t, ProtocolHTTP2, RoleClient).write("PRI * HTTP/1.1\r\n\r\nxx\r\n\r\n").read("junk").expect()
	if st.FalsePositives != 1 {
		t.Errorf("false positives %d", st.FalsePositives)
	}
}

func FuzzHTTP2(f *testing.F) {
	cl, sv := newH2Peer(), newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings().headers(1, false, grpcReq("/a/b")...).data(1, true, "x")
	sv.settings().headers(1, false, grpcResp...).headers(1, true, "grpc-status", "2")
	f.Add([]byte("\x00" + "\x3f" + cl.take() + "\xbf" + sv.take()))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFeed(t, ProtocolHTTP2, data) })
}

// FuzzHTTP2Digest feeds the digests of arbitrary syscalls: the digester and the parser
// must not panic and must agree on frame boundaries.
func FuzzHTTP2Digest(f *testing.F) {
	cl := newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings().headers(1, false, grpcReq("/a/b")...).data(1, true, strings.Repeat("x", 100))
	f.Add([]byte(cl.take()), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		c := newConv(t, ProtocolHTTP2, RoleClient)
		c.capture = 1 << 20
		step := int(cut%50) + 1
		for len(data) > 0 {
			n := min(step, len(data))
			c.writeB(data[:n])
			data = data[n:]
		}
		segs := digestSegmentsHTTP2(c.segs, RoleClient)
		tr := NewTracker(TrackerOptions{}, func(*Request) {})
		for i := range segs {
			tr.Feed(&segs[i])
		}
	})
}

func BenchmarkHTTP2GRPCUnary(b *testing.B) {
	cl, sv := newH2Peer(), newH2Peer()
	cl.buf.WriteString(h2Preface)
	cl.settings()
	sv.settings()
	pre, svPre := []byte(cl.take()), []byte(sv.take())
	// steady state: the same call again and again, each with the stream id advancing
	n := 0
	tr := NewTracker(TrackerOptions{}, func(r *Request) {
		if r.Status == GRPCStatus(0) {
			n++
		}
	})
	seg := Segment{Sock: 9, Protocol: ProtocolHTTP2}
	var off [2]uint64
	feed := func(f Flow, data []byte, ts uint64) {
		seg.Flags = 0
		if f == Received {
			seg.Flags = FlagReceived
		}
		seg.Payload, seg.Length, seg.Offset, seg.Timestamp = data, uint32(len(data)), off[f], ts
		off[f] += uint64(len(data))
		tr.Feed(&seg)
	}
	feed(Sent, pre, 1)
	feed(Received, svPre, 2)
	const calls = 1000
	reqs := make([][]byte, calls)
	resps := make([][]byte, calls)
	for i := range reqs {
		id := uint32(2*i + 1)
		cl.headers(id, false, grpcReq("/pkg.Svc/Get")...).data(id, true, "\x00\x00\x00\x00\x00")
		reqs[i] = []byte(cl.take())
		sv.headers(id, false, grpcResp...).data(id, false, "\x00\x00\x00\x00\x00").headers(id, true, "grpc-status", "0")
		resps[i] = []byte(sv.take())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % calls
		if k == 0 && i > 0 {
			b.StopTimer()
			tr.Close(9)
			off = [2]uint64{}
			feed(Sent, pre, 1)
			feed(Received, svPre, 2)
			b.StartTimer()
		}
		feed(Sent, reqs[k], uint64(3+2*i))
		feed(Received, resps[k], uint64(4+2*i))
	}
	if n != b.N {
		b.Fatalf("%d gRPC calls reported, want %d", n, b.N)
	}
}
