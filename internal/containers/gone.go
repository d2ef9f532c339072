package containers

import (
	"context"
	"hash/fnv"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// Containers the registry never saw running. A container that lives less than a scan (a
// one-shot `docker run image echo hello`, a Job's container that exits in milliseconds) may exit
// before any /proc read finds a process of it, yet its log file names it, and state a restarted
// agent restored names it. A source that holds such an ID asks DescribeGone, with the log file
// it read the container's output from when there is one. The runtime, which keeps answering
// about an exited container until it is removed, tells its name, image and runtime id; one the
// runtime no longer knows is described by what its ID and log path tell (a CRI log path
// /var/log/pods/<namespace>_<pod>_<uid>/<container>/<attempt>.log names its pod, pod UID,
// container and attempt). Either way it is listed as gone from then, for the retention, like any
// container whose last process left. A container a runtime says is running is left to the
// scans; one no runtime could answer about is not listed (its runtime may be down) and is asked
// about again after describeGoneAgain.

// describeGoneAgain is how long an ID DescribeGone asked about is not asked about again.
const describeGoneAgain = time.Minute

// maxGoneQueue bounds the questions waiting for the metadata goroutine.
const maxGoneQueue = 1024

// goneQuestion is one DescribeGone call waiting for the metadata goroutine.
type goneQuestion struct {
	id      ID
	logPath string
}

// DescribeGone asks the runtimes in the background about a container the registry does not
// know, by the ID a source gave it and, when the source read its output from a file, that
// file's path. Docker IDs ("/docker/<64 hex>") are asked by runtime id, Kubernetes IDs
// ("/k8s/<namespace>/<pod>/<container>") by pod and container name (and the pod UID and attempt
// a CRI log path tells); other IDs are ignored. It never waits for a runtime.
func (r *Registry) DescribeGone(id ID, logPath string) {
	_, docker := dockerRuntimeID(id)
	_, k8s := criRefOf(id, "")
	if !docker && !k8s || !r.isStarted() {
		return
	}
	if _, known := r.ContainerByID(id); known {
		return
	}
	key := idHash(id)
	now := r.now()
	if r.goneAsked.has(key, now) {
		return
	}
	r.queueMu.Lock()
	if len(r.goneQueue) >= maxGoneQueue {
		r.queueMu.Unlock()
		return
	}
	r.goneAsked.addFor(key, now, describeGoneAgain)
	r.goneQueue = append(r.goneQueue, goneQuestion{id: id, logPath: logPath})
	r.queueMu.Unlock()
	r.wakeMetadata()
}

func dockerRuntimeID(id ID) (string, bool) {
	rid, ok := strings.CutPrefix(string(id), "/docker/")
	return rid, ok && dockerIDShape(rid)
}

func dockerIDShape(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// criRef names a Kubernetes container by what its ID and log path tell.
type criRef struct {
	namespace, pod, container string
	uid                       string // "" when unknown
	attempt                   int    // -1 when unknown
	logPath                   string
}

// criRefOf parses "/k8s/<namespace>/<pod>/<container>", completed by a CRI log path
// "<pods dir>/<namespace>_<pod>_<uid>/<container>/<attempt>.log" of the same container (a path
// that names another container, or is not shaped so, is ignored).
func criRefOf(id ID, logPath string) (criRef, bool) {
	rest, ok := strings.CutPrefix(string(id), "/k8s/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return criRef{}, false
	}
	ref := criRef{namespace: parts[0], pod: parts[1], container: parts[2], attempt: -1}
	if logPath == "" {
		return ref, true
	}
	name, ok := strings.CutSuffix(filepath.Base(logPath), ".log")
	attempt, err := strconv.Atoi(name)
	ctrDir := filepath.Dir(logPath)
	pod := strings.Split(filepath.Base(filepath.Dir(ctrDir)), "_")
	if !ok || err != nil || attempt < 0 || filepath.Base(ctrDir) != ref.container ||
		len(pod) != 3 || pod[0] != ref.namespace || pod[1] != ref.pod || pod[2] == "" {
		return ref, true
	}
	ref.uid, ref.attempt, ref.logPath = pod[2], attempt, logPath
	return ref, true
}

func idHash(id ID) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// describeGoneQueue answers the queued DescribeGone questions; called by fetchMetadata.
func (r *Registry) describeGoneQueue(ctx context.Context) {
	r.queueMu.Lock()
	queue := r.goneQueue
	r.goneQueue = nil
	r.queueMu.Unlock()
	for _, q := range queue {
		if ctx.Err() != nil {
			return
		}
		c, ok := r.describeGone(ctx, q)
		if !ok {
			continue
		}
		r.scanMu.Lock()
		r.publishGone(q.id, c)
		r.scanMu.Unlock()
	}
}

// describeGone builds the container of a DescribeGone question, ok false when it must not be
// listed as gone: a runtime says it runs (the scans will find it), a runtime describes it under
// another ID, or no runtime could answer.
func (r *Registry) describeGone(ctx context.Context, q goneQuestion) (*Container, bool) {
	if rid, ok := dockerRuntimeID(q.id); ok {
		ident := cgroups.Identity{Kind: cgroups.KindDocker, ID: rid}
		m, described, answered := r.lookup(ctx, ident)
		if !answered || m.Sandbox || m.Running {
			return nil, false
		}
		// Removed already (`docker run --rm`): its ID is all there is to tell.
		return newContainer(ident, m, described), true
	}
	ref, _ := criRefOf(q.id, q.logPath)
	r.runtimeLookups.Add(1)
	rid, m, found, answered := r.rt.findCRI(ctx, ref)
	switch {
	case found && (m.Running || m.Sandbox):
		return nil, false
	case found:
		c := newContainer(cgroups.Identity{Kind: cgroups.KindKubepods, ID: rid, PodUID: m.PodUID}, m, true)
		if c.Runtime == cgroups.KindKubepods.String() {
			c.Runtime = "" // a runtime answered but did not say its name
		}
		return c, true
	case !answered:
		return nil, false
	}
	// Removed from the runtime (or never run by one that is asked): what the ID and the log
	// path tell.
	m = metadata{
		Name: ref.container, ContainerName: ref.container, PodName: ref.pod, Namespace: ref.namespace,
		PodUID: ref.uid, Restarts: int64(max(ref.attempt, 0)), LogPath: ref.logPath,
	}
	c := newContainer(cgroups.Identity{PodUID: ref.uid}, m, true)
	c.Runtime, c.CgroupPath = "", ""
	return c, true
}

// publishGone lists a container that exited before the registry saw it, gone now. It has no
// cgroup to read. The caller holds scanMu.
func (r *Registry) publishGone(id ID, c *Container) {
	if c.ID != id {
		return // the runtime names it otherwise (Kubernetes labels): not what the source reported
	}
	now := r.now()
	c.FirstSeen = now
	continueRestarts(nil, c, now)
	ident := cgroups.Identity{ID: c.RuntimeID, PodUID: c.PodUID}
	if c.Runtime == cgroups.KindDocker.String() {
		ident.Kind = cgroups.KindDocker
	}
	c.st = &state{refreshedAt: now, goneAt: now, cg: cgroupInstance{identity: ident}} // no fs: no cgroup counters to read
	e := &entry{st: c.st}
	e.cur.Store(c)
	e.described.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.byID[id]; known || r.byID == nil {
		return
	}
	r.byID[id] = e
	if c.RuntimeID != "" && r.byRuntimeID[c.RuntimeID] == nil {
		r.byRuntimeID[c.RuntimeID] = e
		e.runtimeIDs = append(e.runtimeIDs, c.RuntimeID)
	}
}
