package containers

import (
	"context"
	"sync"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// Runtime metadata is fetched apart from attribution. Scans and lookups publish a container
// with what its cgroup tells and queue it here; one goroutine asks the runtimes (each call
// bounded by runtime_timeout, a failing socket paused) holding no lock, then publishes the
// answer under scanMu. A hung runtime therefore delays names and images, never a lookup.

// enqueueMetadata queues e for a runtime lookup (once, however often it is asked).
func (r *Registry) enqueueMetadata(e *entry) {
	if !e.queued.CompareAndSwap(false, true) {
		return
	}
	r.queueMu.Lock()
	r.metaQueue = append(r.metaQueue, e)
	r.queueMu.Unlock()
}

// wakeMetadata tells the metadata goroutine there may be work.
func (r *Registry) wakeMetadata() {
	select {
	case r.metaWake <- struct{}{}:
	default:
	}
}

// enqueueLive queues every live container a runtime describes, for the periodic refresh of
// restart counts and labels.
func (r *Registry) enqueueLive() {
	r.mu.RLock()
	entries := make([]*entry, 0, len(r.byID))
	for _, e := range r.byID {
		entries = append(entries, e)
	}
	r.mu.RUnlock()
	for _, e := range entries {
		if e.st.goneTime().IsZero() {
			r.enqueueMetadata(e)
		}
	}
}

// enqueueUndescribed queues the containers, live or gone, that no runtime has answered about:
// it was down, paused after a failure, or too slow while the container was being started. A
// runtime keeps answering about a container that exited (docker inspect, CRI ContainerStatus)
// until it is removed, so a short-lived container gets its name and image while the registry
// lists it.
func (r *Registry) enqueueUndescribed() {
	r.scanMu.Lock()
	r.mu.RLock()
	var todo []*entry
	for _, e := range r.byID {
		if !e.described.Load() && r.rt.serves(e.identity().Kind) {
			todo = append(todo, e)
		}
	}
	r.mu.RUnlock()
	r.scanMu.Unlock()
	for _, e := range todo {
		r.enqueueMetadata(e)
	}
	if len(todo) > 0 {
		r.wakeMetadata()
	}
}

func (r *Registry) metadataLoop(ctx context.Context) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.metaWake:
			r.fetchMetadata(ctx)
		}
	}
}

// refreshMetadata re-reads the metadata of every live container now and returns when it is
// published.
func (r *Registry) refreshMetadata(ctx context.Context) {
	r.enqueueLive()
	r.fetchMetadata(ctx)
}

// fetchMetadata empties the queue: a runtime lookup per entry, without any lock lookups take,
// each answer published under scanMu.
func (r *Registry) fetchMetadata(ctx context.Context) {
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	r.describeGoneQueue(ctx)
	for ctx.Err() == nil {
		r.queueMu.Lock()
		queue := r.metaQueue
		r.metaQueue = nil
		r.queueMu.Unlock()
		if len(queue) == 0 {
			return
		}
		for i, e := range queue {
			if ctx.Err() != nil {
				// Closing: leave the rest queued (nothing will take them, nothing waits).
				r.queueMu.Lock()
				r.metaQueue = append(r.metaQueue, queue[i:]...)
				r.queueMu.Unlock()
				return
			}
			e.queued.Store(false) // a change from now on queues it again
			r.scanMu.Lock()
			id := e.identity()
			r.scanMu.Unlock()
			m, ok, answered := r.lookup(ctx, id)
			if ctx.Err() != nil && !ok {
				r.enqueueMetadata(e) // interrupted, not answered
				continue
			}
			r.scanMu.Lock()
			if holder := r.applyLookup(e, id, m, ok); holder != nil && answered {
				holder.described.Store(true)
			}
			r.scanMu.Unlock()
		}
	}
}

// applyLookup publishes a runtime's answer about e, asked for identity id (ok: it answered
// with metadata). It returns the entry the answer now describes (e, or the known container e
// turned out to be a new instance of), nil when it describes none. The caller holds scanMu.
func (r *Registry) applyLookup(e *entry, id cgroups.Identity, m metadata, ok bool) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.identity() != id || r.byCgroup[id.Path] != e {
		return nil // re-pointed meanwhile (queued again), merged or forgotten
	}
	now := r.now()
	if ok && m.Sandbox {
		r.withdrawLocked(e)
		return nil
	}
	prev := e.cur.Load()
	if !e.pending.Load() {
		if ok {
			c := *prev
			applyMetadata(&c, m)
			c.ID = prev.ID // fixed for the container's life
			continueRestarts(prev, &c, now)
			e.cur.Store(&c)
		}
		e.st.mu.Lock()
		e.st.refreshedAt = now
		e.st.mu.Unlock()
		return e
	}
	// A pending container's ID is decided now, with or without metadata.
	c := newContainer(id, m, ok)
	c.FirstSeen = prev.FirstSeen
	c.st = e.st
	continueRestarts(nil, c, now) // first published now (prev was never visible)
	e.st.mu.Lock()
	e.st.refreshedAt = now
	e.st.mu.Unlock()
	if known := r.byID[c.ID]; known != nil && known != e {
		// A new instance of a known container (a Kubernetes container restarted: new runtime
		// id, new cgroup): the known entry takes this cgroup over.
		r.mergeLocked(known, e, c)
		return known
	}
	r.byID[c.ID] = e
	e.cur.Store(c)
	e.pending.Store(false)
	return e
}

