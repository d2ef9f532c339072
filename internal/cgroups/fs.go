package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// Layout is how a host mounts its cgroup hierarchies.
type Layout uint8

const (
	// LayoutV1 means only v1 controller hierarchies under Root/<controller>.
	LayoutV1 Layout = iota + 1
	// LayoutV2 means Root is a cgroup2 file system with every controller (most production nodes).
	LayoutV2
	// LayoutHybrid means v1 controllers under Root/<controller> and a cgroup2 hierarchy at
	// Root/unified that carries PSI and the ids eBPF sees, but no controllers.
	LayoutHybrid
)

func (l Layout) String() string {
	switch l {
	case LayoutV1:
		return "v1"
	case LayoutV2:
		return "v2"
	case LayoutHybrid:
		return "hybrid"
	}
	return "unknown"
}

// FS reads cgroups and process memberships below configurable roots. It is safe for
// concurrent use and keeps no per-container state.
type FS struct {
	layout   Layout
	procRoot string
	// unified is the directory of the cgroup2 hierarchy ("" on LayoutV1).
	unified string
	// v1 controller mount directories ("" when the controller is not mounted).
	cpuDir, cpuacctDir, memoryDir, blkioDir string
	// systemdDir is the v1 named hierarchy name=systemd, only used to place namespace-relative
	// paths.
	systemdDir string

	// ns is the agent's cgroup namespace per hierarchy (order of hierarchyNames); private is
	// set when any hierarchy's paths must be joined to a root or refused.
	ns      [hierarchyCount]Namespace
	private bool

	devices deviceNames
	bufs    sync.Pool
}

// Open detects the layout under cfg.Root. It fails when no cgroup hierarchy is there.
func Open(cfg Config) (*FS, error) {
	f := &FS{procRoot: procfs.Root(cfg.ProcRoot)}
	f.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	f.devices.partitions = filepath.Join(f.procRoot, "partitions")
	switch {
	case exists(filepath.Join(cfg.Root, "cgroup.controllers")):
		f.layout = LayoutV2
		f.unified = cfg.Root
		f.resolveNamespaces()
		return f, nil
	case exists(filepath.Join(cfg.Root, "unified", "cgroup.controllers")):
		f.layout = LayoutHybrid
		f.unified = filepath.Join(cfg.Root, "unified")
	default:
		f.layout = LayoutV1
	}
	f.cpuDir = controllerDir(cfg.Root, "cpu")
	f.cpuacctDir = controllerDir(cfg.Root, "cpuacct")
	f.memoryDir = controllerDir(cfg.Root, "memory")
	f.blkioDir = controllerDir(cfg.Root, "blkio")
	if f.layout == LayoutV1 && f.cpuDir == "" && f.cpuacctDir == "" && f.memoryDir == "" && f.blkioDir == "" {
		return nil, fmt.Errorf("no cgroup hierarchy under %s (neither cgroup.controllers nor v1 controller directories)", cfg.Root)
	}
	f.systemdDir = controllerDir(cfg.Root, "systemd")
	f.resolveNamespaces()
	return f, nil
}

// Layout is the detected layout.
func (f *FS) Layout() Layout { return f.layout }

// controllerDir finds the mount of a v1 controller: Root/<name>, or a co-mounted directory
// such as Root/cpu,cpuacct when the distribution did not add the per-controller symlinks.
func controllerDir(root, name string) string {
	if d := filepath.Join(root, name); exists(d) {
		return d
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		for _, c := range strings.Split(e.Name(), ",") {
			if c == name {
				return filepath.Join(root, e.Name())
			}
		}
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ProcessPaths reads /proc/<pid>/cgroup and returns paths from each hierarchy's root, also
// when the agent runs in a private cgroup namespace (see Namespaces). An exited process gives
// an error satisfying errors.Is(err, fs.ErrNotExist) (or ESRCH while it is being reaped); a
// path that cannot be placed on the host hierarchy one wrapping ErrNamespaceRelative.
func (f *FS) ProcessPaths(pid uint32) (Paths, error) {
	bp := f.bufs.Get().(*[]byte)
	defer f.bufs.Put(bp)
	data, err := procfs.ReadFile(procfs.PidPath(f.procRoot, pid, "cgroup"), bp)
	if err != nil {
		return Paths{}, err
	}
	p, err := ParseProcCgroup(data)
	if err != nil {
		return Paths{}, fmt.Errorf("/proc/%d/cgroup: %w", pid, err)
	}
	if err := f.placePaths(&p); err != nil {
		return Paths{}, fmt.Errorf("/proc/%d/cgroup: %w", pid, err)
	}
	return p, nil
}

// ProcessExited reports whether an error from ProcessPaths means the process is gone.
func ProcessExited(err error) bool {
	return procfs.Gone(err)
}

// Pids lists the processes in ProcRoot, appending to dst.
func (f *FS) Pids(dst []uint32) ([]uint32, error) {
	return procfs.Pids(f.procRoot, dst)
}

// CgroupID returns the inode number of a cgroup v2 directory: what bpf_get_current_cgroup_id
// returns for tasks in it. It fails on LayoutV1 hosts, which have no such id.
func (f *FS) CgroupID(unifiedPath string) (uint64, error) {
	if f.unified == "" {
		return 0, errors.New("no cgroup v2 hierarchy on this host")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.unified+unifiedPath, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: f.unified + unifiedPath, Err: err}
	}
	return st.Ino, nil
}
