package containers

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// observation is what one scan saw of one container cgroup.
type observation struct {
	identity cgroups.Identity
	// paths are the container's own cgroups its processes showed, merged over them: a process
	// the runtime is still moving shows only some.
	paths   cgroups.Paths
	pids    []uint32
	unified []string // distinct v2 paths its processes are in (the container's and nested ones)
	entry   *entry   // resolved container, nil when a runtime said it is not one
}

// batch is the result of reading a set of processes, published at once.
type batch struct {
	obs          map[string]*observation
	hostPids     []uint32
	notContainer []uint64
	ignored      []string // container-shaped cgroups seen that are not containers
}

func (r *Registry) tracked(id cgroups.Identity) bool {
	switch id.Kind {
	case cgroups.KindNone:
		return false
	case cgroups.KindOther:
		return r.cfg.IncludeOtherCgroups
	}
	return true
}

// scan reads processes and publishes what it learnt. A full scan re-reads every process and
// decides which containers are gone; an incremental one reads only processes the registry
// does not know yet. Neither calls a runtime: new containers are queued for metadata.
func (r *Registry) scan(full bool) {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	r.scanLocked(full)
}

func (r *Registry) scanLocked(full bool) {
	r.scanSeq.Add(1)
	pids, err := r.fs.Pids(r.pidBuf[:0])
	r.pidBuf = pids
	if err != nil {
		r.logger.Warn("listing processes failed; keeping what is known", zap.Error(err))
		return
	}
	if !full {
		// Only processes not seen yet: filter under one read lock.
		r.mu.RLock()
		n := 0
		for _, pid := range pids {
			if _, ok := r.pids[pid]; !ok {
				pids[n] = pid
				n++
			}
		}
		r.mu.RUnlock()
		pids = pids[:n]
	}
	b := batch{obs: make(map[string]*observation)}
	cgroupIDs := make(map[string]uint64)
	for _, pid := range pids {
		r.read(pid, &b, cgroupIDs)
	}
	r.resolve(&b)
	r.publish(&b, cgroupIDs, full)
	if full {
		r.scans.Add(1)
	} else {
		r.rescans.Add(1)
	}
	r.wakeMetadata()
}

// read attributes one process into the batch.
func (r *Registry) read(pid uint32, b *batch, cgroupIDs map[string]uint64) {
	paths, err := r.fs.ProcessPaths(pid)
	if errors.Is(err, cgroups.ErrNamespaceRelative) {
		// Known but not attributed: its path cannot be placed on the host tree. Recording it
		// as containerless keeps lookups of its pid from re-reading /proc each time; the next
		// full scan tries again.
		r.namespaceSkipped.Add(1)
		b.hostPids = append(b.hostPids, pid)
		return
	}
	if err != nil {
		if !cgroups.ProcessExited(err) {
			r.processErrors.Add(1)
		}
		return // exited mid-scan, or unreadable: the next scan tries again
	}
	id := paths.Identify()
	if !r.tracked(id) {
		b.hostPids = append(b.hostPids, pid)
		if ino, ok := r.cgroupID(paths.Unified, cgroupIDs); ok {
			b.notContainer = append(b.notContainer, ino)
		}
		return
	}
	o := b.obs[id.Path]
	if o == nil {
		o = &observation{identity: id}
		b.obs[id.Path] = o
	}
	o.paths = o.paths.Merge(paths.ContainerPaths(id))
	o.pids = append(o.pids, pid)
	if paths.Unified != "" && paths.Unified != "/" {
		for _, u := range o.unified {
			if u == paths.Unified {
				return
			}
		}
		o.unified = append(o.unified, paths.Unified)
	}
}

// cgroupID stats a v2 path once per scan.
func (r *Registry) cgroupID(unified string, cache map[string]uint64) (uint64, bool) {
	if unified == "" || r.fs.Layout() == cgroups.LayoutV1 {
		return 0, false
	}
	if ino, ok := cache[unified]; ok {
		return ino, ino != 0
	}
	ino, err := r.fs.CgroupID(unified)
	if err != nil {
		ino = 0 // gone already
	}
	cache[unified] = ino
	return ino, ino != 0
}