// mergeLocked makes known continue as the instance discovered as e (published as c): its
// counters start from zero, so c's FirstSeen is when e was first seen. The caller holds
// scanMu and mu.
func (r *Registry) mergeLocked(known, e *entry, c *Container) {
	prev := known.cur.Load()
	c.ID = prev.ID
	c.st = known.st
	continueRestarts(prev, c, r.now())
	e.st.mu.Lock()
	cg, pids, goneAt, fs, incomplete := e.st.cg, e.st.pids, e.st.goneAt, e.st.fs, e.st.incomplete
	e.st.mu.Unlock()
	known.st.mu.Lock()
	known.st.fs = fs // unset on a container known only from its runtime (publishGone)
	known.st.incomplete = incomplete
	known.st.cg = cg
	known.st.hasLast = false // the old cgroup's last reading must not stand in for the new one
	known.st.pids = pids
	known.st.goneAt = goneAt
	known.st.refreshedAt = r.now()
	known.st.mu.Unlock()
	for _, k := range e.cgroupKeys {
		if r.byCgroup[k] == e {
			r.byCgroup[k] = known
			known.cgroupKeys = append(known.cgroupKeys, k)
		}
	}
	for _, ino := range e.cgroupIDs {
		if r.byCgroupID[ino] == e {
			r.byCgroupID[ino] = known
			known.cgroupIDs = append(known.cgroupIDs, ino)
		}
	}
	for _, rid := range e.runtimeIDs {
		if r.byRuntimeID[rid] == e {
			r.byRuntimeID[rid] = known
			known.runtimeIDs = append(known.runtimeIDs, rid)
		}
	}
	for pid, pe := range r.pids {
		if pe == e {
			r.pids[pid] = known
		}
	}
	known.cur.Store(c)
	r.restarts.Add(1)
}

// withdrawLocked removes a cgroup a runtime said is a pod sandbox: its processes are in no
// container, and later scans skip it. The caller holds scanMu and mu.
func (r *Registry) withdrawLocked(e *entry) {
	if r.byID[e.cur.Load().ID] == e {
		delete(r.byID, e.cur.Load().ID)
	}
	if r.ignored == nil {
		r.ignored = make(map[string]struct{})
	}
	for _, k := range e.cgroupKeys {
		if r.byCgroup[k] == e {
			delete(r.byCgroup, k)
			r.ignored[k] = struct{}{}
		}
	}
	for _, ino := range e.cgroupIDs {
		if r.byCgroupID[ino] == e {
			delete(r.byCgroupID, ino)
			r.notContainer[ino] = struct{}{}
		}
	}
	for _, rid := range e.runtimeIDs {
		if r.byRuntimeID[rid] == e {
			delete(r.byRuntimeID, rid)
		}
	}
	for pid, pe := range r.pids {
		if pe == e {
			r.pids[pid] = nil
		}
	}
	e.pending.Store(false)
}

// missTTL is how long a cgroup id or pid that missed after a scan is answered as a miss
// without looking again.
const missTTL = time.Second

// maxMisses bounds each negative cache; a full one drops expired entries, then all.
const maxMisses = 4096

// missCache remembers recent misses.
type missCache struct {
	mu    sync.Mutex
	until map[uint64]time.Time
}

func (m *missCache) has(k uint64, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.until[k]
	return ok && now.Before(until)
}

func (m *missCache) add(k uint64, now time.Time) { m.addFor(k, now, missTTL) }

// addFor remembers a miss for ttl.
func (m *missCache) addFor(k uint64, now time.Time, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until == nil {
		m.until = make(map[uint64]time.Time)
	}
	if len(m.until) >= maxMisses {
		for key, until := range m.until {
			if !now.Before(until) {
				delete(m.until, key)
			}
		}
		if len(m.until) >= maxMisses {
			clear(m.until)
		}
	}
	m.until[k] = now.Add(ttl)
}

func (m *missCache) forget(k uint64) {
	m.mu.Lock()
	delete(m.until, k)
	m.mu.Unlock()
}
