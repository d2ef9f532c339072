package taskstats

import (
	"sort"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// SavedContainer is one container's delay totals as a restarted Accumulator continues them:
// the final totals of its processes that exited, and the last reading of each live process
// (the kernel keeps counting a live process's delays; only the part not read yet when the
// agent stopped is new to the next run).
type SavedContainer struct {
	ID        containers.ID  `json:"id"`
	Since     time.Time      `json:"since"`
	LastSeen  time.Time      `json:"last_seen"`
	Dead      Delays         `json:"dead"`
	Processes []SavedProcess `json:"processes,omitempty"`
}

// SavedProcess is a live process's last reading. Start tells it from a later process that got
// the same pid while the agent was down.
type SavedProcess struct {
	PID   uint32 `json:"pid"`
	Start uint64 `json:"start"`
	Last  Delays `json:"last"`
	// The disk delay's filter state (blkio.go).
	BlkioRaw     uint64 `json:"blkio_raw,omitempty"`
	BlkioOffset  uint64 `json:"blkio_offset,omitempty"`
	BlkioElapsed uint64 `json:"blkio_elapsed,omitempty"`
}

// Save returns every container's totals, as of the last collection and the exits since.
func (a *Accumulator) Save() []SavedContainer {
	a.mu.Lock()
	defer a.mu.Unlock()
	byID := make(map[containers.ID]*SavedContainer, len(a.containers))
	for id, c := range a.containers {
		byID[id] = &SavedContainer{ID: id, Since: c.since, LastSeen: c.lastSeen, Dead: c.dead}
	}
	for pid, e := range a.procs {
		sc := byID[e.container]
		if sc == nil {
			continue // not collected yet: its container's totals do not exist either
		}
		sc.Processes = append(sc.Processes, SavedProcess{
			PID: pid, Start: e.start, Last: e.last, BlkioRaw: e.blk.raw, BlkioOffset: e.blk.offset, BlkioElapsed: e.blk.elapsed,
		})
	}
	out := make([]SavedContainer, 0, len(byID))
	for _, sc := range byID {
		sort.Slice(sc.Processes, func(i, j int) bool { return sc.Processes[i].PID < sc.Processes[j].PID })
		out = append(out, *sc)
	}
	return out
}

// Restore makes the Accumulator continue the totals of a previous run under their start
// times; call it before the first collection. A saved process that is still running (same pid
// and start time) continues from its last reading; one that exited while the agent was down
// counts with its last reading, like a process whose exit notification was lost.
func (a *Accumulator) Restore(saved []SavedContainer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range saved {
		sc := &saved[i]
		if _, ok := a.containers[sc.ID]; ok || sc.ID == "" {
			continue
		}
		a.containers[sc.ID] = &containerTotals{dead: sc.Dead, since: sc.Since, lastSeen: sc.LastSeen}
		for _, p := range sc.Processes {
			if _, ok := a.procs[p.PID]; ok {
				continue
			}
			a.procs[p.PID] = &procEntry{
				container: sc.ID, start: p.Start, last: p.Last, gen: a.gen, restored: true,
				blk: blkioTrack{raw: p.BlkioRaw, offset: p.BlkioOffset, elapsed: p.BlkioElapsed},
			}
		}
	}
}
