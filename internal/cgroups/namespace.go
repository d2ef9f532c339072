package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// The agent may live in a cgroup namespace of its own. containerd gives every container a
// private one on cgroup v2 nodes, so an agent pod (hostPID, the host's cgroupfs mounted at
// e.g. /host/sys/fs/cgroup) reads other processes' /proc/<pid>/cgroup relative to its own
// cgroup: "0::/../../kubepods-besteffort.slice/…/cri-containerd-<id>.scope". Such a path must
// be joined to the host path of the agent's namespace root before it names a directory under
// the host tree, a container, or a cgroup id that eBPF reports.
//
// How the root is found. Three signals exist:
//   - /proc/self/mountinfo's root field of the host cgroup mount: the kernel prints it relative
//     to the reader's namespace root, as "/../../..": the depth of the root, not its names.
//   - the inode of the agent's own cgroup (bpf_get_current_cgroup_id): needs a BPF program or a
//     cgroupfs mounted inside the agent's namespace, which a pod spec need not give.
//   - membership: the agent's own process is listed in exactly one cgroup.procs per hierarchy.
//     /proc/self/cgroup gives its namespace-relative path S; the directory D of the host tree
//     whose cgroup.procs lists the agent's pid is its absolute path; the root is D with S cut
//     off the end. It needs nothing beyond the host tree the agent reads anyway, works for
//     every hierarchy (v1 controllers are namespaced too) and cannot match a wrong directory.
//
// So membership it is. Checking Root+S first makes the common host case one file read; the
// walk of the host tree only happens inside a private namespace, once, at Open.

// NamespaceState says how the agent's cgroup namespace was resolved for one hierarchy.
type NamespaceState uint8

const (
	// NamespaceUnchecked means membership could not be checked (no ProcRoot/self/cgroup, or no
	// cgroup.procs files, as in fixture trees). Paths are taken as absolute, as on a host;
	// paths that climb above the namespace root ("/..") are refused.
	NamespaceUnchecked NamespaceState = iota
	// NamespaceHost means the agent's own path names the directory that lists its pid: the agent
	// sees absolute paths (the host's namespace, or a namespace rooted at the hierarchy root).
	NamespaceHost
	// NamespacePrivate means the agent is in a private namespace whose root was found; every path
	// is joined to Root.
	NamespacePrivate
	// NamespaceUnresolved means the agent's own path does not list its pid and no directory of the
	// host tree does: paths are relative to a root that is not known, so every process path
	// of this hierarchy is refused (ErrNamespaceRelative) rather than mis-attributed.
	NamespaceUnresolved
)

func (s NamespaceState) String() string {
	switch s {
	case NamespaceUnchecked:
		return "unchecked"
	case NamespaceHost:
		return "host"
	case NamespacePrivate:
		return "private"
	case NamespaceUnresolved:
		return "unresolved"
	}
	return "unknown"
}

// Namespace is the agent's cgroup namespace in one hierarchy.
type Namespace struct {
	// Hierarchy is "unified" (cgroup v2) or a v1 hierarchy ("name=systemd", "cpu", "cpuacct",
	// "memory", "blkio").
	Hierarchy string
	State     NamespaceState
	// Root is the namespace root relative to the hierarchy root ("/" unless private).
	Root string
	// Reason says why the state is unchecked or unresolved.
	Reason string
}

// ErrNamespaceRelative means a process's cgroup path is relative to a cgroup namespace root the
// agent could not place on the host hierarchy; the process cannot be attributed.
var ErrNamespaceRelative = errors.New("cgroup path is relative to an unresolved cgroup namespace")

// maxNamespaceSearch bounds the walk of a host hierarchy looking for the agent's own cgroup.
const maxNamespaceSearch = 200000

// hierarchyCount is the number of hierarchies the FS reads: the entries of Paths.fields.
const hierarchyCount = 6

var hierarchyNames = [hierarchyCount]string{"unified", "name=systemd", "cpu", "cpuacct", "memory", "blkio"}

// fields returns the per-hierarchy paths in the order of hierarchyNames (Other excluded: its
// hierarchy is not known).
func (p *Paths) fields() [hierarchyCount]*string {
	return [hierarchyCount]*string{&p.Unified, &p.Systemd, &p.CPU, &p.CPUAcct, &p.Memory, &p.Blkio}
}

