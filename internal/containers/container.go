package containers

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// ID identifies a container everywhere in the agent and never changes while it lives:
//
//	/k8s/<namespace>/<pod>/<container>  any runtime, its cgroup naming a pod, Kubernetes metadata known
//	/docker/<64 hex>                     dockerd
//	/containerd/<64 hex>                 containerd without Kubernetes metadata
//	/crio/<64 hex>, /podman/<64 hex>     CRI-O, podman
//	/kubepods/<pod uid>/<64 hex>         a kubepods container no runtime could describe
//	/system.slice/<unit>.service         a systemd service (its cgroup path)
//	/<cgroup path>                       any other cgroup, when include_other_cgroups is on
//
// The ID is fixed when the container is first published (a Kubernetes-shaped one once its
// runtime answered or failed; any other when first seen); metadata learnt later fills the
// other fields. A Kubernetes container that restarts (new runtime id, new cgroup) keeps its ID.
type ID string

// IDOf is the ID the registry gives the container of a cgroup identity when no runtime
// described it with Kubernetes names: a runtime's container by runtime and runtime id, a
// kubepods container by pod UID and runtime id, a systemd service and any other cgroup by its
// cgroup path. Sources that see a cgroup but not the registry's entry (journald) use it so their
// series land on the container the registry publishes.
func IDOf(ident cgroups.Identity) ID {
	switch ident.Kind {
	case cgroups.KindDocker:
		return ID("/docker/" + ident.ID)
	case cgroups.KindContainerd:
		return ID("/containerd/" + ident.ID)
	case cgroups.KindCRIO:
		return ID("/crio/" + ident.ID)
	case cgroups.KindPodman:
		return ID("/podman/" + ident.ID)
	case cgroups.KindKubepods:
		return ID("/kubepods/" + ident.PodUID + "/" + ident.ID)
	}
	return ID(ident.Path)
}

// Container is what the registry knows about one container. Sources key their per-container
// state by ID and look containers up through the Registry. A *Container is immutable once
// published: when metadata changes the registry publishes a new copy, so readers need no lock.
type Container struct {
	ID         ID
	CgroupPath string // cgroup path relative to the hierarchy root, e.g. "/docker/<id>"
	// FirstSeen is when the registry first saw this instance of the container: the start
	// timestamp of its cumulative metrics. A container that restarts into a new cgroup (a
	// Kubernetes restart: new runtime id and cgroup, same ID; a docker restart re-creating its
	// cgroup) has counters starting from zero again, so it is published anew with FirstSeen =
	// when the new instance was seen; Restarts still comes from the runtime.
	FirstSeen time.Time

	Runtime   string // "docker", "containerd", "crio", "podman", "kubepods", "systemd", "cgroup"
	RuntimeID string // the runtime's container id, when there is one
	Name      string
	Image     string
	Labels    map[string]string // shared between copies; never modified after publication

	PodName       string
	PodUID        string
	Namespace     string
	ContainerName string
	// Restarts is the runtime's restart count (a CRI container's attempt, dockerd's
	// RestartCount); RestartsSince is the start of that count as a cumulative metric. A count
	// can begin again under the same ID: a pod re-created under its name (a StatefulSet pod:
	// new pod UID, attempts from 0) merges into the same /k8s/<ns>/<pod>/<container>, and
	// dockerd resets RestartCount when a container is started by hand. RestartsSince is when
	// the container was first seen, moved to the time of observation whenever the pod UID
	// changes or the count goes down, so the count never falls under one start time.
	Restarts      int64
	RestartsSince time.Time

	LogPath string // docker json-file or CRI log file, when known
	// Env holds the environment variables of the container that name it elsewhere (Nomad's
	// NOMAD_ALLOC_ID, NOMAD_GROUP_NAME, NOMAD_JOB_NAME, NOMAD_NAMESPACE, NOMAD_TASK_NAME, from
	// dockerd), not its whole environment; nil when it has none. Shared between copies; never
	// modified after publication.
	Env map[string]string

	st *state // live state shared by every published copy
}

