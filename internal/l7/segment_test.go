package l7

import (
	"bytes"
	"errors"
	"testing"
)

func TestSegmentRoundTrip(t *testing.T) {
	in := Segment{
		Timestamp: 1, Sock: 2, CgroupID: 3, Offset: 4, PID: 5, FD: 6, Length: 100,
		Protocol: ProtocolRedis, Flags: FlagReceived | FlagServer, Payload: []byte("+OK\r\n"),
	}
	rec := in.Encode(nil)
	if len(rec) != SegmentHeaderSize+5 {
		t.Fatalf("record of %d bytes", len(rec))
	}
	var out Segment
	if err := out.Decode(rec); err != nil {
		t.Fatal(err)
	}
	if out.Timestamp != 1 || out.Sock != 2 || out.CgroupID != 3 || out.Offset != 4 || out.PID != 5 || out.FD != 6 ||
		out.Length != 100 || out.Protocol != ProtocolRedis || out.Flow() != Received || out.Role() != RoleServer ||
		!bytes.Equal(out.Payload, in.Payload) {
		t.Fatalf("decoded %+v", out)
	}
	for _, bad := range [][]byte{rec[:10], rec[:SegmentHeaderSize+2]} {
		if err := out.Decode(bad); err == nil {
			t.Errorf("%d bytes decoded", len(bad))
		}
	}
	rec[46] = 99
	if err := out.Decode(rec); err == nil {
		t.Error("unknown protocol decoded")
	}
	in.Length = 3 // captured more than the syscall moved
	if err := out.Decode(in.Encode(nil)); err == nil {
		t.Error("over-long capture decoded")
	}
}

func TestDigestEntries(t *testing.T) {
	p := AppendDigestEntry(nil, 24, 30, 0, []byte("abcdefghi"))
	p = AppendDigestEntry(p, 54, 10, DigestContinuation, []byte("xy"))
	s := Segment{Offset: 24, Length: 40, Flags: FlagDigest, Payload: p}
	it := s.chunks()
	var c chunk
	var got []chunk
	for it.next(&c) {
		got = append(got, c)
	}
	if it.err != nil || len(got) != 2 || got[0].offset != 24 || got[0].end != 54 || string(got[0].data) != "abcdefghi" ||
		got[1].offset != 54 || got[1].end != 64 || string(got[1].data) != "xy" {
		t.Fatalf("%+v %v", got, it.err)
	}
	s.Payload = p[:len(p)-1]
	it = s.chunks()
	for it.next(&c) {
	}
	if !errors.Is(it.err, ErrBadDigest) {
		t.Errorf("truncated digest: %v", it.err)
	}
}

func BenchmarkSegmentDecode(b *testing.B) {
	rec := (&Segment{Sock: 1, Length: 64, Protocol: ProtocolHTTP, Payload: []byte(getReq)}).Encode(nil)
	var s Segment
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := s.Decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}
