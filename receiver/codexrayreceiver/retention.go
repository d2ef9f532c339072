package codexrayreceiver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// The end of a container's series. The rule, here and in README.md (containers.retention):
//
// A container is reported while the registry lists it: while it runs, and for
// containers.retention after its last process left. Then its series stop, every source's, at the
// first collection after the retention: what a source still holds for the container (TCP
// destinations and listen addresses kept for ebpf.destination_ttl, L7 request series for
// ebpf.l7.series_ttl, log streams for logs.stream_expiry, delay totals for five minutes) is
// forgotten then, in memory and so in the saved state, and never reported with frozen values
// or under less of an identity than the registry gave. A container that runs again under the same ID is listed again: within the
// retention it continues its counts; after it, it counts from zero under later starts
// (startOf), its cgroup counters with the new instance as always.
//
// One exception: an OOM-killed container's container_oom_kills_total stays reported until
// ebpf.oom_kill_retention after its last kill (the kill must stay visible after the container
// was removed), alone, under the identity the registry last listed the container with.
//
// A container some source holds state for that the registry has never listed (a one-shot
// container that exited before a scan saw a process of it, whose log file was read; state
// restored after an agent restart) is described by the registry (Registry.DescribeGone, with the
// log file its output was read from): it is then listed as gone from that moment, for the
// retention, under what its runtime, its ID and its log path tell. Until then nothing of it is
// reported; if the registry has not listed it within the retention (at least describeWait),
// its state is forgotten.

// describeWait is the least time the state of a container the registry has never listed waits,
// unreported, to be described: a registry that got no answer from a runtime asks again after a
// minute.
const describeWait = 2 * time.Minute

// retention applies the rule above at every collection.
type retention struct {
	// wait is how long an unlisted container's state waits to be described, and how long a
	// forgotten container is remembered as such (so a late event does not make it new).
	wait time.Duration

	mu    sync.Mutex
	lives map[containers.ID]*containerLife
}

// containerLife is what the receiver remembers of a container the registry lists or a source
// holds state for.
type containerLife struct {
	last      *containers.Container // as the registry last listed it; nil: never listed
	listed    bool                  // at the last collection
	noticed   time.Time             // when a source was first seen holding it, never listed
	forgotten time.Time             // when its state was forgotten (or it left the registry's list unheld)
}

// retained is a container reported only for a retainer's metric.
type retained struct {
	c  *containers.Container
	by containerRetainer
}

// goneDescriber is what the rule needs of the registry (*containers.Registry).
type goneDescriber interface {
	DescribeGone(id containers.ID, logFile string)
}

func newRetention(containerRetention time.Duration) *retention {
	return &retention{wait: max(containerRetention, describeWait), lives: map[containers.ID]*containerLife{}}
}

// apply takes the registry's list of this collection: sources forget the containers whose
// retention is over (and those never described in time), the registry is asked about those it
// never listed, and the containers reported only for a retainer's metric are returned, sorted.
func (r *retention) apply(ctx context.Context, now time.Time, listed []*containers.Container, sources []source, reg goneDescriber) []retained {
	// The sources are called without r.mu: what they emit meanwhile (log-pattern records) asks
	// lastListed.
	held := map[containers.ID]string{}
	var holders []containerHolder
	for _, s := range sources {
		h, ok := s.(containerHolder)
		if !ok {
			continue
		}
		holders = append(holders, h)
		for _, hc := range h.heldContainers() {
			if f, seen := held[hc.id]; !seen || f == "" {
				held[hc.id] = hc.logFile
			}
		}
	}
	forget := r.decide(now, listed, held, reg)
	if len(forget) > 0 {
		for _, h := range holders {
			h.forgetContainers(ctx, forget)
		}
	}
	var out []retained
	for _, s := range sources {
		rt, ok := s.(containerRetainer)
		if !ok {
			continue
		}
		for _, id := range rt.retainedContainers() {
			// Listed: reported in full. Never listed: no identity to report it under.
			if c, ok := r.lastListed(id); ok && !r.isListed(id) {
				out = append(out, retained{c: c, by: rt})
			}
		}
	}
	slices.SortFunc(out, func(a, b retained) int { return strings.Compare(string(a.c.ID), string(b.c.ID)) })
	return out
}

// decide notes what the registry lists, asks it about the held containers it never listed, and
// returns the held containers to forget.
func (r *retention) decide(now time.Time, listed []*containers.Container, held map[containers.ID]string, reg goneDescriber) []containers.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lives {
		l.listed = false
	}
	for _, c := range listed {
		l := r.life(c.ID)
		l.last, l.listed, l.noticed, l.forgotten = c, true, time.Time{}, time.Time{}
	}
	var forget []containers.ID
	for id, logFile := range held {
		l := r.life(id)
		switch {
		case l.listed:
			continue
		case l.last != nil || !l.forgotten.IsZero():
			// Listed before, not any more: its retention is over. Or forgotten already, and a
			// late event brought some state back.
		case l.noticed.IsZero():
			l.noticed = now
			reg.DescribeGone(id, logFile)
			continue
		case now.Sub(l.noticed) <= r.wait:
			reg.DescribeGone(id, logFile) // asked again once the registry's pause is over
			continue
		}
		forget = append(forget, id)
		if l.forgotten.IsZero() {
			l.forgotten = now
		}
	}
	for id, l := range r.lives {
		if _, ok := held[id]; ok || l.listed {
			continue
		}
		switch {
		case l.forgotten.IsZero():
			l.forgotten = now // no source holds it: remembered as gone for a while
		case now.Sub(l.forgotten) > r.wait:
			delete(r.lives, id)
		}
	}
	return forget
}

func (r *retention) isListed(id containers.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lives[id]
	return l != nil && l.listed
}

func (r *retention) life(id containers.ID) *containerLife {
	l := r.lives[id]
	if l == nil {
		l = &containerLife{}
		r.lives[id] = l
	}
	return l
}

// lastListed is the container as the registry last listed it, for what a source emits
// between collections and after its retention (the log-pattern records of its last lines);
// false when the registry has never listed it or it has been forgotten for longer than wait.
func (r *retention) lastListed(id containers.ID) (*containers.Container, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.lives[id]; l != nil && l.last != nil {
		return l.last, true
	}
	return nil, false
}
