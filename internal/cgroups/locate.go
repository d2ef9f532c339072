package cgroups

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
)

// A container's paths are not known at once. A runtime creates the container's cgroup and then
// moves its first process in, one hierarchy after another (runc joins the cgroup v2 and every
// v1 controller hierarchy in turn, in no fixed order), so a process seen in that window — by an
// exec event, a lookup, a scan — lists some hierarchies inside the container and others still
// at the runtime's or shim's cgroup, or at the root. Paths.ContainerPaths keeps only the former;
// Locate completes the rest from the container's identity, and the registry calls it until the
// container is complete (see internal/containers).

// Hierarchies is a set of the hierarchies the FS reads, one bit per field of Paths except Other.
type Hierarchies uint8

// The hierarchies, in the order of hierarchyNames.
const (
	HierarchyUnified Hierarchies = 1 << iota
	HierarchySystemd
	HierarchyCPU
	HierarchyCPUAcct
	HierarchyMemory
	HierarchyBlkio
)

// String lists the hierarchies by name ("cpu,memory"), "" for none.
func (h Hierarchies) String() string {
	var names []string
	for i, n := range hierarchyNames {
		if h&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// Has returns the hierarchies in which p has a path.
func (p Paths) Has() Hierarchies {
	var h Hierarchies
	for i, s := range p.fields() {
		if *s != "" {
			h |= 1 << i
		}
	}
	return h
}

// Merge returns p with every hierarchy it lacks taken from q (Other included).
func (p Paths) Merge(q Paths) Paths {
	dst, src := p.fields(), q.fields()
	for i := range dst {
		if *dst[i] == "" {
			*dst[i] = *src[i]
		}
	}
	if p.Other == "" {
		p.Other = q.Other
	}
	return p
}

// IsRuntime reports whether the kind is a container runtime's (docker, containerd, CRI-O,
// podman, kubepods): its cgroup's name carries the runtime's container id, so a directory of
// that name is that container's in any hierarchy.
func (k Kind) IsRuntime() bool {
	return k.rank() == 3
}

// statHierarchies are the mounted hierarchies Stats reads for this layout.
func (f *FS) statHierarchies() Hierarchies {
	if f.layout == LayoutV2 {
		return HierarchyUnified
	}
	var h Hierarchies
	for i, dir := range f.hierarchyDirs() {
		bit := Hierarchies(1 << i)
		if dir != "" && bit != HierarchySystemd {
			h |= bit
		}
	}
	return h
}

// Expected returns the hierarchies a container must have a path in for Stats to read all it
// reports. A runtime creates its container's cgroup in every controller hierarchy (v1), or in
// the one cgroup2 hierarchy (v2), so all of those are expected. Hybrid's cgroup2 hierarchy
// carries PSI only and older runtimes skip it: located when it is there, never expected. Other
// kinds (systemd services, hand-made cgroups) have controllers only where someone enabled them:
// nothing is expected, what their processes show is taken.
func (f *FS) Expected(id Identity) Hierarchies {
	if !id.Kind.IsRuntime() {
		return 0
	}
	h := f.statHierarchies()
	if f.layout == LayoutHybrid {
		h &^= HierarchyUnified
	}
	return h
}

// Locate makes p (a container's paths, as Paths.ContainerPaths gives them) converge on the
// container's own cgroups: any path other than id.Path is dropped, for it would read another
// cgroup's numbers (a shim's, the runtime's, a parent's); then, for a runtime's container, each
// hierarchy Stats reads that p lacks is set to id.Path when the container's directory exists in
// it. It returns the paths and the expected hierarchies (see Expected) still missing: call it
// again later until none are.
func (f *FS) Locate(id Identity, p Paths) (Paths, Hierarchies) {
	if id.Kind == KindNone || id.Path == "" || id.Path == "/" {
		return Paths{}, 0
	}
	fields := p.fields()
	for _, s := range fields {
		if *s != "" && *s != id.Path {
			*s = ""
		}
	}
	if p.Other != "" && p.Other != id.Path {
		p.Other = ""
	}
	if id.Kind.IsRuntime() {
		dirs, read := f.hierarchyDirs(), f.statHierarchies()
		for i, s := range fields {
			if *s != "" || read&(1<<i) == 0 {
				continue
			}
			if isDir(dirs[i] + id.Path) {
				*s = id.Path
			}
		}
	}
	return p, f.Expected(id) &^ p.Has()
}

func isDir(p string) bool {
	var st syscall.Stat_t
	return syscall.Stat(p, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR
}

// inodeOrder is the preference of DirInode: the cgroup2 hierarchy (where eBPF's ids come
// from), then the v1 controllers.
var inodeOrder = [...]Hierarchies{HierarchyUnified, HierarchyCPUAcct, HierarchyCPU, HierarchyMemory, HierarchyBlkio}

// DirInode returns the inode of the directory of a cgroup in p and the hierarchy it was read
// in: the first of the cgroup2 hierarchy, cpuacct, cpu, memory and blkio in which p has a path
// whose directory exists. A cgroup removed and created again under the same name (a container
// restarted into the same path) has a new inode, so the inode tells container instances apart
// where the path cannot; compare inodes of one hierarchy only (DirInodeIn), since a container
// seen while its runtime moved it may first be known in one hierarchy and later in another.
func (f *FS) DirInode(p Paths) (Hierarchies, uint64, error) {
	fields := p.fields()
	err := errors.New("no cgroup directory to identify")
	for _, h := range inodeOrder {
		i := hierarchyIndex(h)
		if *fields[i] == "" {
			continue
		}
		var ino uint64
		if ino, err = f.DirInodeIn(h, *fields[i]); err == nil {
			return h, ino, nil
		}
	}
	return 0, 0, err
}

// DirInodeIn returns the inode of the directory of cgroup path in hierarchy h (one bit).
func (f *FS) DirInodeIn(h Hierarchies, path string) (uint64, error) {
	i := hierarchyIndex(h)
	if i < 0 || path == "" {
		return 0, errors.New("no such hierarchy")
	}
	dir := f.hierarchyDirs()[i]
	if dir == "" {
		return 0, errors.New(hierarchyNames[i] + " hierarchy not mounted")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir+path, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: dir + path, Err: err}
	}
	return st.Ino, nil
}

func hierarchyIndex(h Hierarchies) int {
	for i := range hierarchyNames {
		if h == 1<<i {
			return i
		}
	}
	return -1
}
