package containers

import (
	"time"
)

// ID identifies a container everywhere in the agent and never changes while it lives, e.g.
// "/docker/<64 hex>", "/k8s/<namespace>/<pod>/<container>", "/system.slice/nginx.service".
type ID string

// Container is what the registry knows about one container. Sources key their per-container
// state by ID and look containers up through the Registry.
type Container struct {
	ID         ID
	CgroupPath string    // cgroup path relative to the hierarchy root, e.g. "/docker/<id>"
	FirstSeen  time.Time // start timestamp of the container's cumulative metrics

	Runtime   string // "docker", "containerd", "crio", "podman", "systemd", "cgroup"
	RuntimeID string // the runtime's container id, when there is one
	Name      string
	Image     string
	Labels    map[string]string

	PodName       string
	PodUID        string
	Namespace     string
	ContainerName string
	Restarts      int64

	LogPath string // docker json-file or CRI log file, when known
}

// Registry knows every container on the node. Placeholder until the cgroup/runtime-backed
// implementation lands (issue 3); the exported method set is the contract other sources use.
type Registry struct{}

// ContainerByPID returns the container a process belongs to.
func (r *Registry) ContainerByPID(pid uint32) (*Container, bool) { return nil, false }

// ContainerByCgroupID returns the container whose cgroup v2 directory has this inode number
// (what bpf_get_current_cgroup_id returns), resolving unknown ids on demand.
func (r *Registry) ContainerByCgroupID(id uint64) (*Container, bool) { return nil, false }

// ContainerByRuntimeID returns the container a runtime (dockerd, containerd) knows by id.
func (r *Registry) ContainerByRuntimeID(id string) (*Container, bool) { return nil, false }

// Containers returns a snapshot of the live containers (and of recently gone ones that still
// have state to report).
func (r *Registry) Containers() []*Container { return nil }
