package taskstats

import (
	"errors"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// processReader is what a collection needs to know about the node's processes. The real one
// reads /proc and asks the kernel over a Client; tests use fakes.
type processReader interface {
	// TGIDs lists the live thread groups (processes).
	TGIDs() ([]uint32, error)
	// Start returns the process's start time (any value that differs between two processes
	// that had the same pid) and whether it is a zombie. An error means it is gone.
	Start(tgid uint32) (start uint64, zombie bool, err error)
	// Read returns the thread group's delay totals and its summed thread elapsed time in
	// nanoseconds (0 when unknown); ErrGone when the process exited.
	Read(tgid uint32) (d Delays, elapsed uint64, err error)
}

// CollectResult describes one collection.
type CollectResult struct {
	Processes   int // processes listed
	Followed    int // processes in containers whose totals were read
	Gone        int // processes that exited while being read
	Errors      int // failed reads other than gone processes
	Implausible int // readings with a bogus disk delay increment (removed; see blkio.go)
	FirstErr    error
}

// collect reads every process in a container once and refreshes the per-container totals.
func (a *Accumulator) collect(r processReader, now time.Time) (CollectResult, error) {
	var res CollectResult
	pids, err := r.TGIDs()
	if err != nil {
		return res, err
	}
	res.Processes = len(pids)
	a.mu.Lock()
	a.gen++
	gen := a.gen
	a.mu.Unlock()
	present := make(map[uint32]struct{}, len(pids))

	for _, pid := range pids {
		present[pid] = struct{}{}
		a.mu.Lock()
		e := a.procs[pid]
		known := e != nil
		var (
			cid      containers.ID
			start    uint64
			last     Delays
			restored bool
		)
		if known {
			cid, start, last, restored = e.container, e.start, e.last, e.restored
		}
		t := a.exited[pid]
		var tombStart uint64
		if t != nil {
			tombStart = t.start
		}
		seq := a.seq
		a.mu.Unlock()

		if !known {
			if t != nil {
				st, zombie, err := r.Start(pid)
				if err != nil || zombie || (tombStart != 0 && st == tombStart) {
					continue // the process already folded, still a zombie or on its way out
				}
			}
			id, ok := a.resolver.ContainerIDByPID(pid)
			if !ok {
				continue
			}
			st, zombie, err := r.Start(pid)
			if err != nil || zombie {
				continue // zombies of unfollowed processes have nothing left to report
			}
			cid, start = id, st
		}

		d, elapsed, err := r.Read(pid)
		if err != nil {
			if errors.Is(err, ErrGone) {
				res.Gone++
				continue
			}
			res.Errors++
			if res.FirstErr == nil {
				res.FirstErr = err
			}
			if known {
				a.mu.Lock()
				if e := a.procs[pid]; e != nil {
					e.gen = gen // keep it: the failure says nothing about it having exited
				}
				a.mu.Unlock()
			}
			continue
		}
		reused := false
		var newCID containers.ID
		var newStart uint64
		if known && (d.less(last) || restored) {
			// Lower than before: either the pid now belongs to another process, or a
			// reading of the same one overlapped a thread's exit. Only the start time tells.
			st, _, err := r.Start(pid)
			if err == nil && st != start {
				if id, ok := a.resolver.ContainerIDByPID(pid); ok {
					reused, newCID, newStart = true, id, st
				} else {
					reused = true
				}
			}
		}
		res.Followed++

		a.mu.Lock()
		if cur := a.exited[pid]; cur != nil && cur.seq > seq {
			a.mu.Unlock()
			continue // its exit was handled while we were reading it
		}
		e = a.procs[pid]
		var bogus bool
		switch {
		case e == nil:
			delete(a.exited, pid) // an older tombstone of a pid now reused
			n := &procEntry{container: cid, start: start, gen: gen}
			d.Blkio, bogus = n.blk.first(d.Blkio, elapsed)
			n.last = d
			a.procs[pid] = n
		case reused:
			a.pidReuses++
			a.totals(e.container, now).dead = a.totals(e.container, now).dead.add(e.last)
			delete(a.procs, pid)
			if newCID != "" {
				n := &procEntry{container: newCID, start: newStart, gen: gen}
				d.Blkio, bogus = n.blk.first(d.Blkio, elapsed)
				n.last = d
				a.procs[pid] = n
			}
		default:
			d.Blkio, bogus = e.blk.next(d.Blkio, elapsed, e.start)
			e.last = e.last.max(d)
			e.gen = gen
			e.restored = false
		}
		if bogus {
			res.Implausible++
			a.implausible++
		}
		a.mu.Unlock()
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	for pid, e := range a.procs {
		if e.gen == gen {
			continue
		}
		// Vanished without an exit notification (lost to an overrun, or not yet read): its
		// last reading is the best final value there is.
		a.missedExits++
		c := a.totals(e.container, now)
		c.dead = c.dead.add(e.last)
		a.exited[pid] = &tombstone{
			container: e.container, start: e.start, folded: e.last, seq: a.seq, gen: gen,
			blk: e.blk, followed: true,
		}
		delete(a.procs, pid)
	}
	// A tombstone outlives its pid's last appearance in /proc by one whole collection, for
	// notifications that lag behind.
	for pid, t := range a.exited {
		if _, ok := present[pid]; ok {
			t.gen = gen
		} else if t.gen+1 < gen {
			delete(a.exited, pid)
		}
	}
	for _, c := range a.containers {
		c.snapshot = c.dead
		c.live = 0
	}
	for _, e := range a.procs {
		c := a.totals(e.container, now)
		c.snapshot = c.snapshot.add(e.last)
		c.live++
	}
	for id, c := range a.containers {
		if c.live == 0 && now.Sub(c.lastSeen) > a.retention {
			delete(a.containers, id)
			continue
		}
		c.known = true
	}
	return res, nil
}
