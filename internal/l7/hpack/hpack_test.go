package hpack

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	xhpack "golang.org/x/net/http2/hpack"
)

type field struct{ name, value string }

func decodeAll(t testing.TB, d *Decoder, block []byte) ([]field, error) {
	t.Helper()
	var got []field
	err := d.Decode(block, func(name, value []byte) {
		got = append(got, field{string(name), string(value)})
	})
	return got, err
}

// TestStaticTable checks RFC 7541 Appendix A against the reference decoder.
func TestStaticTable(t *testing.T) {
	ref := xhpack.NewDecoder(4096, nil)
	for i := range staticTable {
		fs, err := ref.DecodeFull([]byte{0x80 | byte(i+1)})
		if err != nil || len(fs) != 1 {
			t.Fatalf("reference decoder on index %d: %v %v", i+1, fs, err)
		}
		if string(staticTable[i].name) != fs[0].Name || string(staticTable[i].value) != fs[0].Value {
			t.Errorf("static index %d = %q: %q, reference %q: %q", i+1,
				staticTable[i].name, staticTable[i].value, fs[0].Name, fs[0].Value)
		}
	}
}

// TestHuffmanTable round-trips every byte value and random strings through the reference
// encoder.
func TestHuffmanTable(t *testing.T) {
	for s := 0; s < 256; s++ {
		in := string([]byte{byte(s), byte(s), 'a', byte(s)})
		enc := xhpack.AppendHuffmanString(nil, in)
		out, err := appendHuffman(nil, enc)
		if err != nil || string(out) != in {
			t.Fatalf("symbol %d: got %q, %v", s, out, err)
		}
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		b := make([]byte, r.Intn(40))
		r.Read(b)
		if i%2 == 0 { // mostly printable, like real headers
			for j := range b {
				b[j] = 'a' + b[j]%26
			}
		}
		enc := xhpack.AppendHuffmanString(nil, string(b))
		out, err := appendHuffman(nil, enc)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%q: got %q, %v", b, out, err)
		}
	}
}

func TestHuffmanErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"EOS encoded", []byte{0xff, 0xff, 0xff, 0xff}},                           // 32 one bits: EOS + padding
		{"padding of 8 bits", append(xhpack.AppendHuffmanString(nil, "a"), 0xff)}, // 'a' then a whole byte of ones
		{"padding not ones", []byte{0x00}},                                        // '0' (00000) then 000
	}
	for _, tt := range tests {
		if _, err := appendHuffman(nil, tt.in); !errors.Is(err, ErrHuffman) {
			t.Errorf("%s: err = %v, want ErrHuffman", tt.name, err)
		}
	}
}

// encoderSession encodes header lists with the reference encoder, as a real peer would.
type encoderSession struct {
	buf bytes.Buffer
	enc *xhpack.Encoder
}

func newEncoderSession() *encoderSession {
	s := &encoderSession{}
	s.enc = xhpack.NewEncoder(&s.buf)
	return s
}

func (s *encoderSession) block(fields ...field) []byte {
	s.buf.Reset()
	for _, f := range fields {
		if err := s.enc.WriteField(xhpack.HeaderField{Name: f.name, Value: f.value}); err != nil {
			panic(err)
		}
	}
	return bytes.Clone(s.buf.Bytes())
}

func TestDecodeAgainstEncoder(t *testing.T) {
	s := newEncoderSession()
	d := NewDecoder(DefaultTableSize, DefaultTableSize)
	blocks := [][]field{
		{
			{":method", "POST"},
			{":scheme", "http"},
			{":path", "/pkg.Svc/Method"},
			{":authority", "127.0.0.1:50051"},
			{"content-type", "application/grpc"},
			{"te", "trailers"},
			{"grpc-timeout", "999m"},
		},
		{{":status", "200"}, {"content-type", "application/grpc"}},
		{{"grpc-status", "5"}, {"grpc-message", "not found"}},
		// the second request reuses dynamic entries inserted by the first
		{
			{":method", "POST"},
			{":scheme", "http"},
			{":path", "/pkg.Svc/Method"},
			{":authority", "127.0.0.1:50051"},
			{"content-type", "application/grpc"},
			{"te", "trailers"},
		},
		{{"grpc-status", "0"}},
		{{":status", "503"}, {"x-long", strings.Repeat("v", 300)}},
	}
	for i, want := range blocks {
		got, err := decodeAll(t, d, s.block(want...))
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("block %d: got %v, want %v", i, got, want)
		}
	}
	if d.Len() == 0 {
		t.Fatal("no dynamic entries: the test does not exercise the table")
	}
}

