package containers

import "slices"

// PIDsByContainer returns the processes the registry attributes to each published container
// now, each list sorted. Sources that read a container's processes (its application types,
// its mount namespace) take it once per collection: one pass over the registry's pid index,
// however many containers there are.
func (r *Registry) PIDsByContainer() map[ID][]uint32 {
	r.mu.RLock()
	out := make(map[ID][]uint32, len(r.byID))
	for pid, e := range r.pids {
		if e == nil || e.pending.Load() {
			continue
		}
		id := e.cur.Load().ID
		out[id] = append(out[id], pid)
	}
	r.mu.RUnlock()
	for _, pids := range out {
		slices.Sort(pids)
	}
	return out
}
