package cgroups

import (
	"strings"
	"testing"
)

func TestParsePSI(t *testing.T) {
	tests := []struct {
		in         string
		some, full uint64
		wantErr    string
	}{
		{"some avg10=0.00 avg60=0.00 avg300=0.00 total=1546661\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1543632\n", 1546661, 1543632, ""},
		{"some avg10=0.00 avg60=0.00 avg300=0.00 total=17\n", 17, 0, ""}, // cpu.pressure before 5.13
		{"some avg10=0.00 total=x\n", 0, 0, "total"},
		{"some avg10=0.00\n", 0, 0, "no total="},
		{"half avg10=0.00 total=1\n", 0, 0, "unknown pressure kind"},
		{"nospace\n", 0, 0, "want"},
	}
	for _, tt := range tests {
		some, full, err := parsePSI([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parsePSI(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || some != tt.some || full != tt.full {
			t.Errorf("parsePSI(%q) = %d, %d, %v; want %d, %d", tt.in, some, full, err, tt.some, tt.full)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in            string
		quota, period uint64
		limited       bool
		wantErr       bool
	}{
		{"max 100000\n", 0, 100000, false, false},
		{"50000 100000\n", 50000, 100000, true, false},
		{"50000 0\n", 50000, 0, false, false},
		{"50000\n", 0, 0, false, true},
		{"x 100000\n", 0, 0, false, true},
		{"1 y\n", 0, 0, false, true},
	}
	for _, tt := range tests {
		q, p, l, err := parseCPUMax([]byte(tt.in))
		if (err != nil) != tt.wantErr || q != tt.quota || p != tt.period || l != tt.limited {
			t.Errorf("parseCPUMax(%q) = %d %d %v %v", tt.in, q, p, l, err)
		}
	}
}

func TestParseIOStat(t *testing.T) {
	got, err := parseIOStat([]byte("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n259:1 rbytes=7 wbytes=8 rios=9 wios=10 newkey=1\n253:0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []deviceCounters{{8, 0, 3, 4, 1, 2}, {259, 1, 9, 10, 7, 8}, {253, 0, 0, 0, 0, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("device %d: got %+v want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"8 rbytes=1\n", "8:x rbytes=1\n", "8:0 rbytes\n", "8:0 rbytes=-1\n", "8:0 rbytes=99999999999999999999999\n"} {
		if _, err := parseIOStat([]byte(bad), nil); err == nil {
			t.Errorf("parseIOStat(%q) accepted", bad)
		}
	}
}

func TestParseBlkio(t *testing.T) {
	in := "8:0 Read 10\n8:0 Write 20\n8:0 Sync 30\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 30\n8:16 Read 1\n8:16 Write 2\nTotal 33\n"
	type rec struct {
		maj, min uint32
		read     bool
		v        uint64
	}
	var got []rec
	if err := parseBlkio([]byte(in), func(maj, minor uint32, read bool, v uint64) { got = append(got, rec{maj, minor, read, v}) }); err != nil {
		t.Fatal(err)
	}
	want := []rec{{8, 0, true, 10}, {8, 0, false, 20}, {8, 16, true, 1}, {8, 16, false, 2}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"8:0 Read\n", "Total x\n", "8:0 Read x\n", "80 Read 1\n", "nonsense\n"} {
		if err := parseBlkio([]byte(bad), func(uint32, uint32, bool, uint64) {}); err == nil {
			t.Errorf("parseBlkio(%q) accepted", bad)
		}
	}
}

func TestParseKeyedAndSingle(t *testing.T) {
	sum := uint64(0)
	if err := parseKeyed([]byte("a 1\nb 2\n\nc 3"), func(_ []byte, v uint64) { sum += v }); err != nil || sum != 6 {
		t.Fatalf("parseKeyed: sum %d err %v", sum, err)
	}
	for _, bad := range []string{"a\n", " 1\n", "a -1\n", "a 1.5\n"} {
		if err := parseKeyed([]byte(bad), func([]byte, uint64) {}); err == nil {
			t.Errorf("parseKeyed(%q) accepted", bad)
		}
	}
	for _, tt := range []struct {
		in    string
		v     uint64
		ok    bool
		isErr bool
	}{{"123\n", 123, true, false}, {"max\n", 0, false, false}, {"-1\n", 0, false, false}, {"", 0, false, true}, {"1e3", 0, false, true}} {
		v, ok, err := parseSingleUint([]byte(tt.in))
		if v != tt.v || ok != tt.ok || (err != nil) != tt.isErr {
			t.Errorf("parseSingleUint(%q) = %d %v %v", tt.in, v, ok, err)
		}
	}
}

func TestParsePartitions(t *testing.T) {
	got := parsePartitions([]byte("major minor  #blocks  name\n\n 254        0  268435456 vda\n bad line\n 8 x 1 sdz\n"), map[uint64]string{})
	if len(got) != 1 || got[254<<32] != "vda" {
		t.Fatalf("got %v", got)
	}
}

// FuzzStatFiles feeds the same bytes to every cgroup stat-file parser: none may panic, and
// what they accept must be self-consistent.
func FuzzStatFiles(f *testing.F) {
	f.Add([]byte("usage_usec 1633269\nuser_usec 1614784\nthrottled_usec 5\n"))
	f.Add([]byte("some avg10=7.97 avg60=1.43 avg300=0.30 total=1546661\nfull avg10=7.97 avg60=1.43 avg300=0.30 total=1543632\n"))
	f.Add([]byte("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n"))
	f.Add([]byte("8:0 Read 10\n8:0 Write 20\nTotal 30\n"))
	f.Add([]byte("50000 100000\n"))
	f.Add([]byte("max\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = parseKeyed(data, func([]byte, uint64) {})
		if v, ok, err := parseSingleUint(data); err == nil && !ok && v != 0 {
			t.Fatalf("unlimited value %d", v)
		}
		if q, p, limited, err := parseCPUMax(data); err == nil && limited && p == 0 {
			t.Fatalf("limited with zero period: %d/%d", q, p)
		}
		_, _, _ = parsePSI(data)
		_, _ = parseIOStat(data, nil)
		_ = parseBlkio(data, func(uint32, uint32, bool, uint64) {})
		_ = parsePartitions(data, map[uint64]string{})
	})
}
