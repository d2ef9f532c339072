package taskstats

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// Resolver tells which container a process belongs to, by ID only. *containers.Registry
// implements it.
type Resolver interface {
	ContainerIDByPID(pid uint32) (containers.ID, bool)
}

// Accumulator turns per-process delay totals into monotonic per-container totals.
//
// A container's total is the sum of the final totals of its processes that exited (its "dead"
// part) plus the latest totals of its live processes. A live process's totals are read at
// each collection (Observe); when it exits its final totals (from an exit notification, or
// the last reading when the notification was lost) move to the dead part exactly once. Each
// process's contribution only grows (readings are clamped to the largest seen), so container
// totals never go back.
//
// Multi-threaded processes: a TGID reading already includes the threads that exited (the
// kernel folds each exiting thread into the thread group's accumulator), so per-thread exit
// notifications of a still-running process are ignored; only the record of the last thread
// (AGROUP) with its thread-group record counts, once.
//
// An Accumulator is safe for concurrent use: exit notifications arrive on their own goroutine.
type Accumulator struct {
	resolver Resolver
	// retention is how long a container without live processes keeps its totals.
	retention time.Duration

	mu         sync.Mutex
	seq        uint64 // bumped by every exit; orders exits against in-flight readings
	gen        uint64 // collections started
	procs      map[uint32]*procEntry
	exited     map[uint32]*tombstone
	containers map[containers.ID]*containerTotals

	exits        uint64 // final exits folded into a container
	exitsOutside uint64 // final exits of processes in no known container
	missedExits  uint64 // processes that vanished without an exit notification
	pidReuses    uint64
	implausible  uint64 // bogus disk delay increments removed
}

// procEntry is a live process being followed.
type procEntry struct {
	container containers.ID
	start     uint64 // /proc/<pid>/stat starttime (clock ticks since boot)
	last      Delays // largest totals read so far (disk delay without bogus increments)
	blk       blkioTrack
	gen       uint64 // collection that last saw it
	// restored: taken over from a previous run (Restore); its pid may belong to another
	// process by now even if the reading is not lower, so the start time is checked once.
	restored bool
}

// tombstone remembers a process whose final totals were folded, so that a zombie or a late
// duplicate is not counted again.
type tombstone struct {
	container containers.ID
	start     uint64 // 0 when the process was never followed
	folded    Delays // what was moved to the dead part
	blk       blkioTrack
	followed  bool // blk and start are the followed process's
	seq       uint64
	gen       uint64 // collection during which it was made
}

type containerTotals struct {
	dead     Delays
	live     int // live processes at the last collection
	lastSeen time.Time
	snapshot Delays // dead + live at the end of the last collection
	known    bool   // snapshot valid
	// since is when these totals were created. Totals forgotten after the retention and
	// created again later restart from zero, so a cumulative series built on them must carry
	// this as its start: a backend then sees a new series start, never a counter falling.
	since time.Time
}

// NewAccumulator returns an Accumulator attributing processes through r. Totals of a
// container with no live process are forgotten after retention (default 5 minutes if 0).
func NewAccumulator(r Resolver, retention time.Duration) *Accumulator {
	if retention <= 0 {
		retention = 5 * time.Minute
	}
	return &Accumulator{
		resolver:   r,
		retention:  retention,
		procs:      map[uint32]*procEntry{},
		exited:     map[uint32]*tombstone{},
		containers: map[containers.ID]*containerTotals{},
	}
}

// ContainerDelays returns the container's totals as of the last completed collection.
func (a *Accumulator) ContainerDelays(id containers.ID) (Delays, bool) {
	d, _, ok := a.ContainerDelaysSince(id)
	return d, ok
}

// ContainerDelaysSince is ContainerDelays plus when the totals began accumulating: the
// collection or exit that first attributed a process to the container, again after the
// totals were forgotten (retention) and re-created from zero.
func (a *Accumulator) ContainerDelaysSince(id containers.ID) (d Delays, since time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.containers[id]
	if !ok || !c.known {
		return Delays{}, time.Time{}, false
	}
	return c.snapshot, c.since, true
}

// ContainerIDs returns the containers with totals.
func (a *Accumulator) ContainerIDs() []containers.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Collect(maps.Keys(a.containers))
}

// Forget drops the totals of containers gone for good (the receiver calls it once the
// registry's retention of a container is over) and stops following processes still attributed
// to them; a later exit of one counts outside known containers. A container that runs again
// later has totals from zero with a later since.
func (a *Accumulator) Forget(ids []containers.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	drop := make(map[containers.ID]bool, len(ids))
	for _, id := range ids {
		if _, ok := a.containers[id]; ok {
			delete(a.containers, id)
			drop[id] = true
		}
	}
	if len(drop) == 0 {
		return
	}
	for pid, e := range a.procs {
		if drop[e.container] {
			delete(a.procs, pid)
		}
	}
}

