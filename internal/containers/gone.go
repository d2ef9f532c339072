package containers

import (
	"context"
	"hash/fnv"
	"strings"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// Containers the registry never saw running. A container that lives less than a scan (a
// one-shot `docker run image echo hello`) may exit before any /proc read finds a process of
// it, yet its log file, or a kernel event, names it. A source that reports such an ID asks
// DescribeGone; the runtime, which keeps answering about an exited container until it is
// removed, tells its name and image, and the registry lists it as gone for the retention like
// any container whose last process left.

// describeGoneAgain is how long an ID DescribeGone asked about is not asked about again.
const describeGoneAgain = time.Minute

// maxGoneQueue bounds the questions waiting for the metadata goroutine.
const maxGoneQueue = 1024

// DescribeGone asks the runtime in the background about a container the registry does not
// know, by the ID a source gave it. Only docker IDs ("/docker/<64 hex>") name a runtime id that
// can be asked; others are ignored. It never waits for a runtime.
func (r *Registry) DescribeGone(id ID) {
	if _, ok := dockerRuntimeID(id); !ok || !r.isStarted() {
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
	r.goneQueue = append(r.goneQueue, id)
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
	for _, id := range queue {
		if ctx.Err() != nil {
			return
		}
		rid, _ := dockerRuntimeID(id)
		ident := cgroups.Identity{Kind: cgroups.KindDocker, ID: rid}
		m, ok, _ := r.lookup(ctx, ident)
		if !ok || m.Sandbox || m.Running {
			continue // unknown to the runtime, or running: the scans will find its processes
		}
		r.scanMu.Lock()
		r.publishGone(id, ident, m)
		r.scanMu.Unlock()
	}
}

// publishGone lists a container that exited before the registry saw it, gone now. It has no
// cgroup to read. The caller holds scanMu.
func (r *Registry) publishGone(id ID, ident cgroups.Identity, m metadata) {
	c := newContainer(ident, m, true)
	if c.ID != id {
		return // the runtime names it otherwise (Kubernetes labels): not what the source reported
	}
	now := r.now()
	c.FirstSeen = now
	continueRestarts(nil, c, now)
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
	if r.byRuntimeID[ident.ID] == nil {
		r.byRuntimeID[ident.ID] = e
		e.runtimeIDs = append(e.runtimeIDs, ident.ID)
	}
}