// resolve finds or creates the container of every observation, from cgroup identity alone.
// It runs under scanMu and never calls a runtime: a container needing metadata is queued for
// the metadata goroutine, so lookups by other sources never wait for a runtime.
func (r *Registry) resolve(b *batch) {
	for key, o := range b.obs {
		r.mu.RLock()
		e := r.byCgroup[key]
		_, ignored := r.ignored[key]
		r.mu.RUnlock()
		switch {
		case ignored:
			b.hostPids = append(b.hostPids, o.pids...)
			b.ignored = append(b.ignored, key)
			delete(b.obs, key)
		case e == nil:
			o.entry = r.discover(o)
		default:
			o.entry = e
			if r.newInstance(e, key, o) {
				// Same path, re-created cgroup (docker restart): counters start again.
				r.restartEntry(e, o)
				continue
			}
			if !e.st.goneTime().IsZero() {
				// Back from the dead in the same cgroup: re-read the restart count.
				r.enqueueMetadata(e)
			}
			e.st.mu.Lock()
			if e.st.cg.identity.Path == key && (e.st.cg.missing != 0 || o.paths.Has()&^e.st.cg.paths.Has() != 0) {
				e.st.locate(o.paths)
			}
			e.st.mu.Unlock()
		}
	}
}

// discover creates the container for a cgroup never seen, published at once with what its
// cgroup tells. A runtime's container is queued for metadata; a Kubernetes-shaped one (its
// cgroup names a pod) stays pending, invisible to lookups, until then: the runtime decides
// its ID, whether it is a restart of a known container, or a pod sandbox.
func (r *Registry) discover(o *observation) *entry {
	c := newContainer(o.identity, metadata{}, false)
	r.mu.RLock()
	known := r.byID[c.ID]
	r.mu.RUnlock()
	needsMeta := r.rt.serves(o.identity.Kind)
	if known != nil && !(needsMeta && o.identity.PodUID != "") {
		// The same ID in a new cgroup, told by the cgroup alone: a new instance. Its restart
		// count stays the last one the runtime gave until the runtime answers about it.
		c.Restarts = known.cur.Load().Restarts
		r.repoint(known, c, o)
		if needsMeta {
			r.enqueueMetadata(known)
		}
		return known
	}
	c.FirstSeen = r.now()
	continueRestarts(nil, c, c.FirstSeen)
	c.st = &state{fs: r.fs, incomplete: &r.cgroupIncomplete, refreshedAt: r.now(), cg: cgroupInstance{identity: o.identity}}
	c.st.locate(o.paths) // not shared yet: no lock needed
	e := &entry{st: c.st}
	e.cur.Store(c)
	if needsMeta {
		e.pending.Store(o.identity.PodUID != "")
		r.enqueueMetadata(e)
	}
	return e
}

// repoint publishes c as the new instance of entry e, whose cgroup is now o's; the caller
// holds scanMu.
func (r *Registry) repoint(e *entry, c *Container, o *observation) {
	now := r.now()
	prev := e.cur.Load()
	c.ID = prev.ID
	c.FirstSeen = now
	continueRestarts(prev, c, now)
	c.st = e.st
	e.st.mu.Lock()
	e.st.fs = r.fs // unset on a container known only from its runtime (publishGone)
	e.st.cg = cgroupInstance{identity: o.identity}
	e.st.locate(o.paths)
	e.st.hasLast = false // the old cgroup's last reading must not stand in for the new one
	e.st.refreshedAt = now
	e.st.mu.Unlock()
	e.cur.Store(c)
	r.restarts.Add(1)
}

// newInstance reports whether the container's current cgroup (key) was re-created since the
// registry last saw it. Only the current cgroup counts: processes left in an older cgroup of
// the same ID (a restart still being torn down) must not flip the instance back. The inode is
// compared in the hierarchy it was first read in: a container seen while its runtime moved it
// may be known in more hierarchies later, and each has its own inode.
func (r *Registry) newInstance(e *entry, key string, o *observation) bool {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	if e.st.cg.identity.Path != key {
		return false
	}
	if e.st.cg.inode == 0 {
		e.st.locate(o.paths) // not readable when first seen: learn it now
		return false
	}
	ino, err := r.fs.DirInodeIn(e.st.cg.inodeIn, key)
	return err == nil && ino != e.st.cg.inode
}