// TestEvictionAndSizeUpdates drives a small table through many evictions and size changes
// and compares every field with the reference decoder.
func TestEvictionAndSizeUpdates(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	s := newEncoderSession()
	s.enc.SetMaxDynamicTableSizeLimit(8192)
	d := NewDecoder(DefaultTableSize, 8192)
	ref := xhpack.NewDecoder(DefaultTableSize, nil)
	ref.SetAllowedMaxDynamicTableSize(8192)
	names := []string{"x-a", "x-b", "grpc-status", "content-type", "x-request-id", ":status"}
	for i := 0; i < 3000; i++ {
		if i%97 == 0 {
			sz := uint32(r.Intn(8192))
			if i%5 == 0 {
				sz = 0
			}
			s.enc.SetMaxDynamicTableSize(sz)
		}
		var fs []field
		for j := 0; j < 1+r.Intn(6); j++ {
			v := strings.Repeat(string(rune('a'+r.Intn(26))), r.Intn(700))
			if r.Intn(3) == 0 {
				v = fmt.Sprint(r.Intn(20))
			}
			fs = append(fs, field{names[r.Intn(len(names))], v})
		}
		block := s.block(fs...)
		want, err := ref.DecodeFull(block)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		got, err := decodeAll(t, d, block)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if len(got) != len(want) {
			t.Fatalf("block %d: %d fields, want %d", i, len(got), len(want))
		}
		for k := range got {
			if got[k].name != want[k].Name || got[k].value != want[k].Value {
				t.Fatalf("block %d field %d: %v, want %v", i, k, got[k], want[k])
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		block []byte
		want  error
	}{
		{"index 0", []byte{0x80}, ErrIndex},
		{"dynamic index past the table", []byte{0x80 | 62}, ErrIndex},
		{"truncated integer", []byte{0xff}, ErrTruncated},
		{"integer overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, ErrIntOverflow},
		{"truncated string", []byte{0x40, 0x05, 'a'}, ErrTruncated},
		{"size update above the limit", []byte{0x3f, 0xe2, 0x1f}, ErrSizeUpdate}, // 4097
		{"literal with a bad name index", []byte{0x7f, 0x30, 0x00}, ErrIndex},
	}
	for _, tt := range tests {
		d := NewDecoder(DefaultTableSize, DefaultTableSize)
		if _, err := decodeAll(t, d, tt.block); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestOversizedEntryEmptiesTable: RFC 7541 section 4.4.
func TestOversizedEntryEmptiesTable(t *testing.T) {
	d := NewDecoder(100, 100)
	s := newEncoderSession()
	s.enc.SetMaxDynamicTableSizeLimit(100)
	s.enc.SetMaxDynamicTableSize(100)
	if _, err := decodeAll(t, d, s.block(field{"x-a", "1"})); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 1 {
		t.Fatalf("len = %d, want 1", d.Len())
	}
	// a literal with incremental indexing whose entry exceeds the table: built by hand
	block := []byte{0x40, 0x03, 'x', '-', 'b', 0x70}
	block = append(block, bytes.Repeat([]byte{'v'}, 0x70)...)
	if _, err := decodeAll(t, d, block); err != nil {
		t.Fatal(err)
	}
	if size, _ := d.TableSize(); d.Len() != 0 || size != 0 {
		t.Fatalf("len = %d size = %d, want an empty table", d.Len(), size)
	}
}

// TestDynamicNameOfEvictedEntry: a literal whose name refers to the entry it evicts.
func TestDynamicNameOfEvictedEntry(t *testing.T) {
	d := NewDecoder(64, 64)
	// insert "ab: c" (2+1+32 = 35), then a literal with indexing, name = index 62 (that
	// entry), value of 20 bytes: 2+20+32 = 54 forces the evicting of the name's own entry.
	block := []byte{0x40, 0x02, 'a', 'b', 0x01, 'c', 0x40 | 62, 20}
	block = append(block, bytes.Repeat([]byte{'z'}, 20)...)
	got, err := decodeAll(t, d, block)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].name != "ab" || got[1].value != strings.Repeat("z", 20) {
		t.Fatalf("got %v", got)
	}
	n, v, ok := d.at(62)
	if !ok || string(n) != "ab" || len(v) != 20 || d.Len() != 1 {
		t.Fatalf("table: %q %q %v len %d", n, v, ok, d.Len())
	}
}

func FuzzDecode(f *testing.F) {
	s := newEncoderSession()
	f.Add(s.block(field{":status", "200"}, field{"grpc-status", "0"}, field{"x", strings.Repeat("y", 50)}))
	f.Add([]byte{0x3f, 0xe1, 0x1f, 0x82})
	f.Add([]byte{0x40, 0x02, 'a', 'b', 0x81, 0x1f})
	f.Fuzz(func(t *testing.T, block []byte) {
		d := NewDecoder(DefaultTableSize, DefaultTableSize)
		ref := xhpack.NewDecoder(DefaultTableSize, nil)
		// Two passes: the second one reads the table the first one built.
		for pass := 0; pass < 2; pass++ {
			got, err := decodeAll(t, d, block)
			want, refErr := ref.DecodeFull(block)
			if refErr == nil && err != nil {
				t.Fatalf("pass %d: reference decoded %v, we failed: %v", pass, want, err)
			}
			if err == nil && refErr == nil {
				if len(got) != len(want) {
					t.Fatalf("pass %d: %d fields, reference %d", pass, len(got), len(want))
				}
				for i := range got {
					if got[i].name != want[i].Name || got[i].value != want[i].Value {
						t.Fatalf("pass %d field %d: %v, reference %v", pass, i, got[i], want[i])
					}
				}
			}
			if err != nil || refErr != nil {
				return
			}
		}
	})
}

func BenchmarkDecodeGRPCResponse(b *testing.B) {
	s := newEncoderSession()
	d := NewDecoder(DefaultTableSize, DefaultTableSize)
	headers := s.block(field{":status", "200"}, field{"content-type", "application/grpc"})
	trailers := s.block(field{"grpc-status", "0"}, field{"grpc-message", ""})
	// the steady state: the second and later responses reuse the dynamic table
	headers2 := s.block(field{":status", "200"}, field{"content-type", "application/grpc"})
	trailers2 := s.block(field{"grpc-status", "0"}, field{"grpc-message", ""})
	var n int
	emit := func(name, value []byte) { n += len(value) }
	if err := d.Decode(headers, emit); err != nil {
		b.Fatal(err)
	}
	if err := d.Decode(trailers, emit); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Decode(headers2, emit); err != nil {
			b.Fatal(err)
		}
		if err := d.Decode(trailers2, emit); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeGRPCRequest(b *testing.B) {
	s := newEncoderSession()
	d := NewDecoder(DefaultTableSize, DefaultTableSize)
	req := []field{
		{":method", "POST"},
		{":scheme", "http"},
		{":path", "/grpc.health.v1.Health/Check"},
		{":authority", "127.0.0.1:50051"},
		{"content-type", "application/grpc"},
		{"user-agent", "grpc-go/1.85.0"},
		{"te", "trailers"},
		{"grpc-timeout", "4999m"},
	}
	first := s.block(req...)
	req[7].value = "4998m" // a literal that changes per request, as grpc-timeout does
	next := s.block(req...)
	emit := func(name, value []byte) {}
	if err := d.Decode(first, emit); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// next inserts grpc-timeout every time: table insertions and evictions in the loop
		if err := d.Decode(next, emit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkXNetDecodeGRPCRequest is the baseline of BenchmarkDecodeGRPCRequest: the same
// blocks through golang.org/x/net/http2/hpack's decoder.
func BenchmarkXNetDecodeGRPCRequest(b *testing.B) {
	s := newEncoderSession()
	d := xhpack.NewDecoder(DefaultTableSize, func(xhpack.HeaderField) {})
	req := []field{
		{":method", "POST"},
		{":scheme", "http"},
		{":path", "/grpc.health.v1.Health/Check"},
		{":authority", "127.0.0.1:50051"},
		{"content-type", "application/grpc"},
		{"user-agent", "grpc-go/1.85.0"},
		{"te", "trailers"},
		{"grpc-timeout", "4999m"},
	}
	first := s.block(req...)
	req[7].value = "4998m"
	next := s.block(req...)
	if _, err := d.Write(first); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Write(next); err != nil {
			b.Fatal(err)
		}
	}
}
