package ebpf

import (
	"reflect"
	"testing"
	"unsafe"

	cebpf "github.com/cilium/ebpf"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

// TestL7SegmentLayout: struct l7_segment of l7.c, as bpf2go generates it, has the layout of
// CONTRACT.md §2 that l7.Segment.Decode reads.
func TestL7SegmentLayout(t *testing.T) {
	var s l7L7Segment
	want := []struct {
		name string
		off  uintptr
	}{
		{"TimestampNs", 0},
		{"Sock", 8},
		{"CgroupId", 16},
		{"Offset", 24},
		{"Pid", 32},
		{"Fd", 36},
		{"Length", 40},
		{"Captured", 44},
		{"Protocol", 46},
		{"Flags", 47},
	}
	typ := reflect.TypeOf(s)
	for _, w := range want {
		f, ok := typ.FieldByName(w.name)
		if !ok || f.Offset != w.off {
			t.Errorf("field %s: offset %d (found %v), want %d", w.name, f.Offset, ok, w.off)
		}
	}
	if L7SegmentHeaderSize != l7.SegmentHeaderSize || unsafe.Sizeof(s) != uintptr(l7.SegmentHeaderSize) {
		t.Errorf("record header %d bytes, l7.SegmentHeaderSize %d", L7SegmentHeaderSize, l7.SegmentHeaderSize)
	}
	// A record built as the kernel builds it decodes to the same values.
	s = l7L7Segment{TimestampNs: 1, Sock: 2, CgroupId: 3, Offset: 4, Pid: 5, Fd: 6, Length: 7, Captured: 2, Protocol: 5, Flags: 9}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&s)), unsafe.Sizeof(s))
	rec := append(append([]byte(nil), raw...), 'o', 'k')
	var seg l7.Segment
	if err := seg.Decode(rec); err != nil {
		t.Fatal(err)
	}
	if seg.Timestamp != 1 || seg.Sock != 2 || seg.CgroupID != 3 || seg.Offset != 4 || seg.PID != 5 || seg.FD != 6 ||
		seg.Length != 7 || string(seg.Payload) != "ok" || seg.Protocol != l7.ProtocolRedis || seg.Flags != 9 {
		t.Errorf("decoded %+v", seg)
	}
	// Flags and protocols: the C values are internal/l7's.
	flags := map[string]uint8{
		"received": l7.FlagReceived, "server": l7.FlagServer, "digest": l7.FlagDigest,
		"new": l7.FlagNew, "udp": l7.FlagUDP, "truncated": l7.FlagTruncated, "closed": l7.FlagClosed,
	}
	for name, v := range map[string]uint8{"received": 1, "server": 2, "digest": 4, "new": 8, "udp": 16, "truncated": 32, "closed": 64} {
		if flags[name] != v {
			t.Errorf("flag %s: l7 %d, l7.c %d", name, flags[name], v)
		}
	}
}

// TestSeededKeyShared: the L7 object declares the TCP tracer's seeded map again (the loader
// replaces it by the tracer's); both key types must be the same struct.
func TestSeededKeyShared(t *testing.T) {
	a, b := reflect.TypeOf(codexraySeededKey{}), reflect.TypeOf(l7SeededKey{})
	if a.Size() != b.Size() || a.NumField() != b.NumField() {
		t.Fatalf("seeded_key: %d bytes, %d fields in codexray.c; %d, %d in l7.c", a.Size(), a.NumField(), b.Size(), b.NumField())
	}
	for i := 0; i < a.NumField(); i++ {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || fa.Offset != fb.Offset || fa.Type.Size() != fb.Type.Size() {
			t.Errorf("field %d: %s@%d (%d bytes) vs %s@%d (%d bytes)", i, fa.Name, fa.Offset, fa.Type.Size(), fb.Name, fb.Offset, fb.Type.Size())
		}
	}
	spec1, spec2 := mustSpec(t, loadCodexray), mustSpec(t, loadL7)
	m1, m2 := spec1.Maps["seeded"], spec2.Maps["seeded"]
	if m1.KeySize != m2.KeySize || m1.ValueSize != m2.ValueSize || m1.MaxEntries != m2.MaxEntries || m1.Flags != m2.Flags || m1.Type != m2.Type {
		t.Errorf("seeded map: %+v in codexray.c, %+v in l7.c", m1, m2)
	}
}

func mustSpec(t *testing.T, load func() (*cebpf.CollectionSpec, error)) *cebpf.CollectionSpec {
	t.Helper()
	spec, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}