// Counters are the accumulator's self-observability figures.
type Counters struct {
	LiveProcesses int    // processes followed at the last collection
	Containers    int    // containers with totals
	Exits         uint64 // process exits folded into a container from a notification
	ExitsOutside  uint64 // exits of processes in no known container
	MissedExits   uint64 // processes that vanished without an exit notification (last reading used)
	PIDReuses     uint64 // pids found reused by another process between two collections
	Implausible   uint64 // bogus disk delay increments removed (see blkio.go)
}

// Counters returns the current figures.
func (a *Accumulator) Counters() Counters {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Counters{
		LiveProcesses: len(a.procs), Containers: len(a.containers),
		Exits: a.exits, ExitsOutside: a.exitsOutside, MissedExits: a.missedExits, PIDReuses: a.pidReuses,
		Implausible: a.implausible,
	}
}

func (a *Accumulator) totals(id containers.ID, now time.Time) *containerTotals {
	c := a.containers[id]
	if c == nil {
		c = &containerTotals{since: now}
		a.containers[id] = c
	}
	c.lastSeen = now
	return c
}

// Exit handles one exit notification. The final totals of a process are the thread-group
// record when present, else the task record of a thread group's last thread (AGROUP, or on
// kernels before v12, a task whose pid is a followed process). Other per-thread records are
// already part of their process's next TGID reading and are ignored.
func (a *Accumulator) Exit(r *Reply, now time.Time) {
	var (
		tgid  uint32
		final Delays
		ppid  uint32
	)
	var elapsed uint64 // ns
	switch {
	case r.HasGroup:
		tgid, final = r.TGID, r.Group.Delays()
		ppid = r.Task.PPID
		elapsed = r.Group.ETime * 1000
	case r.HasTask:
		tgid = r.Task.TGID
		if tgid == 0 { // before v12
			tgid = r.PID
		}
		if r.Task.Version >= 12 {
			if r.Task.Flag&AGroup == 0 {
				return
			}
		} else {
			a.mu.Lock()
			_, followed := a.procs[r.PID]
			a.mu.Unlock()
			if !followed || r.PID != tgid {
				return
			}
		}
		final, ppid = r.Task.Delays(), r.Task.PPID
		elapsed = r.Task.ETime * 1000
	default:
		return
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	if e, ok := a.procs[tgid]; ok {
		var bogus bool
		final.Blkio, bogus = e.blk.next(final.Blkio, elapsed, e.start)
		if bogus {
			a.implausible++
		}
		final = final.max(e.last)
		a.exits++
		a.totals(e.container, now).dead = a.totals(e.container, now).dead.add(final)
		delete(a.procs, tgid)
		a.exited[tgid] = &tombstone{
			container: e.container, start: e.start, folded: final, seq: a.seq, gen: a.gen,
			blk: e.blk, followed: true,
		}
		return
	}
	if t, ok := a.exited[tgid]; ok {
		// Already folded: a duplicate, or a notification that arrived after the process had
		// vanished from /proc and its last reading was folded. Only what grew since counts.
		var bogus bool
		if t.followed {
			final.Blkio, bogus = t.blk.next(final.Blkio, elapsed, t.start)
		} else {
			final.Blkio, bogus = (&blkioTrack{}).first(final.Blkio, elapsed)
		}
		if bogus {
			a.implausible++
		}
		grown := final.max(t.folded)
		c := a.totals(t.container, now)
		c.dead = c.dead.add(sub(grown, t.folded))
		t.folded = grown
		return
	}
	var bogus bool
	final.Blkio, bogus = (&blkioTrack{}).first(final.Blkio, elapsed)
	if bogus {
		a.implausible++
	}
	// A process born and gone between two collections. The resolver may still see it (a
	// zombie not yet reaped) or its parent, which for a short-lived child is in the same
	// container. Resolving without the lock would let a collection race in; exits are rare
	// enough for the resolver's cost to be held here.
	id, ok := a.resolve(tgid, ppid)
	if !ok {
		a.exitsOutside++
		return
	}
	a.exits++
	c := a.totals(id, now)
	c.dead = c.dead.add(final)
	a.exited[tgid] = &tombstone{container: id, folded: final, seq: a.seq, gen: a.gen}
}

func (a *Accumulator) resolve(pids ...uint32) (containers.ID, bool) {
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		if id, ok := a.resolver.ContainerIDByPID(pid); ok {
			return id, true
		}
	}
	return "", false
}

// sub returns a-b for totals with a ≥ b field by field.
func sub(a, b Delays) Delays {
	return Delays{
		CPU: a.CPU - b.CPU, Blkio: a.Blkio - b.Blkio, Swapin: a.Swapin - b.Swapin,
		Freepages: a.Freepages - b.Freepages, Thrashing: a.Thrashing - b.Thrashing,
		Compact: a.Compact - b.Compact, WPCopy: a.WPCopy - b.WPCopy, IRQ: a.IRQ - b.IRQ,
	}
}
