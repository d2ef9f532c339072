package cgroups

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

const (
	agentPodSys = "a9e7c1d2_3b4f_4a5b_8c6d_7e8f9a0b1c2d"
	agentPodUID = "a9e7c1d2-3b4f-4a5b-8c6d-7e8f9a0b1c2d"
	agentID     = "a9e7c1d23b4f4a5b8c6d7e8f9a0b1c2da9e7c1d23b4f4a5b8c6d7e8f9a0b1c2d"
	sidecarID   = "5edeca755edeca755edeca755edeca755edeca755edeca755edeca755edeca75"
	// agentNSRoot is where the v2ns fixture's agent (pid 4242, ProcRoot/self) has its cgroup
	// namespace root: its own container's cgroup, as containerd sets it up on cgroup v2.
	agentNSRoot = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + agentPodSys + ".slice/cri-containerd-" + agentID + ".scope"
)

// TestPrivateNamespaceFixture reads a pod agent's view: the same host as the v2 fixture, but
// every /proc/<pid>/cgroup relative to the agent's own container cgroup. Each process must be
// identified and measured exactly as on the host.
func TestPrivateNamespaceFixture(t *testing.T) {
	host := openFixture(t, "v2")
	pod := openFixture(t, "v2ns")
	if got := pod.Namespaces(); !slices.Equal(got, []Namespace{{Hierarchy: "unified", State: NamespacePrivate, Root: agentNSRoot}}) {
		t.Fatalf("Namespaces() = %+v", got)
	}
	if got := host.Namespaces(); len(got) != 1 || got[0].State != NamespaceUnchecked || !strings.Contains(got[0].Reason, "own cgroup unknown") {
		t.Fatalf("host fixture without ProcRoot/self: %+v", got)
	}
	pids, err := host.Pids(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		want, err := host.ProcessPaths(pid)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pod.ProcessPaths(pid)
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		if got != want {
			t.Fatalf("pid %d: paths %+v, want the host's %+v", pid, got, want)
		}
		id := got.Identify()
		if id != want.Identify() {
			t.Fatalf("pid %d: identity %+v, want %+v", pid, id, want.Identify())
		}
		if id.Kind == KindNone {
			continue
		}
		ws, werr := host.Stats(want.ContainerPaths(id))
		gs, gerr := pod.Stats(got.ContainerPaths(id))
		if werr != nil || gerr != nil || gs.CPU != ws.CPU || gs.Memory != ws.Memory || gs.PSI != ws.PSI || !slices.Equal(gs.IO, ws.IO) {
			t.Fatalf("pid %d: stats %+v (%v), want %+v (%v)", pid, gs, gerr, ws, werr)
		}
	}

	// The agent's own processes: "/" is its own container, "/../<sibling>" the pod's sidecar.
	for _, tt := range []struct {
		pid uint32
		id  string
		cpu float64
	}{{4242, agentID, 3}, {4250, sidecarID, 4}} {
		p, err := pod.ProcessPaths(tt.pid)
		if err != nil {
			t.Fatal(err)
		}
		id := p.Identify()
		want := Identity{
			Kind: KindContainerd, ID: tt.id, PodUID: agentPodUID,
			Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + agentPodSys + ".slice/cri-containerd-" + tt.id + ".scope",
		}
		if id != want {
			t.Fatalf("pid %d: identity %+v, want %+v", tt.pid, id, want)
		}
		s, err := pod.Stats(p.ContainerPaths(id))
		if err != nil || s.CPU.UsageSeconds != tt.cpu {
			t.Fatalf("pid %d: stats %+v %v, want %v s of cpu", tt.pid, s.CPU, err, tt.cpu)
		}
		// eBPF reports the inode in the host hierarchy: the resolved path must name it.
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(testdata, "cgroupfs", "v2ns", want.Path), &st); err != nil {
			t.Fatal(err)
		}
		if ino, err := pod.CgroupID(p.Unified); err != nil || ino != st.Ino {
			t.Fatalf("pid %d: CgroupID = %d %v, want %d", tt.pid, ino, err, st.Ino)
		}
	}
}

