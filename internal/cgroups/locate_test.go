package cgroups

import (
	"os"
	"path/filepath"
	"testing"
)

// locateHost builds a hybrid (or v1, or v2) root with the given cgroup directories.
func locateHost(t *testing.T, layout string, dirs ...string) *FS {
	t.Helper()
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	switch layout {
	case "v2":
		if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	case "hybrid":
		mk("unified")
		if err := os.WriteFile(filepath.Join(root, "unified", "cgroup.controllers"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		fallthrough
	default:
		for _, c := range []string{"systemd", "cpu", "cpuacct", "memory", "blkio"} {
			mk(c)
		}
	}
	for _, d := range dirs {
		mk(d)
	}
	f, err := Open(Config{Root: root, ProcRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLocate(t *testing.T) {
	const ctr = "/docker/f258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369c"
	docker := Identify(ctr)
	other := Identify("/codexray-test-1")
	all := func(p string) Paths { return Paths{Unified: p, Systemd: p, CPU: p, CPUAcct: p, Memory: p, Blkio: p} }
	tests := []struct {
		name        string
		layout      string
		dirs        []string
		id          Identity
		seen        Paths
		want        Paths
		wantMissing Hierarchies
	}{
		{
			"a runtime's container seen in cgroup v2 only is completed from its directories", "hybrid",
			[]string{"unified" + ctr, "cpu" + ctr, "cpuacct" + ctr, "memory" + ctr, "blkio" + ctr},
			docker,
			Paths{Unified: ctr},
			Paths{Unified: ctr, CPU: ctr, CPUAcct: ctr, Memory: ctr, Blkio: ctr},
			0,
		},
		{
			"a hierarchy whose directory does not exist yet stays missing", "hybrid",
			[]string{"unified" + ctr, "memory" + ctr},
			docker,
			Paths{Unified: ctr},
			Paths{Unified: ctr, Memory: ctr},
			HierarchyCPU | HierarchyCPUAcct | HierarchyBlkio,
		},
		{
			"paths outside the container (a shim's, a parent's) are dropped, then re-resolved", "v1",
			[]string{"cpu" + ctr, "cpuacct" + ctr, "memory" + ctr, "blkio" + ctr},
			docker,
			Paths{Memory: "/process_api/62565ef5", CPU: "/docker", Other: "/"},
			Paths{CPU: ctr, CPUAcct: ctr, Memory: ctr, Blkio: ctr},
			0,
		},
		{
			"hybrid's cgroup v2 is located but not expected", "hybrid",
			[]string{"cpu" + ctr, "cpuacct" + ctr, "memory" + ctr, "blkio" + ctr},
			docker,
			Paths{Memory: ctr},
			Paths{CPU: ctr, CPUAcct: ctr, Memory: ctr, Blkio: ctr},
			0,
		},
		{"pure v2: one hierarchy", "v2", []string{ctr}, docker, Paths{}, Paths{Unified: ctr}, 0},
		{"pure v2, directory not there yet", "v2", nil, docker, Paths{}, Paths{}, HierarchyUnified},
		{
			"a cgroup that is no runtime's is not completed from its name", "hybrid",
			[]string{"cpu/codexray-test-1", "memory/codexray-test-1"},
			other,
			Paths{Memory: "/codexray-test-1", CPU: "/"},
			Paths{Memory: "/codexray-test-1"},
			0,
		},
		{"nothing for the root", "hybrid", nil, Identify("/"), all("/"), Paths{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := locateHost(t, tt.layout, tt.dirs...)
			got, missing := f.Locate(tt.id, tt.seen)
			if got != tt.want || missing != tt.wantMissing {
				t.Fatalf("Locate = %+v, missing %v\nwant     %+v, missing %v", got, missing, tt.want, tt.wantMissing)
			}
		})
	}
}

func TestPathsMergeAndHas(t *testing.T) {
	p := Paths{Unified: "/a", Memory: "/a"}.Merge(Paths{Unified: "/b", CPU: "/a", Other: "/a"})
	if p != (Paths{Unified: "/a", Memory: "/a", CPU: "/a", Other: "/a"}) {
		t.Fatalf("Merge = %+v", p)
	}
	if h := p.Has(); h != HierarchyUnified|HierarchyMemory|HierarchyCPU || h.String() != "unified,cpu,memory" {
		t.Fatalf("Has = %v (%b)", h, h)
	}
}

// TestDirInodeStaysInOneHierarchy: the inode is read in the first hierarchy of the preference
// that has a path and a directory, and DirInodeIn reads the same hierarchy later.
func TestDirInodeStaysInOneHierarchy(t *testing.T) {
	const ctr = "/docker/f258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369c"
	f := locateHost(t, "hybrid", "cpuacct"+ctr, "memory"+ctr)
	h, ino, err := f.DirInode(Paths{Unified: ctr, CPUAcct: ctr, Memory: ctr})
	if err != nil || h != HierarchyCPUAcct || ino == 0 {
		t.Fatalf("DirInode = %v %d %v, want cpuacct (cgroup v2 has no directory yet)", h, ino, err)
	}
	if again, err := f.DirInodeIn(h, ctr); err != nil || again != ino {
		t.Fatalf("DirInodeIn = %d %v, want %d", again, err, ino)
	}
	if _, _, err := f.DirInode(Paths{}); err == nil {
		t.Fatal("DirInode of no paths did not fail")
	}
}
