package cgroups

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/cgroupfs/golden")

const testdata = "../../testdata"

// fixtureResult is one process of a fixture host as the golden file records it.
type fixtureResult struct {
	Primary  string
	Kind     string
	ID       string `json:",omitempty"`
	PodUID   string `json:",omitempty"`
	Path     string
	Stats    *Stats `json:",omitempty"`
	StatsErr string `json:",omitempty"`
}

func openFixture(t testing.TB, layout string) *FS {
	t.Helper()
	f, err := Open(Config{Root: filepath.Join(testdata, "cgroupfs", layout), ProcRoot: filepath.Join(testdata, "proc", layout)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFixtureHosts reads every process of the v1, v2 and hybrid fixture hosts, identifies its
// container and reads its stats, and compares everything with the golden files.
func TestFixtureHosts(t *testing.T) {
	for _, tt := range []struct {
		layout string
		want   Layout
	}{{"v1", LayoutV1}, {"v2", LayoutV2}, {"v2ns", LayoutV2}, {"hybrid", LayoutHybrid}} {
		t.Run(tt.layout, func(t *testing.T) {
			f := openFixture(t, tt.layout)
			if f.Layout() != tt.want {
				t.Fatalf("layout = %v, want %v", f.Layout(), tt.want)
			}
			pids, err := f.Pids(nil)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(pids)
			got := map[string]fixtureResult{}
			for _, pid := range pids {
				p, err := f.ProcessPaths(pid)
				if err != nil {
					t.Fatalf("pid %d: %v", pid, err)
				}
				id := p.Identify()
				r := fixtureResult{Primary: p.Primary(), Kind: id.Kind.String(), ID: id.ID, PodUID: id.PodUID, Path: id.Path}
				if id.Kind != KindNone {
					s, err := f.Stats(p.ContainerPaths(id))
					if err != nil {
						r.StatsErr = err.Error()
					} else {
						r.Stats = &s
					}
				}
				got[strconv.Itoa(int(pid))] = r
			}
			golden := filepath.Join(testdata, "cgroupfs", "golden", tt.layout+".json")
			gotJSON, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			gotJSON = append(gotJSON, '\n')
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update once to create it)", err)
			}
			if !bytes.Equal(want, gotJSON) {
				t.Fatalf("%s differs from what was read:\n%s", golden, gotJSON)
			}
		})
	}
}

// TestFixtureValues pins the headline numbers independently of the golden files, so a golden
// file regenerated from a broken reader cannot hide the breakage.
func TestFixtureValues(t *testing.T) {
	tests := []struct {
		layout string
		pid    uint32
		want   Stats
	}{
		{"v2", 201, Stats{
			CPU: CPU{UsageSeconds: 1.123456, ThrottledSeconds: 0.005, LimitCores: 0.5}, HasCPU: true, HasThrottling: true,
			Memory: Memory{RSSBytes: 1<<20 + 4096, CacheBytes: 2 << 20, LimitBytes: 64 << 20}, HasMemory: true, // rss: anon + file_mapped
			IO:  []DeviceIO{{Device: "nvme0n1", Reads: 100, Writes: 200, ReadBytes: 4096000, WrittenBytes: 8192000}},
			PSI: PSI{CPU: Pressure{0.251, 0.051}, Memory: Pressure{0.0016, 0.0008}, IO: Pressure{3.00001, 2.00001}}, HasPSI: true,
		}},
		{"v2", 202, Stats{
			CPU: CPU{UsageSeconds: 2.123456, ThrottledSeconds: 0.01}, HasCPU: true, HasThrottling: true,
			Memory: Memory{RSSBytes: 2<<20 + 4096, CacheBytes: 4 << 20}, HasMemory: true,
			IO:  []DeviceIO{{Device: "sda", Reads: 1, ReadBytes: 1024}, {Device: "sdb", Writes: 2, WrittenBytes: 2048}},
			PSI: PSI{CPU: Pressure{0.252, 0.052}, Memory: Pressure{0.0017, 0.0009}, IO: Pressure{3.00002, 2.00002}}, HasPSI: true,
		}},
		{"v1", 101, Stats{
			CPU: CPU{UsageSeconds: 6.000000005, ThrottledSeconds: 0.012, LimitCores: 0.5}, HasCPU: true, HasThrottling: true,
			Memory: Memory{RSSBytes: 6 * 81920, CacheBytes: 6 * 40960, LimitBytes: 64 << 20}, HasMemory: true,
			IO: []DeviceIO{{Device: "sda", Reads: 60, Writes: 120, ReadBytes: 6 * 40960, WrittenBytes: 6 * 81920}},
		}},
		{"v1", 102, Stats{ // quota -1 and PAGE_COUNTER_MAX: no limits
			CPU: CPU{UsageSeconds: 7.000000005, ThrottledSeconds: 0.014}, HasCPU: true, HasThrottling: true,
			Memory: Memory{RSSBytes: 7 * 81920, CacheBytes: 7 * 40960}, HasMemory: true,
			IO: []DeviceIO{{Device: "sda", Reads: 70, Writes: 140, ReadBytes: 7 * 40960, WrittenBytes: 7 * 81920}},
		}},
		{"hybrid", 301, Stats{
			CPU: CPU{UsageSeconds: 9.000000007, ThrottledSeconds: 0.027, LimitCores: 0.5}, HasCPU: true, HasThrottling: true,
			Memory: Memory{RSSBytes: 9 * 8192, CacheBytes: 9 * 4096, LimitBytes: 64 << 20}, HasMemory: true,
			PSI: PSI{CPU: Pressure{0.259, 0.059}, Memory: Pressure{0.0024, 0.0016}, IO: Pressure{3.00009, 2.00009}}, HasPSI: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.layout+"/"+strconv.Itoa(int(tt.pid)), func(t *testing.T) {
			f := openFixture(t, tt.layout)
			p, err := f.ProcessPaths(tt.pid)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Stats(p)
			if err != nil {
				t.Fatal(err)
			}
			if !statsEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestRSSAsCoroot: container_resources_memory_rss_bytes is coroot-node-agent's resident
// memory, anonymous plus mapped file pages: v1 total_rss + total_mapped_file (rss + mapped_file
// without the hierarchical keys), v2 anon + file_mapped.
func TestRSSAsCoroot(t *testing.T) {
	const dockerV1 = "memory/docker/ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147/memory.stat"
	tests := []struct {
		name, layout, file, stat string
		pid                      uint32
		rss, cache               uint64
	}{
		{"v1 hierarchical", "v1", dockerV1, "cache 1\nrss 2\nmapped_file 3\ntotal_cache 4096\ntotal_rss 8192\ntotal_mapped_file 12288\n", 101, 8192 + 12288, 4096},
		{"v1 without total_", "v1", dockerV1, "cache 4096\nrss 8192\nmapped_file 16384\n", 101, 8192 + 16384, 4096},
		{
			"v2", "v2", "system.slice/docker-7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14.scope/memory.stat",
			"anon 8192\nfile 40960\nfile_mapped 12288\nshmem 0\n", 201, 8192 + 12288, 40960,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", tt.layout))
			if err := os.WriteFile(filepath.Join(root, tt.file), []byte(tt.stat), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(Config{Root: root, ProcRoot: filepath.Join(testdata, "proc", tt.layout)})
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.ProcessPaths(tt.pid)
			if err != nil {
				t.Fatal(err)
			}
			s, err := f.Stats(p)
			if err != nil || !s.HasMemory || s.Memory.RSSBytes != tt.rss || s.Memory.CacheBytes != tt.cache {
				t.Fatalf("memory %+v (has %v, %v); want rss %d, cache %d", s.Memory, s.HasMemory, err, tt.rss, tt.cache)
			}
		})
	}
}

func statsEqual(a, b Stats) bool {
	near := func(x, y float64) bool { d := x - y; return d < 1e-9 && d > -1e-9 }
	if a.HasCPU != b.HasCPU || a.HasThrottling != b.HasThrottling || a.HasMemory != b.HasMemory || a.HasPSI != b.HasPSI || a.Memory != b.Memory ||
		!slices.Equal(a.IO, b.IO) {
		return false
	}
	for _, p := range [][2]float64{
		{a.CPU.UsageSeconds, b.CPU.UsageSeconds},
		{a.CPU.ThrottledSeconds, b.CPU.ThrottledSeconds},
		{a.CPU.LimitCores, b.CPU.LimitCores},
		{a.PSI.CPU.SomeSeconds, b.PSI.CPU.SomeSeconds},
		{a.PSI.CPU.FullSeconds, b.PSI.CPU.FullSeconds},
		{a.PSI.Memory.SomeSeconds, b.PSI.Memory.SomeSeconds},
		{a.PSI.Memory.FullSeconds, b.PSI.Memory.FullSeconds},
		{a.PSI.IO.SomeSeconds, b.PSI.IO.SomeSeconds},
		{a.PSI.IO.FullSeconds, b.PSI.IO.FullSeconds},
	} {
		if !near(p[0], p[1]) {
			return false
		}
	}
	return true
}

func TestStatsBadInput(t *testing.T) {
	const dockerID = "7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
	dir := "/system.slice/docker-" + dockerID + ".scope"
	p := Paths{Unified: dir}
	tests := []struct {
		name    string
		damage  func(root string) error
		wantErr string // "" = no error
		gone    bool
		check   func(t *testing.T, s Stats)
	}{
		{
			name:   "cgroup removed",
			damage: func(root string) error { return os.RemoveAll(root + dir) },
			gone:   true,
		},
		{
			name: "malformed memory.stat keeps cpu",
			damage: func(root string) error {
				return os.WriteFile(root+dir+"/memory.stat", []byte("anon 12\nfile x\n"), 0o644)
			},
			wantErr: "memory.stat: line 2",
			check: func(t *testing.T, s Stats) {
				t.Helper()
				if !s.HasCPU || s.CPU.LimitCores != 0.5 || s.HasMemory {
					t.Fatalf("partial stats wrong: %+v", s)
				}
				if s.Memory.LimitBytes != 64<<20 {
					t.Fatalf("memory.max lost: %+v", s.Memory)
				}
			},
		},
		{
			name: "unreadable io.stat (a directory)",
			damage: func(root string) error {
				if err := os.Remove(root + dir + "/io.stat"); err != nil {
					return err
				}
				return os.Mkdir(root+dir+"/io.stat", 0o755)
			},
			wantErr: "is a directory",
			check: func(t *testing.T, s Stats) {
				t.Helper()
				if len(s.IO) != 0 || !s.HasPSI || !s.HasMemory {
					t.Fatalf("partial stats wrong: %+v", s)
				}
			},
		},
		{
			name:   "pressure files absent (psi=0)",
			damage: func(root string) error { return os.Remove(root + dir + "/cpu.pressure") },
			check: func(t *testing.T, s Stats) {
				t.Helper()
				if !s.HasPSI || s.PSI.CPU != (Pressure{}) || s.PSI.IO.SomeSeconds == 0 {
					t.Fatalf("psi wrong: %+v", s.PSI)
				}
			},
		},
		{
			name:    "garbage cpu.max",
			damage:  func(root string) error { return os.WriteFile(root+dir+"/cpu.max", []byte("lots\n"), 0o644) },
			wantErr: "cpu.max",
			check: func(t *testing.T, s Stats) {
				t.Helper()
				if !s.HasCPU || s.CPU.LimitCores != 0 || s.CPU.UsageSeconds == 0 {
					t.Fatalf("cpu wrong: %+v", s.CPU)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
			if err := tt.damage(root); err != nil {
				t.Fatal(err)
			}
			f, err := Open(Config{Root: root, ProcRoot: filepath.Join(testdata, "proc", "v2")})
			if err != nil {
				t.Fatal(err)
			}
			s, err := f.Stats(p)
			switch {
			case tt.gone:
				if !errors.Is(err, ErrCgroupGone) {
					t.Fatalf("err = %v, want ErrCgroupGone", err)
				}
			case tt.wantErr == "":
				if err != nil {
					t.Fatal(err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestProcessPathsExited(t *testing.T) {
	f := openFixture(t, "v2")
	_, err := f.ProcessPaths(999999)
	if !ProcessExited(err) {
		t.Fatalf("ProcessPaths of a missing pid: %v, want ProcessExited", err)
	}
}

func TestOpenNoHierarchy(t *testing.T) {
	if _, err := Open(Config{Root: t.TempDir(), ProcRoot: "/proc"}); err == nil || !strings.Contains(err.Error(), "no cgroup hierarchy") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if def.ProcRoot != "" {
		t.Errorf("default proc_root %q, want \"\" (the receiver's node.proc_root)", def.ProcRoot)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Root: "", ProcRoot: "/proc"}, "root must not be empty"},
		{Config{Root: "sys/fs/cgroup", ProcRoot: "/proc"}, "root must be an absolute path"},
		{Config{Root: "/sys/fs/cgroup", ProcRoot: "proc"}, "proc_root must be an absolute path"},
	} {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
