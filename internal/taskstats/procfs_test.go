package taskstats

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		start  uint64
		zombie bool
		ok     bool
	}{
		{"running", "1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 2793472 128 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0", 98765, false, true},
		{"zombie", "77 (sh) Z 1 77 77 0 -1 4228108 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0", 5, true, true},
		{"comm with spaces and parens", "9 (a) b) (c) R 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0", 42, false, true},
		{"newline after starttime", "9 (x) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 43\n", 43, false, true},
		{"too few fields", "9 (x) S 1 9 9", 0, false, false},
		{"no comm", "9 x S 1", 0, false, false},
		{"bad state", "9 (x) SS 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 43", 0, false, false},
		{"bad starttime", "9 (x) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4x3 1", 0, false, false},
		{"empty", "", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, zombie, err := parseStat([]byte(tt.line))
			if (err == nil) != tt.ok || start != tt.start || zombie != tt.zombie {
				t.Fatalf("start %d zombie %v err %v", start, zombie, err)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 2793472"))
	f.Add([]byte("9 (a) b) (c) R 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseStat(b)
	})
}

func TestProcfs(t *testing.T) {
	root := t.TempDir()
	for pid, stat := range map[string]string{
		"1":   "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0",
		"250": "250 (app) Z 1 250 250 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 900 0 0",
	} {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &procReader{root: root}
	pids, err := p.TGIDs()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, []uint32{1, 250}) {
		t.Fatalf("pids %v", pids)
	}
	if st, z, err := p.Start(250); err != nil || st != 900 || !z {
		t.Fatalf("250: %d %v %v", st, z, err)
	}
	if _, _, err := p.Start(251); err == nil {
		t.Fatal("no error for a missing pid")
	}
}
