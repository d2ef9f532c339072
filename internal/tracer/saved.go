package tracer

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// SavedContainer is one container's cumulative TCP and OOM counters with their start times, as
// a restarted tracer continues them (Save, Restore). What the kernel itself keeps (open
// connections, listening sockets) is not saved: Start reads it again (seed.go).
type SavedContainer struct {
	ID           containers.ID      `json:"id"`
	Created      time.Time          `json:"created"` // start of the OOM kill count
	OOMKills     uint64             `json:"oom_kills,omitempty"`
	LastOOMKill  time.Time          `json:"last_oom_kill,omitzero"`
	Destinations []SavedDestination `json:"destinations,omitempty"`
	Listens      []SavedListen      `json:"listens,omitempty"`
}

// SavedDestination is one (destination, actual_destination) pair's counters.
type SavedDestination struct {
	Destination        string        `json:"dst"`
	ActualDestination  string        `json:"actual"`
	Start              time.Time     `json:"start"`
	LastActive         time.Time     `json:"last_active"`
	SuccessfulConnects uint64        `json:"connects,omitempty"`
	FailedConnects     uint64        `json:"failed,omitempty"`
	ConnectionTime     time.Duration `json:"connection_time,omitempty"`
	Retransmits        uint64        `json:"retransmits,omitempty"`
	BytesSent          uint64        `json:"sent,omitempty"`
	BytesReceived      uint64        `json:"received,omitempty"`
}

// SavedListen is one listen address's inbound connection count.
type SavedListen struct {
	Address    string    `json:"addr"`
	Start      time.Time `json:"start"`
	LastActive time.Time `json:"last_active"`
	Inbound    uint64    `json:"inbound,omitempty"`
	Listener   bool      `json:"listener,omitempty"`
}

// Save returns every container's counters. A destination or listen address still in use
// counts as active now, so a restart that finds its connection or socket again does not
// expire it for having been idle.
func (t *Tracer) Save() []SavedContainer {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]SavedContainer, 0, len(t.containers))
	for id, s := range t.containers {
		sc := SavedContainer{ID: id, Created: s.created, OOMKills: s.oomKills, LastOOMKill: s.lastOOMKill}
		for _, d := range s.destinations {
			last := d.lastActive
			if d.ActiveConnections > 0 {
				last = now
			}
			sc.Destinations = append(sc.Destinations, SavedDestination{
				Destination: d.Destination, ActualDestination: d.ActualDestination, Start: d.Start, LastActive: last,
				SuccessfulConnects: d.SuccessfulConnects, FailedConnects: d.FailedConnects, ConnectionTime: d.ConnectionTime,
				Retransmits: d.Retransmits, BytesSent: d.BytesSent, BytesReceived: d.BytesReceived,
			})
		}
		for addr, l := range s.listens {
			last := l.lastActive
			if l.open {
				last = now
			}
			sc.Listens = append(sc.Listens, SavedListen{
				Address: addr.String(), Start: l.created, LastActive: last, Inbound: l.inbound, Listener: l.listener,
			})
		}
		// In a fixed order: a container whose counters did not change saves the same bytes.
		slices.SortFunc(sc.Destinations, func(a, b SavedDestination) int {
			return cmp.Or(strings.Compare(a.Destination, b.Destination), strings.Compare(a.ActualDestination, b.ActualDestination))
		})
		slices.SortFunc(sc.Listens, func(a, b SavedListen) int { return strings.Compare(a.Address, b.Address) })
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b SavedContainer) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// Restore makes the tracer continue the counters of a previous run under their start times;
// call it before Start. Entries whose address does not parse are skipped (a state written by
// another version); what idled past destination_ttl or oom_kill_retention expires at the first
// Refresh, as if the agent had not restarted.
func (t *Tracer) Restore(saved []SavedContainer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sc := range saved {
		if _, ok := t.containers[sc.ID]; ok || sc.ID == "" {
			continue
		}
		s := &containerState{
			destinations: map[destKey]*destination{},
			listens:      map[netip.AddrPort]*listenAddr{},
			latency:      map[netip.Addr]*latency{},
			created:      sc.Created,
			oomKills:     sc.OOMKills,
			lastOOMKill:  sc.LastOOMKill,
		}
		for i := range sc.Destinations {
			d := &sc.Destinations[i]
			dst, err1 := netip.ParseAddrPort(d.Destination)
			actual, err2 := netip.ParseAddrPort(d.ActualDestination)
			if err1 != nil || err2 != nil || len(s.destinations) >= t.opts.Config.MaxDestinationsPerContainer {
				continue
			}
			s.destinations[destKey{dst, actual}] = &destination{
				DestinationStats: DestinationStats{
					Destination: d.Destination, ActualDestination: d.ActualDestination, Start: d.Start,
					SuccessfulConnects: d.SuccessfulConnects, FailedConnects: d.FailedConnects, ConnectionTime: d.ConnectionTime,
					Retransmits: d.Retransmits, BytesSent: d.BytesSent, BytesReceived: d.BytesReceived,
				},
				lastActive: d.LastActive,
			}
		}
		for _, l := range sc.Listens {
			addr, err := netip.ParseAddrPort(l.Address)
			if err != nil || len(s.listens) >= t.opts.Config.MaxDestinationsPerContainer {
				continue
			}
			s.listens[addr] = &listenAddr{inbound: l.Inbound, created: l.Start, lastActive: l.LastActive, listener: l.Listener}
		}
		t.containers[sc.ID] = s
	}
}