func (f *FS) hierarchyDirs() [hierarchyCount]string {
	return [hierarchyCount]string{f.unified, f.systemdDir, f.cpuDir, f.cpuacctDir, f.memoryDir, f.blkioDir}
}

// Namespaces reports how the agent's cgroup namespace was resolved, one entry per hierarchy
// the FS reads, for the caller to log once.
func (f *FS) Namespaces() []Namespace {
	out := make([]Namespace, 0, hierarchyCount)
	dirs := f.hierarchyDirs()
	for i, d := range dirs {
		if d == "" {
			continue
		}
		if i > 0 && dirs[i] == dirs[i-1] {
			continue // co-mounted cpu,cpuacct: one hierarchy
		}
		out = append(out, f.ns[i])
	}
	return out
}

// resolveNamespaces finds the agent's namespace root in every hierarchy (see the comment at
// the top of this file).
func (f *FS) resolveNamespaces() {
	dirs := f.hierarchyDirs()
	for i := range f.ns {
		f.ns[i] = Namespace{Hierarchy: hierarchyNames[i], State: NamespaceUnchecked, Root: "/"}
	}
	selfFile := filepath.Join(f.procRoot, "self", "cgroup")
	data, err := os.ReadFile(selfFile)
	if err != nil {
		f.setUnchecked(fmt.Sprintf("own cgroup unknown: %v", err))
		return
	}
	self, err := ParseProcCgroup(data)
	if err != nil {
		f.setUnchecked(fmt.Sprintf("own cgroup unknown: %s: %v", selfFile, err))
		return
	}
	pids := f.selfPIDs()
	own := self.fields()
	for i, dir := range dirs {
		ns := &f.ns[i]
		s := *own[i]
		switch {
		case dir == "":
			ns.Reason = "hierarchy not mounted under the cgroup root"
			continue
		case s == "":
			ns.Reason = "own process not listed in this hierarchy"
			continue
		case isNamespaceRelative(s):
			// The kernel never prints the reader's own cgroup above its namespace root.
			ns.State, ns.Reason = NamespaceUnresolved, "own cgroup path "+s+" climbs above the namespace root"
			continue
		}
		if listed, _ := listsPID(filepath.Join(dir, s, "cgroup.procs"), pids); listed {
			ns.State = NamespaceHost
			continue
		}
		found, searched, err := findPID(dir, pids)
		switch {
		case found != "":
			root, ok := strings.CutSuffix(found, strings.TrimSuffix(s, "/"))
			if !ok {
				ns.State, ns.Reason = NamespaceUnresolved, fmt.Sprintf("own cgroup %s is listed in %s, which does not end with it", s, found)
				continue
			}
			if root == "" {
				root = "/"
			}
			ns.Root = root
			ns.State = NamespacePrivate
			if root == "/" {
				ns.State = NamespaceHost // listed after all (moved meanwhile)
			}
		case searched == 0:
			ns.Reason = fmt.Sprintf("no cgroup.procs under %s to check membership in", dir)
			if err != nil {
				ns.Reason += ": " + err.Error()
			}
		default:
			ns.State = NamespaceUnresolved
			ns.Reason = fmt.Sprintf("own process (pid %v, cgroup %s in its namespace) is listed in none of the %d cgroups under %s", pids, s, searched, dir)
			if err != nil {
				ns.Reason += ": " + err.Error()
			}
		}
	}
	for i := range f.ns {
		if f.ns[i].State == NamespacePrivate || f.ns[i].State == NamespaceUnresolved {
			f.private = true
		}
	}
}

func (f *FS) setUnchecked(reason string) {
	for i := range f.ns {
		f.ns[i].Reason = reason
	}
}

