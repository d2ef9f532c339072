package tracer

import (
	"errors"
	"net/netip"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// Seeding: the kernel side sees only what happens after it is attached, so a restarted agent
// would never report a listener or a long-lived connection (a database pool) opened before.
// Start therefore reads the sockets that exist, right after attaching and before reading the
// first event:
//
//   - A listening socket marks its address open for the container of a process holding it,
//     folded like listen events.
//   - An open connection whose local port no socket of its namespace listens on (so it was
//     dialled, not accepted) counts as one active connection of that container towards its
//     remote address. It is not a successful connect: that happened before the agent.
//
// The kernel side knows nothing about these sockets: only their namespace and 4-tuple are
// readable from /proc (socket addresses are hashed by kptr_restrict), so that is what it is
// given (Probe.AddSeeded), with an id of the tracer's in place of the socket address. Its
// close event then carries that id and decrements the count exactly once; retransmits are
// counted too. Bytes and RTT of seeded connections are not: the kernel side never tracks
// their sends and receives (that would cost a lookup on every send of every socket).
//
// Races with the events of the first moments are resolved so that no connection is counted
// twice or forever:
//   - A connection that closed between the reading of /proc and AddSeeded would never send
//     a close: /proc is read again afterwards and such connections are withdrawn.
//   - A connection established after attaching but before /proc was read is both in /proc and
//     in a connect event, handled after seeding: the connect replaces the seeded entry.
//   - A close event for a withdrawn or replaced id finds nothing and changes nothing.

// seededSockets is the kernel side's table of connections opened before the agent started.
// *ebpf.Probe implements it.
type seededSockets interface {
	AddSeeded(s ebpf.SocketTuple, id uint64) error
	RemoveSeeded(s ebpf.SocketTuple) (bool, error)
}

// seededSockBit marks the ids of seeded connections in the tracer's connection table: with
// the top bit set and small otherwise they are not canonical kernel addresses, so they never
// collide with the socket address of a connection the kernel side saw open.
const seededSockBit = 1 << 63

// seededConn is what a seeded connection keeps beside its connection entry.
type seededConn struct {
	tuple ebpf.SocketTuple
	index seededIndexKey
}

// seededIndexKey finds the seeded entry of a connection a connect event reports: a 4-tuple is
// unique within a network namespace, and a container's processes share one.
type seededIndexKey struct {
	id       containers.ID
	src, dst netip.AddrPort // unmapped, as events carry them
}

// errSeedStopped: Close came while seeding was still running.
var errSeedStopped = errors.New("tracer closed while reading the sockets open at start")

// seedStopped reports whether Close asked a running seeding to give up.
func (t *Tracer) seedStopped() bool {
	select {
	case <-t.seedStop:
		return true
	default:
		return false
	}
}

// SeedResult describes one reading of the sockets that existed at start.
type SeedResult struct {
	Processes   int // process directories listed
	Namespaces  int // distinct network namespaces read
	Listens     int // listening sockets recorded
	Connections int // open outbound connections recorded
	Withdrawn   int // recorded connections found closed when /proc was read again
	Duration    time.Duration
}

// seed reads the TCP sockets under procRoot and records them (see above). kernel is told
// about each seeded connection; nil only in tests that need no close events.
func (t *Tracer) seed(procRoot string, kernel seededSockets) (SeedResult, error) {
	start := time.Now()
	var res SeedResult
	scan, err := scanSockets(procRoot)
	if err != nil {
		return res, err
	}
	defer func() {
		t.seedVanished.Add(scan.vanished)
		t.seedUnreadable.Add(scan.unreadable)
		t.seedMalformed.Add(scan.malformed)
	}()
	res.Processes, res.Namespaces = scan.processes, len(scan.namespaces)

	type plannedConn struct {
		sock  *existingSocket
		id    containers.ID
		key   destKey
		index seededIndexKey
	}
	type plannedListen struct {
		id         containers.ID
		addr       netip.AddrPort
		netns, pid uint32
	}
	var (
		conns   []plannedConn
		listens []plannedListen
		owners  = map[uint32]containers.ID{}
	)
	for _, ns := range scan.namespaces {
		if t.seedStopped() {
			return res, errSeedStopped
		}
		for _, sock := range ns.sockets {
			outbound := sock.state != tcpListen && !ns.listenPorts[sock.local.Port()]
			if sock.owner == 0 || (sock.state != tcpListen && !outbound) {
				continue // accepted connections are counted per listen address, from events
			}
			id, known := owners[sock.owner]
			if !known {
				id, _ = t.attribute(0, sock.owner)
				owners[sock.owner] = id
			}
			if id == "" {
				t.unattributed.Add(1)
				continue
			}
			if sock.state == tcpListen {
				listens = append(listens, plannedListen{id, sock.local, ns.inode, sock.owner})
				continue
			}
			src, dst := unmapAddrPort(sock.local), unmapAddrPort(sock.remote)
			if !t.countsDestination(ns.inode, dst.Addr()) {
				continue
			}
			key := destKey{dst, t.actual(src, dst)} // conntrack outside t.mu
			if !t.countsDestination(ns.inode, key.actual.Addr()) {
				continue
			}
			conns = append(conns, plannedConn{
				sock:  sock,
				id:    id,
				key:   key,
				index: seededIndexKey{id, src, dst},
			})
		}
	}

	now := t.now()
	type seededID struct {
		id   uint64
		sock *existingSocket
	}
	var added []seededID
	if t.seedStopped() {
		return res, errSeedStopped
	}
	t.mu.Lock()
	for _, l := range listens {
		if la := t.listen(t.state(l.id), unmapAddrPort(l.addr), now); la != nil {
			t.listening(la, l.netns, l.pid)
			res.Listens++
		}
	}
	for i := range conns {
		p := &conns[i]
		if _, dup := t.seededIndex[p.index]; dup {
			continue
		}
		d := t.destination(t.state(p.id), p.key, now)
		if d == nil {
			continue // dropped by the destination limit, counted
		}
		t.nextSeedID++
		id := seededSockBit | t.nextSeedID
		tuple := ebpf.SocketTuple{NetNS: p.sock.netns.inode, Family: p.sock.family, Local: p.sock.local, Remote: p.sock.remote}
		if kernel != nil {
			if err := kernel.AddSeeded(tuple, id); err != nil {
				// Its close would go unseen: better not counted than counted forever.
				t.droppedByLimit.Add(1)
				continue
			}
		}
		t.connections[id] = &connection{id: p.id, key: p.key, seeded: &seededConn{tuple: tuple, index: p.index}}
		t.seededIndex[p.index] = id
		d.ActiveConnections++
		res.Connections++
		added = append(added, seededID{id, p.sock})
	}
	t.mu.Unlock()

	// Withdraw what closed before the kernel side knew the tuple (it sent no close). One that
	// closed after is withdrawn too; its close event then finds nothing.
	current := map[*procNetNS]map[uint64]procSocket{}
	for _, a := range added {
		if t.seedStopped() {
			// The tracer is closing: what is left to withdraw no longer matters.
			return res, errSeedStopped
		}
		ns := a.sock.netns
		cur, read := current[ns]
		if !read {
			cur, err = scan.current(ns)
			if err != nil {
				cur = nil // nobody left to ask: keep what was seen
			}
			current[ns] = cur
		}
		if cur == nil {
			continue
		}
		if still, ok := cur[a.sock.inode]; ok && still.local == a.sock.local && still.remote == a.sock.remote {
			continue
		}
		t.mu.Lock()
		if t.withdrawSeeded(a.id, kernel) {
			res.Withdrawn++
			res.Connections--
		}
		t.mu.Unlock()
	}
	res.Duration = time.Since(start)
	return res, nil
}

// withdrawSeeded forgets seeded connection id, telling the kernel side to forget it too, and
// reports whether it was still counted. t.mu is held.
func (t *Tracer) withdrawSeeded(id uint64, kernel seededSockets) bool {
	conn := t.connections[id]
	if conn == nil || conn.seeded == nil {
		return false
	}
	if kernel != nil {
		// false (already gone: its close event is on the way) needs nothing more, and an
		// error leaves at worst an entry the kernel drops at the socket's close.
		_, _ = kernel.RemoveSeeded(conn.seeded.tuple)
	}
	t.forget(id, conn, t.now())
	return true
}

// replaceSeeded is called for every connect event while seeded connections are open: a
// connect of a connection that is also seeded (it was established between the attachment and
// the reading of /proc) replaces the seeded entry, which has no byte counters. t.mu is held.
func (t *Tracer) replaceSeeded(id containers.ID, src, dst netip.AddrPort) {
	if seeded, ok := t.seededIndex[seededIndexKey{id, src, dst}]; ok {
		t.withdrawSeeded(seeded, t.kernel)
	}
}

func unmapAddrPort(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
