package nodestats

import (
	"math"
	"os"
	"strings"
	"testing"
)

func TestParseUint(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "42": 42, "18446744073709551615": math.MaxUint64} {
		if got, err := parseUint([]byte(in)); err != nil || got != want {
			t.Errorf("parseUint(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "+1", "1.5", "18446744073709551616", "99999999999999999999", "1a", " 1"} {
		if _, err := parseUint([]byte(in)); err == nil {
			t.Errorf("parseUint(%q) accepted", in)
		}
	}
}

func TestParseStatErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"no cpu line", "cpu0 1 2 3 4\nintr 1\n", "no cpu line"},
		{"short", "cpu  1 2 3\n", "at least 5"},
		{"not a number", "cpu  1 2 x 4 5\n", "cpu system"},
		{"twice", "cpu  1 2 3 4\ncpu  1 2 3 4\n", "two cpu lines"},
	} {
		if _, _, err := parseStat([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
	// An old kernel's four modes: the others are zero.
	times, cores, err := parseStat([]byte("cpu 100 200 300 400\ncpu0 100 200 300 400\n"))
	if err != nil || times != (CPUTimes{User: 1, Nice: 2, System: 3, Idle: 4}) || cores != 1 {
		t.Errorf("old kernel: %+v, %d, %v", times, cores, err)
	}
}

func TestParseMeminfoErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"no total", "MemFree: 1 kB\n", "no MemTotal"},
		{"unit", "MemTotal: 1 MB\n", "unit"},
		{"number", "MemTotal: x kB\n", "not a decimal"},
		{"overflow", "MemTotal: 18446744073709551615 kB\n", "overflows"},
		{"fields", "MemTotal: 1 kB extra\n", "line"},
	} {
		if _, err := parseMeminfo([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
	// A value without unit is taken as is (HugePages_Total style); MemAvailable may be missing.
	m, err := parseMeminfo([]byte("MemTotal: 2048 kB\nCached: 7\n"))
	if err != nil || m != (Memory{TotalBytes: 2048 * 1024, CachedBytes: 7}) {
		t.Errorf("got %+v, %v", m, err)
	}
}

func TestParseDiskstatsErrors(t *testing.T) {
	if _, err := parseDiskstats([]byte("8 0 sda 1 2 3 4 5 6 7 8 9 x 11\n"), nil); err == nil || !strings.Contains(err.Error(), "sda") {
		t.Errorf("bad counter: %v", err)
	}
	if _, err := parseDiskstats([]byte("8 99999999999 sda 1 2 3 4 5 6 7 8 9 10 11\n"), nil); err == nil {
		t.Error("minor beyond 32 bits accepted")
	}
}

func TestParseNetDevErrors(t *testing.T) {
	head := "h1\nh2\n"
	for _, tc := range []struct{ name, in string }{
		{"no colon", head + "eth0 1 2 3 4 5 6 7 8 9 10\n"},
		{"short", head + "eth0: 1 2 3\n"},
		{"number", head + "eth0: 1 2 3 4 5 6 7 8 x 10\n"},
		{"no name", head + ": 1 2 3 4 5 6 7 8 9 10\n"},
		{"blank in name", head + "et h0: 1 2 3 4 5 6 7 8 9 10\n"},
	} {
		if _, err := parseNetDev([]byte(tc.in), nil); err == nil {
			t.Errorf("%s accepted", tc.name)
		}
	}
}

func TestParseUptime(t *testing.T) {
	if v, err := parseUptime([]byte("12.5 30.25\n")); err != nil || v != 12.5 {
		t.Errorf("got %v, %v", v, err)
	}
	for _, in := range []string{"", "-1 2", "NaN 1", "+Inf 1", "x"} {
		if _, err := parseUptime([]byte(in)); err == nil {
			t.Errorf("parseUptime(%q) accepted", in)
		}
	}
}

// seeds returns the fixture file and the real host's, when readable, as fuzz seeds.
func seeds(f *testing.F, name string) {
	f.Helper()
	for _, p := range []string{fixture + "/proc/" + name, "/proc/" + name} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	seeds(f, "stat")
	f.Fuzz(func(t *testing.T, b []byte) {
		times, cores, err := parseStat(b)
		if err != nil {
			return
		}
		if cores < 0 {
			t.Fatalf("cores %d", cores)
		}
		times.Each(func(mode string, v float64) {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s = %v", mode, v)
			}
		})
	})
}

func FuzzParseMeminfo(f *testing.F) {
	seeds(f, "meminfo")
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := parseMeminfo(b); err != nil {
			return
		}
	})
}

func FuzzParseDiskstats(f *testing.F) {
	seeds(f, "diskstats")
	f.Fuzz(func(t *testing.T, b []byte) {
		disks, err := parseDiskstats(b, nil)
		if err != nil {
			return
		}
		for _, d := range disks {
			if d.Name == "" || d.ReadTimeSeconds < 0 || d.IOTimeSeconds < 0 {
				t.Fatalf("%+v", d)
			}
			diskName(d.Name)
		}
	})
}

func FuzzParseNetDev(f *testing.F) {
	for _, p := range []string{fixture + "/proc/1/net/dev", "/proc/self/net/dev"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ifcs, err := parseNetDev(b, nil)
		if err != nil {
			return
		}
		for _, ifc := range ifcs {
			if ifc.Name == "" || strings.ContainsAny(ifc.Name, ": \t\n") {
				t.Fatalf("interface name %q", ifc.Name)
			}
			PhysicalInterface(ifc.Name)
		}
	})
}

func FuzzDiskName(f *testing.F) {
	for _, s := range []string{"sda1", "nvme0n1p1", "dm-3", "mmcblk0p2", "xvdaa", "md127"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		disk, whole := diskName(name)
		if whole && disk != name || !strings.HasPrefix(name, disk) {
			t.Fatalf("diskName(%q) = %q, %v", name, disk, whole)
		}
		if disk != "" && !WholeDisk(disk) {
			t.Fatalf("the disk %q of %q is not a whole disk", disk, name)
		}
	})
}