// selfPIDs are the agent's pid as the procfs at ProcRoot numbers it (ProcRoot/self) and as its
// own pid namespace does (os.Getpid): cgroup.procs lists pids in the reader's namespace, which
// is the procfs's with hostPID and may differ when a host procfs is bind-mounted instead.
func (f *FS) selfPIDs() []int {
	pids := []int{os.Getpid()}
	if target, err := os.Readlink(filepath.Join(f.procRoot, "self")); err == nil {
		if pid, err := strconv.Atoi(filepath.Base(target)); err == nil && pid != pids[0] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// listsPID reports whether a cgroup.procs file lists one of pids.
func listsPID(file string, pids []int) (bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	found := false
	_ = forEachLine(data, func(_ int, line []byte) error {
		v, err := parseUint(bytes.TrimSpace(line))
		for _, p := range pids {
			if err == nil && uint64(p) == v {
				found = true
				return errStop
			}
		}
		return nil
	})
	return found, nil
}

var errStop = errors.New("stop")

// findPID walks a hierarchy for the cgroup whose cgroup.procs lists one of pids. It returns
// its path relative to dir, and how many cgroup.procs files it could read.
func findPID(dir string, pids []int) (found string, searched int, err error) {
	visited := 0
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil //nolint:nilerr // a cgroup removed during the walk is skipped
		}
		visited++
		if visited > maxNamespaceSearch {
			return fmt.Errorf("more than %d cgroups, search stopped", maxNamespaceSearch)
		}
		listed, err := listsPID(filepath.Join(p, "cgroup.procs"), pids)
		if err != nil {
			return nil //nolint:nilerr // an unreadable cgroup.procs is skipped; searched counts the readable ones
		}
		searched++
		if listed {
			rel, _ := filepath.Rel(dir, p)
			found = "/" + filepath.ToSlash(rel)
			if rel == "." {
				found = "/"
			}
			return fs.SkipAll
		}
		return nil
	})
	return found, searched, walkErr
}

// isNamespaceRelative reports whether a path from /proc/<pid>/cgroup climbs above the reader's
// namespace root: "/..", "/../x".
func isNamespaceRelative(p string) bool {
	return strings.HasPrefix(p, "/..") && (len(p) == 3 || p[3] == '/')
}

// joinNamespace is path.Join(root, rel) for a clean absolute root, with one allocation for the
// kernel's paths, which are clean ("/../../a/b": leading ".." only, no "." or "//"); anything
// else goes through path.Join.
func joinNamespace(root, rel string) string {
	up := 0
	for isNamespaceRelative(rel) {
		rel = rel[3:]
		up++
	}
	if rel != "" && (rel[0] != '/' || strings.Contains(rel, "//") || strings.Contains(rel, "/./") || strings.Contains(rel, "/../") ||
		strings.HasSuffix(rel, "/.") || strings.HasSuffix(rel, "/..") || strings.HasSuffix(rel, "/")) {
		return path.Join(root, strings.Repeat("/..", up)+rel)
	}
	for ; up > 0 && root != "/"; up-- {
		root = root[:strings.LastIndexByte(root, '/')]
		if root == "" {
			root = "/"
		}
	}
	switch {
	case rel == "":
		return root
	case root == "/":
		return rel
	}
	return root + rel
}

// placePaths turns namespace-relative paths into paths from each hierarchy root. It fails
// with ErrNamespaceRelative when a path cannot be placed; it never guesses.
func (f *FS) placePaths(p *Paths) error {
	fields := p.fields()
	if !f.private {
		// Host view (verified or unchecked): paths are absolute; one that climbs above the
		// root means a namespace the agent did not detect.
		for i, s := range fields {
			if isNamespaceRelative(*s) {
				return fmt.Errorf("%s path %q: %w", hierarchyNames[i], *s, ErrNamespaceRelative)
			}
		}
		if isNamespaceRelative(p.Other) {
			p.Other = ""
		}
		return nil
	}
	for i, s := range fields {
		if *s == "" {
			continue
		}
		ns := &f.ns[i]
		switch ns.State {
		case NamespacePrivate:
			*s = joinNamespace(ns.Root, *s)
		case NamespaceUnresolved:
			return fmt.Errorf("%s path %q: %w", hierarchyNames[i], *s, ErrNamespaceRelative)
		default:
			if isNamespaceRelative(*s) {
				return fmt.Errorf("%s path %q: %w", hierarchyNames[i], *s, ErrNamespaceRelative)
			}
		}
	}
	// Other's hierarchy is not known, so neither is its namespace root: drop it rather than
	// attribute by a path of unknown origin. It is only a fallback for attribution.
	p.Other = ""
	return nil
}