// state is the mutable part of a container, shared by its published copies.
type state struct {
	fs *cgroups.FS
	// incomplete counts, registry-wide, containers whose cgroups were still incomplete at
	// their second collection (ScanStats.CgroupIncomplete).
	incomplete *atomic.Uint64

	mu          sync.Mutex
	cg          cgroupInstance
	pids        int           // processes seen in it at the last scan or event
	goneAt      time.Time     // zero while processes remain
	last        cgroups.Stats // last successful reading
	hasLast     bool
	refreshedAt time.Time // last runtime metadata lookup
}

// cgroupInstance is where one instance of a container lives: its cgroup in every hierarchy.
// A runtime moves a new container's first process into its cgroups one hierarchy after
// another, so the first sight of a process may show only some of them; the paths converge on
// the container's own cgroups (cgroups.FS.Locate) at every later sight of its processes and at
// every collection while an expected hierarchy is missing. A new instance (a restart into a
// re-created or new cgroup) starts from a fresh cgroupInstance.
type cgroupInstance struct {
	identity cgroups.Identity
	paths    cgroups.Paths       // where its stats are read; every path is identity.Path
	missing  cgroups.Hierarchies // expected hierarchies not located yet
	// inode is the inode of the container's cgroup directory in hierarchy inodeIn
	// (cgroups.FS.DirInode), 0 when unknown: a new inode under the same path is a new instance.
	inode   uint64
	inodeIn cgroups.Hierarchies
	// incompleteCollections counts the collections in a row that found an expected hierarchy
	// missing; counted is set once the instance was counted in state.incomplete.
	incompleteCollections int
	counted               bool
}

// locate merges what a process of the container showed (its container paths, possibly none)
// into the instance's paths and completes them from the identity; it learns the instance's
// inode once a directory of it can be read. The caller holds s.mu.
func (s *state) locate(observed cgroups.Paths) {
	if s.fs == nil {
		return
	}
	s.cg.paths, s.cg.missing = s.fs.Locate(s.cg.identity, s.cg.paths.Merge(observed))
	if s.cg.inode == 0 {
		if h, ino, err := s.fs.DirInode(s.cg.paths); err == nil {
			s.cg.inodeIn, s.cg.inode = h, ino
		}
	}
}

// GoneAt is when the registry saw the container's last process leave; zero while it runs.
// A gone container stays listed for the configured retention.
func (c *Container) GoneAt() time.Time {
	if c.st == nil {
		return time.Time{}
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.goneAt
}

// Processes is how many processes the registry last counted in the container.
func (c *Container) Processes() int {
	if c.st == nil {
		return 0
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.pids
}

// ErrNoCgroupStats means the container's resource counters cannot be read (no cgroups source, or
// nothing has ever been read for a container that is already gone).
var ErrNoCgroupStats = errors.New("no cgroup stats for this container")

// Resources reads the container's cgroup counters now (called at each collection). For a
// container whose cgroup is gone it returns the last reading, so final counters are reported
// during the retention. A partial reading comes with an error describing the unread parts.
// While a hierarchy the container is expected to have is not located yet, each call tries
// again first; a container still incomplete at its second call is counted once
// (ScanStats.CgroupIncomplete). Parts of a hierarchy not located are absent from the reading,
// never read from another cgroup.
func (c *Container) Resources() (cgroups.Stats, error) {
	if c.st == nil {
		return cgroups.Stats{}, ErrNoCgroupStats
	}
	c.st.mu.Lock()
	if c.st.cg.missing != 0 && c.st.goneAt.IsZero() {
		c.st.locate(cgroups.Paths{})
		switch {
		case c.st.cg.missing == 0:
			c.st.cg.incompleteCollections = 0
		case c.st.cg.incompleteCollections >= 1 && !c.st.cg.counted:
			c.st.cg.counted = true
			if c.st.incomplete != nil {
				c.st.incomplete.Add(1)
			}
			fallthrough
		default:
			c.st.cg.incompleteCollections++
		}
	}
	fs, paths := c.st.fs, c.st.cg.paths
	c.st.mu.Unlock()
	if fs == nil {
		return cgroups.Stats{}, ErrNoCgroupStats
	}
	s, err := fs.Stats(paths)
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if errors.Is(err, cgroups.ErrCgroupGone) {
		if c.st.hasLast {
			return c.st.last, nil
		}
		return cgroups.Stats{}, ErrNoCgroupStats
	}
	if s.HasCPU || s.HasMemory || s.HasPSI || len(s.IO) > 0 {
		c.st.last, c.st.hasLast = s, true
	}
	return s, err
}