// restartEntry publishes a new instance of a container whose cgroup was re-created under the
// same path, with the metadata it had; a runtime's fresh restart count follows from the queue.
// A systemd unit (or another cgroup) has no runtime to count its restarts: systemd removes a
// unit's cgroup when the unit stops and creates it anew when it starts, so each re-created
// cgroup the registry sees is one restart.
func (r *Registry) restartEntry(e *entry, o *observation) {
	c := *e.cur.Load()
	if k := e.identity().Kind; k == cgroups.KindSystemd || k == cgroups.KindOther {
		c.Restarts++
	}
	r.repoint(e, &c, o)
	r.enqueueMetadata(e)
}

func (r *Registry) lookup(ctx context.Context, id cgroups.Identity) (m metadata, ok, answered bool) {
	switch id.Kind {
	case cgroups.KindDocker, cgroups.KindContainerd, cgroups.KindCRIO, cgroups.KindKubepods:
		r.runtimeLookups.Add(1)
		return r.rt.lookup(ctx, id.Kind, id.ID)
	}
	return metadata{}, false, true
}

// newContainer builds a container's published fields; see ID for the naming.
func newContainer(id cgroups.Identity, m metadata, hasMeta bool) *Container {
	c := &Container{ID: IDOf(id), CgroupPath: id.Path, Runtime: id.Kind.String(), RuntimeID: id.ID, PodUID: id.PodUID}
	switch id.Kind {
	case cgroups.KindSystemd:
		c.Name = id.ID // the unit
	case cgroups.KindOther, cgroups.KindNone:
		c.Name = id.Path
	}
	if hasMeta {
		applyMetadata(c, m)
		if m.PodName != "" && m.Namespace != "" && m.ContainerName != "" {
			c.ID = ID("/k8s/" + m.Namespace + "/" + m.PodName + "/" + m.ContainerName)
		}
	}
	return c
}

// continueRestarts sets when c's restart count began, c being published after prev (nil when
// c is the container's first publication) at now. A count that went down, or that belongs to
// another pod (a pod re-created under its name has a new UID and counts attempts from 0),
// begins anew now; otherwise it continues prev's.
func continueRestarts(prev, c *Container, now time.Time) {
	switch {
	case prev == nil || prev.RestartsSince.IsZero():
		c.RestartsSince = c.FirstSeen
		if c.RestartsSince.IsZero() || c.RestartsSince.After(now) {
			c.RestartsSince = now
		}
	case c.Restarts < prev.Restarts, prev.PodUID != "" && c.PodUID != "" && prev.PodUID != c.PodUID:
		c.RestartsSince = now
	default:
		c.RestartsSince = prev.RestartsSince
	}
}

func applyMetadata(c *Container, m metadata) {
	c.Name, c.Image, c.Labels, c.Restarts, c.LogPath, c.Env = m.Name, m.Image, m.Labels, m.Restarts, m.LogPath, m.Env
	c.PodName, c.Namespace, c.ContainerName = m.PodName, m.Namespace, m.ContainerName
	if m.PodUID != "" {
		c.PodUID = m.PodUID
	}
	if c.Runtime == cgroups.KindKubepods.String() && m.Runtime != "" {
		// The cgroupfs driver's path does not name the runtime; the one that answered does.
		c.Runtime = m.Runtime
	}
}