func TestNamespaceStates(t *testing.T) {
	v2ns := filepath.Join(testdata, "cgroupfs", "v2ns")
	procNS := filepath.Join(testdata, "proc", "v2ns")
	agentProcs := filepath.Join(agentNSRoot, "cgroup.procs")
	tests := []struct {
		name string
		// prepare returns the cgroup and proc roots to open.
		prepare   func(t *testing.T) (root, proc string)
		state     NamespaceState
		reason    string
		pid       uint32
		wantPath  string // Unified path of pid, or
		wantError error
	}{
		{
			name:     "private namespace resolved",
			prepare:  func(*testing.T) (string, string) { return v2ns, procNS },
			state:    NamespacePrivate,
			pid:      202,
			wantPath: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice/cri-containerd-e147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258b.scope",
		},
		{
			name: "own pid listed nowhere: every process refused",
			prepare: func(t *testing.T) (string, string) {
				t.Helper()
				root := testutil.CopyTree(t, v2ns)
				if err := os.WriteFile(filepath.Join(root, agentProcs), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return root, procNS
			},
			state: NamespaceUnresolved, reason: "is listed in none of the", pid: 202, wantError: ErrNamespaceRelative,
		},
		{
			name: "unresolved: even the agent's own \"/\" is refused",
			prepare: func(t *testing.T) (string, string) {
				t.Helper()
				root := testutil.CopyTree(t, v2ns)
				if err := os.WriteFile(filepath.Join(root, agentProcs), []byte("1\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return root, procNS
			},
			state: NamespaceUnresolved, pid: 4242, wantError: ErrNamespaceRelative,
		},
		{
			name: "host view verified: own path lists own pid",
			prepare: func(t *testing.T) (string, string) {
				t.Helper()
				root := testutil.CopyTree(t, v2ns)
				proc := testutil.CopyTree(t, procNS)
				if err := os.WriteFile(filepath.Join(proc, "4242", "cgroup"), []byte("0::"+agentNSRoot+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(proc, "202", "cgroup"), []byte("0::/system.slice/nginx.service\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return root, proc
			},
			state: NamespaceHost, pid: 202, wantPath: "/system.slice/nginx.service",
		},
		{
			name: "host view verified: a climbing path is refused, not clamped",
			prepare: func(t *testing.T) (string, string) {
				t.Helper()
				root := testutil.CopyTree(t, v2ns)
				proc := testutil.CopyTree(t, procNS)
				if err := os.WriteFile(filepath.Join(proc, "4242", "cgroup"), []byte("0::"+agentNSRoot+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return root, proc
			},
			state: NamespaceHost, pid: 202, wantError: ErrNamespaceRelative,
		},
		{
			name: "no cgroup.procs anywhere (fixture tree): unchecked, absolute paths kept",
			prepare: func(*testing.T) (string, string) {
				return filepath.Join(testdata, "cgroupfs", "v2"), procNS
			},
			state: NamespaceUnchecked, reason: "no cgroup.procs", pid: 4250, wantError: ErrNamespaceRelative,
		},
		{
			name: "no ProcRoot/self: unchecked, host paths as before",
			prepare: func(*testing.T) (string, string) {
				return filepath.Join(testdata, "cgroupfs", "v2"), filepath.Join(testdata, "proc", "v2")
			},
			state: NamespaceUnchecked, reason: "own cgroup unknown", pid: 206, wantPath: "/system.slice/nginx.service",
		},
		{
			name: "garbage ProcRoot/self/cgroup: unchecked",
			prepare: func(t *testing.T) (string, string) {
				t.Helper()
				proc := testutil.CopyTree(t, procNS)
				if err := os.WriteFile(filepath.Join(proc, "4242", "cgroup"), []byte("garbage"), 0o644); err != nil {
					t.Fatal(err)
				}
				return v2ns, proc
			},
			state: NamespaceUnchecked, reason: "own cgroup unknown", pid: 206, wantError: ErrNamespaceRelative,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, proc := tt.prepare(t)
			f, err := Open(Config{Root: root, ProcRoot: proc})
			if err != nil {
				t.Fatal(err)
			}
			ns := f.Namespaces()
			if len(ns) != 1 || ns[0].State != tt.state || !strings.Contains(ns[0].Reason, tt.reason) {
				t.Fatalf("Namespaces() = %+v, want state %v with reason containing %q", ns, tt.state, tt.reason)
			}
			p, err := f.ProcessPaths(tt.pid)
			if tt.wantError != nil {
				if !errors.Is(err, tt.wantError) || ProcessExited(err) {
					t.Fatalf("ProcessPaths(%d) = %+v, %v; want %v", tt.pid, p, err, tt.wantError)
				}
				return
			}
			if err != nil || p.Unified != tt.wantPath {
				t.Fatalf("ProcessPaths(%d) = %+v, %v; want unified %s", tt.pid, p, err, tt.wantPath)
			}
		})
	}
}

// TestPlacePaths covers the per-hierarchy rules, including v1 hierarchies of a hybrid host.
func TestPlacePaths(t *testing.T) {
	private := func(roots map[int]Namespace) *FS {
		f := &FS{private: true}
		for i := range f.ns {
			f.ns[i] = Namespace{Hierarchy: hierarchyNames[i], State: NamespaceHost, Root: "/"}
		}
		for i, ns := range roots {
			f.ns[i] = ns
		}
		return f
	}
	const unified, memory = 0, 4
	tests := []struct {
		name    string
		fs      *FS
		in      Paths
		want    Paths
		wantErr bool
	}{
		{
			name: "hybrid: unified and memory in private roots, cpu on the host",
			fs: private(map[int]Namespace{
				unified: {State: NamespacePrivate, Root: "/codexray-test-1/agent"},
				memory:  {State: NamespacePrivate, Root: "/process_api/5d86"},
			}),
			in:   Paths{Unified: "/../target", Memory: "/", CPU: "/", Other: "/x"},
			want: Paths{Unified: "/codexray-test-1/target", Memory: "/process_api/5d86", CPU: "/"},
		},
		{
			name: "more .. than the root is deep stops at the hierarchy root",
			fs:   private(map[int]Namespace{unified: {State: NamespacePrivate, Root: "/a"}}),
			in:   Paths{Unified: "/../../../b"},
			want: Paths{Unified: "/b"},
		},
		{
			name:    "unresolved hierarchy refuses even a path below the root",
			fs:      private(map[int]Namespace{memory: {State: NamespaceUnresolved, Root: "/"}}),
			in:      Paths{Unified: "/a", Memory: "/b"},
			wantErr: true,
		},
		{
			name:    "unchecked hierarchy in a private FS refuses a climbing path",
			fs:      private(map[int]Namespace{unified: {State: NamespacePrivate, Root: "/a"}, memory: {State: NamespaceUnchecked, Root: "/"}}),
			in:      Paths{Unified: "/b", Memory: "/../c"},
			wantErr: true,
		},
		{
			name: "host FS keeps paths and drops a climbing Other",
			fs:   &FS{},
			in:   Paths{Unified: "/a/..b", CPU: "/c", Other: "/../d"},
			want: Paths{Unified: "/a/..b", CPU: "/c"},
		},
		{
			name: "\"/..b\" is a name, not a climb",
			fs:   &FS{},
			in:   Paths{Unified: "/..b"},
			want: Paths{Unified: "/..b"},
		},
		{
			name:    "host FS refuses a climbing path",
			fs:      &FS{},
			in:      Paths{Unified: "/.."},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.in
			err := tt.fs.placePaths(&p)
			if tt.wantErr {
				if !errors.Is(err, ErrNamespaceRelative) {
					t.Fatalf("placePaths(%+v) = %+v, %v; want ErrNamespaceRelative", tt.in, p, err)
				}
				return
			}
			if err != nil || p != tt.want {
				t.Fatalf("placePaths(%+v) = %+v, %v; want %+v", tt.in, p, err, tt.want)
			}
		})
	}
}

// FuzzJoinNamespace: the allocation-saving join equals path.Join for every clean root.
func FuzzJoinNamespace(f *testing.F) {
	f.Add("/kubepods.slice/a/b", "/../../x.scope")
	f.Add("/", "/..")
	f.Add("/a", "/../../../b/./c//d/")
	f.Add("/a/b", "/")
	f.Fuzz(func(t *testing.T, root, rel string) {
		root = path.Clean("/" + root)
		if rel == "" || rel[0] != '/' {
			return // ParseProcCgroup accepts absolute paths only
		}
		if got, want := joinNamespace(root, rel), path.Join(root, rel); got != want {
			t.Fatalf("joinNamespace(%q, %q) = %q, want %q", root, rel, got, want)
		}
	})
}

// FuzzPlacePaths: whatever a process's cgroup file says, a placed path is absolute, clean and
// never climbs above the hierarchy root.
func FuzzPlacePaths(f *testing.F) {
	f.Add([]byte("0::/../../kubepods-besteffort.slice/x.scope\n"), "/kubepods.slice/a/b")
	f.Add([]byte("4:memory:/..\n0::/\n"), "/")
	f.Add([]byte("0::/a/../../b/./c//d (deleted)\n"), "/r")
	f.Fuzz(func(t *testing.T, data []byte, root string) {
		p, err := ParseProcCgroup(data)
		if err != nil {
			return
		}
		root = path.Clean("/" + root) // as findPID returns it
		fs := &FS{private: true}
		for i := range fs.ns {
			fs.ns[i] = Namespace{State: NamespacePrivate, Root: root}
		}
		if err := fs.placePaths(&p); err != nil {
			t.Fatalf("placePaths with every root known: %v", err)
		}
		for _, s := range p.fields() {
			if *s == "" {
				continue
			}
			if (*s)[0] != '/' || isNamespaceRelative(*s) || strings.Contains(*s+"/", "/../") || strings.Contains(*s, "//") {
				t.Fatalf("placed path %q from %q under %q", *s, data, root)
			}
		}
		if p.Other != "" {
			t.Fatalf("Other kept in a private namespace: %q", p.Other)
		}
	})
}
