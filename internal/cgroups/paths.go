package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Paths are the cgroups one process belongs to, as listed by /proc/<pid>/cgroup. Only the
// hierarchies the agent reads are kept, so scanning thousands of processes allocates little.
// Every path is relative to its hierarchy's root and starts with "/"; "" means the process's
// file did not list that hierarchy.
type Paths struct {
	Unified string // the cgroup v2 hierarchy (line "0::<path>")
	Systemd string // the v1 named hierarchy "name=systemd"
	CPU     string // v1 cpu controller
	CPUAcct string // v1 cpuacct controller
	Memory  string // v1 memory controller
	Blkio   string // v1 blkio (io) controller
	// Other is the first non-root path of any other v1 hierarchy (pids, freezer, devices, …):
	// enough to attribute a process that only some tool moved into, say, a freezer cgroup.
	Other string
}

// deletedSuffix is what the kernel appends to the path of a cgroup removed while a (zombie)
// process still references it.
const deletedSuffix = " (deleted)"

// ParseProcCgroup parses the contents of /proc/<pid>/cgroup: lines of
// "hierarchy-id:controller-list:path". Controller lists may name several controllers
// ("cpu,cpuacct"); the path may itself contain ':' (systemd-driver names such as
// "kubepods-pod1.slice:cri-containerd:<id>"), so it is everything after the second colon.
func ParseProcCgroup(data []byte) (Paths, error) {
	var p Paths
	err := forEachLine(data, func(lineNo int, line []byte) error {
		c1 := bytes.IndexByte(line, ':')
		if c1 < 0 {
			return fmt.Errorf("line %d: no ':' in %q", lineNo, truncate(line))
		}
		rest := line[c1+1:]
		c2 := bytes.IndexByte(rest, ':')
		if c2 < 0 {
			return fmt.Errorf("line %d: no controller list in %q", lineNo, truncate(line))
		}
		if !isDigits(line[:c1]) {
			return fmt.Errorf("line %d: hierarchy id %q is not a number", lineNo, truncate(line[:c1]))
		}
		controllers, rawPath := rest[:c2], rest[c2+1:]
		rawPath = bytes.TrimSuffix(rawPath, []byte(deletedSuffix))
		if len(rawPath) == 0 || rawPath[0] != '/' {
			return fmt.Errorf("line %d: cgroup path %q is not absolute", lineNo, truncate(rawPath))
		}
		path := string(rawPath)
		if len(controllers) == 0 {
			// cgroup v2: the only hierarchy with an empty controller list (id 0).
			p.Unified = path
			return nil
		}
		for len(controllers) > 0 {
			var c []byte
			if i := bytes.IndexByte(controllers, ','); i >= 0 {
				c, controllers = controllers[:i], controllers[i+1:]
			} else {
				c, controllers = controllers, nil
			}
			switch string(c) {
			case "name=systemd":
				p.Systemd = path
			case "cpu":
				p.CPU = path
			case "cpuacct":
				p.CPUAcct = path
			case "memory":
				p.Memory = path
			case "blkio":
				p.Blkio = path
			default:
				if p.Other == "" && path != "/" {
					p.Other = path
				}
			}
		}
		return nil
	})
	if err != nil {
		return Paths{}, err
	}
	if p == (Paths{}) {
		return Paths{}, errors.New("no cgroup listed")
	}
	return p, nil
}

// Primary is the path that says which container the process is in: the v2 path when it is
// not the root (pure v2, or hybrid where systemd mirrors v1 into v2), else the first non-root
// v1 path in the order systemd, cpu, cpuacct, memory, blkio, other. "/" when every path is
// the root.
func (p Paths) Primary() string {
	for _, s := range [...]string{p.Unified, p.Systemd, p.CPU, p.CPUAcct, p.Memory, p.Blkio, p.Other} {
		if s != "" && s != "/" {
			return s
		}
	}
	return "/"
}

// Identify finds the container the process is in. Every listed path is identified and the most
// specific answer wins: a runtime's container, then a systemd service, then another non-root
// cgroup; among equals the order of Primary. So a v1 host's process whose name=systemd path
// is a user session but whose cpu cgroup is a container is attributed to the container.
func (p Paths) Identify() Identity {
	best := Identity{Kind: KindNone, Path: "/"}
	bestRank := 0
	for _, s := range [...]string{p.Unified, p.Systemd, p.CPU, p.CPUAcct, p.Memory, p.Blkio, p.Other} {
		if s == "" || s == "/" {
			continue
		}
		id := Identify(s)
		if r := id.Kind.rank(); r > bestRank {
			best, bestRank = id, r
		}
	}
	return best
}

// rank orders kinds for Paths.Identify.
func (k Kind) rank() int {
	switch k {
	case KindNone:
		return 0
	case KindOther:
		return 1
	case KindSystemd:
		return 2
	}
	return 3
}

// ContainerPaths returns the paths to read the container's stats from: every path that lies
// inside the container's cgroup (id.Path) becomes id.Path, so stats cover the whole container
// and not the sub-cgroup the process happens to be in ("libpod-<id>.scope/container",
// "nginx.service/worker"); every other path becomes "" so that, say, a process moved into a
// container only in the freezer hierarchy does not report the host's root cpu counters.
func (p Paths) ContainerPaths(id Identity) Paths {
	if id.Kind == KindNone || id.Path == "/" {
		return Paths{}
	}
	in := func(s string) string {
		if s == id.Path || len(s) > len(id.Path) && s[len(id.Path)] == '/' && s[:len(id.Path)] == id.Path {
			return id.Path
		}
		return ""
	}
	return Paths{
		Unified: in(p.Unified), Systemd: in(p.Systemd), CPU: in(p.CPU), CPUAcct: in(p.CPUAcct),
		Memory: in(p.Memory), Blkio: in(p.Blkio), Other: in(p.Other),
	}
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func truncate(b []byte) string {
	const maxLen = 64
	if len(b) > maxLen {
		return strings.ToValidUTF8(string(b[:maxLen]), "?") + "…"
	}
	return string(b)
}