// publish makes a batch visible to lookups. A full batch also marks containers without
// processes gone and forgets those gone for longer than the retention.
func (r *Registry) publish(b *batch, cgroupIDs map[string]uint64, full bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = make(map[ID]*entry)
		r.byCgroup = make(map[string]*entry)
		r.byCgroupID = make(map[uint64]*entry)
		r.byRuntimeID = make(map[string]*entry)
		r.pids = make(map[uint32]*entry)
		r.notContainer = make(map[uint64]struct{})
	}
	if full {
		r.pids = make(map[uint32]*entry, len(r.pids))
		r.notContainer = make(map[uint64]struct{}, len(r.notContainer))
	}
	for _, pid := range b.hostPids {
		if prev := r.pids[pid]; prev != nil {
			prev.dropProcess(now) // left its container for a cgroup that is none
		}
		r.pids[pid] = nil
	}
	for _, ino := range b.notContainer {
		r.notContainer[ino] = struct{}{}
	}
	seen := make(map[*entry]bool, len(b.obs))
	for key, o := range b.obs {
		e := o.entry
		c := e.cur.Load()
		seen[e] = true
		if _, ok := r.byID[c.ID]; !ok && !e.pending.Load() {
			r.byID[c.ID] = e // a pending container is listed once its ID is final
		}
		if r.byCgroup[key] != e {
			r.byCgroup[key] = e
			e.cgroupKeys = append(e.cgroupKeys, key)
		}
		if c.RuntimeID != "" && r.byRuntimeID[c.RuntimeID] != e {
			r.byRuntimeID[c.RuntimeID] = e
			e.runtimeIDs = append(e.runtimeIDs, c.RuntimeID)
		}
		for _, u := range o.unified {
			ino, ok := r.cgroupID(u, cgroupIDs)
			if ok && r.byCgroupID[ino] != e {
				r.byCgroupID[ino] = e
				e.cgroupIDs = append(e.cgroupIDs, ino)
			}
		}
		added := 0
		for _, pid := range o.pids {
			prev, known := r.pids[pid]
			if known && prev == e {
				continue // counted already (a process that execs again)
			}
			if known {
				prev.dropProcess(now) // moved here from another container
			}
			r.pids[pid] = e
			added++
		}
		e.st.mu.Lock()
		if full {
			e.st.pids = len(o.pids)
		} else {
			e.st.pids += added
		}
		e.st.goneAt = time.Time{}
		e.st.mu.Unlock()
	}
	if !full {
		return
	}
	// Forget sandboxes that are gone, so the set stays bounded.
	r.ignored = make(map[string]struct{}, len(b.ignored))
	for _, k := range b.ignored {
		r.ignored[k] = struct{}{}
	}
	cutoff := now.Add(-r.cfg.Retention)
	for id, e := range r.byID {
		if seen[e] {
			continue
		}
		e.st.mu.Lock()
		e.st.pids = 0
		if e.st.goneAt.IsZero() {
			e.st.goneAt = now
		}
		expired := e.st.goneAt.Before(cutoff)
		e.st.mu.Unlock()
		if expired {
			r.forgetLocked(id, e)
		}
	}
}

func (r *Registry) forgetLocked(id ID, e *entry) {
	delete(r.byID, id)
	for _, k := range e.cgroupKeys {
		if r.byCgroup[k] == e {
			delete(r.byCgroup, k)
		}
	}
	for _, ino := range e.cgroupIDs {
		if r.byCgroupID[ino] == e {
			delete(r.byCgroupID, ino)
		}
	}
	for _, rid := range e.runtimeIDs {
		if r.byRuntimeID[rid] == e {
			delete(r.byRuntimeID, rid)
		}
	}
	for pid, pe := range r.pids {
		if pe == e {
			delete(r.pids, pid)
		}
	}
	r.expired.Add(1)
}

// rescan reads the processes the registry has not seen, unless one did so within
// min_rescan_interval. Concurrent callers coalesce: one that waited while a scan begun after
// its own miss ran uses that scan. It reports whether a scan begun after the call ran.
func (r *Registry) rescan() bool {
	arrived := r.scanSeq.Load()
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	if r.scanSeq.Load() != arrived {
		return true
	}
	now := r.now()
	if now.Sub(r.lastRescan) < r.cfg.MinRescanInterval {
		return false
	}
	r.lastRescan = now
	r.scanLocked(false)
	return true
}

// attributePID reads one process and publishes it; known reports whether the registry knows
// it afterwards (in a container or in none). Unless force, a pid published while this waited
// for scanMu is not read again.
func (r *Registry) attributePID(pid uint32, force bool) (e *entry, known bool) {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	if !force {
		r.mu.RLock()
		e, known = r.pids[pid]
		r.mu.RUnlock()
		if known {
			return e, true
		}
	}
	b := batch{obs: make(map[string]*observation, 1)}
	cgroupIDs := make(map[string]uint64, 1)
	r.read(pid, &b, cgroupIDs)
	r.resolve(&b)
	r.publish(&b, cgroupIDs, false)
	r.wakeMetadata()
	r.mu.RLock()
	e, known = r.pids[pid]
	r.mu.RUnlock()
	return e, known
}
