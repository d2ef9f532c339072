package cgroups

import "strings"

// Kind says what put a process into its cgroup.
type Kind uint8

const (
	// KindNone means the root cgroup, a user session (/user.slice), /init.scope, a pod-level or
	// runtime-monitor cgroup (conmon): not a container.
	KindNone Kind = iota
	// KindDocker means dockerd, cgroupfs driver "/docker/<id>" or systemd driver "docker-<id>.scope"
	// (also under kubepods with cri-dockerd).
	KindDocker
	// KindContainerd means containerd; "/k8s.io/<id>" (its CRI namespace with the cgroupfs driver)
	// or "cri-containerd-<id>.scope" (systemd driver), including kubepods.
	KindContainerd
	// KindCRIO means CRI-O; "crio-<id>.scope" (systemd driver) or "crio-<id>" (cgroupfs driver).
	KindCRIO
	// KindPodman means podman; "libpod-<id>.scope" (systemd, also rootless under user.slice) or
	// "/libpod_parent/libpod-<id>" (cgroupfs).
	KindPodman
	// KindKubepods means a container under /kubepods (cgroupfs driver) whose cgroup name is the bare
	// container id, so the runtime is not visible in the path.
	KindKubepods
	// KindSystemd means a systemd service, "/system.slice/[<sub>.slice/]<unit>.service[/…]".
	KindSystemd
	// KindOther means any other non-root cgroup (machine.slice VMs, transient scopes, cgroups an
	// operator or a test created by hand). The registry treats these as containers only when
	// configured to.
	KindOther
)

var kindNames = [...]string{"none", "docker", "containerd", "crio", "podman", "kubepods", "systemd", "cgroup"}

// String is the runtime name used in container metadata ("cgroup" for KindOther).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Identity is what a cgroup path alone says about a container.
type Identity struct {
	Kind Kind
	// ID is the runtime's container id (64 hex digits) for runtimes, the unit name
	// ("nginx.service") for systemd, "" otherwise.
	ID string
	// PodUID is the Kubernetes pod uid when the path is under kubepods, in its canonical
	// dashed form (the systemd driver writes '_' for '-').
	PodUID string
	// Path is the container's own cgroup: the input path cut after the component that names
	// the container, so processes in nested cgroups ("libpod-<id>.scope/container",
	// "nginx.service/worker") map to one container.
	Path string
}

// Identify maps a cgroup path (as in /proc/<pid>/cgroup, see Paths.Primary) to a container
// identity. It never fails: unknown shapes are KindOther, non-containers KindNone.
func Identify(path string) Identity {
	if path == "" || path == "/" {
		return Identity{Kind: KindNone, Path: "/"}
	}
	// Walk the components from the innermost out: the innermost runtime-named component wins
	// (docker-in-docker, runtimes nested in a systemd service).
	end := len(path)
	for end > 0 {
		start := strings.LastIndexByte(path[:end], '/')
		comp := path[start+1 : end]
		parent := ""
		if start > 0 {
			ps := strings.LastIndexByte(path[:start], '/')
			parent = path[ps+1 : start]
		}
		if kind, id, ok := runtimeComponent(comp, parent); ok {
			if kind == KindNone {
				return Identity{Kind: KindNone, Path: path[:end]}
			}
			podDir := path[:max(start, 0)]
			if c := strings.IndexByte(comp, ':'); c >= 0 {
				podDir = path[:start+1+c] // "…/kubepods-…-pod<uid>.slice:cri-containerd:<id>"
			}
			return Identity{Kind: kind, ID: id, PodUID: podUID(podDir), Path: path[:end]}
		}
		if start < 0 {
			break
		}
		end = start
	}

	trimmed := path[1:]
	first, _, _ := strings.Cut(trimmed, "/")
	switch first {
	case "user.slice", "init.scope":
		return Identity{Kind: KindNone, Path: path}
	case "kubepods", "kubepods.slice":
		// The kubepods tree itself, a QoS slice or a pod-level cgroup: no container.
		return Identity{Kind: KindNone, Path: path}
	case "system.slice":
		// The first ".service" component names the unit; "system-getty.slice" style
		// sub-slices may come before it.
		off := len("/system.slice")
		for off < len(path) {
			next := strings.IndexByte(path[off+1:], '/')
			compEnd := len(path)
			if next >= 0 {
				compEnd = off + 1 + next
			}
			comp := path[off+1 : compEnd]
			if strings.HasSuffix(comp, ".service") && len(comp) > len(".service") {
				return Identity{Kind: KindSystemd, ID: comp, Path: path[:compEnd]}
			}
			if !strings.HasSuffix(comp, ".slice") {
				break
			}
			off = compEnd
		}
	}
	return Identity{Kind: KindOther, Path: path}
}

// runtimeComponent recognises one path component that names a container. ok with KindNone
// marks runtime helpers (conmon) that are known not to be containers.
func runtimeComponent(comp, parent string) (Kind, string, bool) {
	// systemd driver inside a cgroup namespace / nested containerd:
	// "kubepods-burstable-pod<uid>.slice:cri-containerd:<id>".
	if i := strings.IndexByte(comp, ':'); i >= 0 {
		parts := strings.Split(comp[i+1:], ":")
		if len(parts) == 2 && isContainerID(parts[1]) {
			switch parts[0] {
			case "cri-containerd":
				return KindContainerd, parts[1], true
			case "crio":
				return KindCRIO, parts[1], true
			case "docker":
				return KindDocker, parts[1], true
			}
		}
		return 0, "", false
	}
	if base, ok := strings.CutSuffix(comp, ".scope"); ok {
		for _, p := range [...]struct {
			prefix string
			kind   Kind
		}{
			{"crio-conmon-", KindNone},
			{"libpod-conmon-", KindNone},
			{"docker-", KindDocker},
			{"cri-containerd-", KindContainerd},
			{"crio-", KindCRIO},
			{"libpod-", KindPodman},
		} {
			if id, ok := strings.CutPrefix(base, p.prefix); ok && isContainerID(id) {
				return p.kind, id, true
			}
		}
		return 0, "", false
	}
	if id, ok := strings.CutPrefix(comp, "crio-"); ok && isContainerID(id) {
		return KindCRIO, id, true
	}
	if id, ok := strings.CutPrefix(comp, "libpod-"); ok && isContainerID(id) {
		return KindPodman, id, true
	}
	if isContainerID(comp) {
		switch {
		case parent == "docker":
			return KindDocker, comp, true
		case parent == "k8s.io":
			return KindContainerd, comp, true
		case strings.HasPrefix(parent, "pod") && isPodUID(parent[3:]):
			return KindKubepods, comp, true
		}
	}
	return 0, "", false
}

// podUID finds the pod uid in the part of a kubepods path above the container:
// "…/pod<uid>" (cgroupfs) or "…/kubepods-<qos>-pod<uid_with_underscores>.slice" (systemd).
func podUID(dir string) string {
	if !strings.Contains(dir, "kubepods") {
		return ""
	}
	comp := dir[strings.LastIndexByte(dir, '/')+1:]
	comp = strings.TrimSuffix(comp, ".slice")
	i := strings.LastIndex(comp, "pod")
	if i < 0 {
		return ""
	}
	uid := strings.ReplaceAll(comp[i+3:], "_", "-")
	if !isPodUID(uid) {
		return ""
	}
	return uid
}

// isContainerID accepts the 64-hex ids of docker, containerd, CRI-O and podman.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isPodUID accepts a Kubernetes uid: hex digits and dashes (a UUID), or, for static pods,
// the 32-hex config hash.
func isPodUID(s string) bool {
	if len(s) < 32 || len(s) > 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}
