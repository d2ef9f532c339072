package tracer

import (
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// Handle applies one event. Called from one goroutine (the reader); safe alongside readers of
// the state. Attribution and conntrack lookups run before t.mu is taken.
func (t *Tracer) Handle(ev *ebpf.Event) {
	t.processed.Add(1)
	switch ev.Type {
	case ebpf.EventProcessFork, ebpf.EventProcessExec, ebpf.EventProcessExit:
		t.handleProcess(ev)
	case ebpf.EventClose:
		t.handleClose(ev)
	case ebpf.EventRetransmit:
		t.handleRetransmit(ev)
	case ebpf.EventConnect:
		t.handleConnect(ev)
	case ebpf.EventConnectFailed:
		t.handleConnectFailed(ev)
	case ebpf.EventAccept, ebpf.EventListenOpen, ebpf.EventListenClose:
		t.handleListen(ev)
	case ebpf.EventOOMKill:
		t.handleOOMKill(ev)
	}
}

// attributed is attribute for an event, counting the events no container claims.
func (t *Tracer) attributed(cgroupID uint64, pid uint32) (containers.ID, bool) {
	id, ok := t.attribute(cgroupID, pid)
	if !ok {
		t.unattributed.Add(1)
	}
	return id, ok
}

func (t *Tracer) handleProcess(ev *ebpf.Event) {
	if t.opts.OnProcess == nil {
		return
	}
	pe := ProcessEvent{Type: ev.Type, PID: ev.TargetPID, CgroupID: ev.CgroupID}
	if ev.Type == ebpf.EventProcessFork {
		pe.ParentPID = ev.PID
	}
	t.opts.OnProcess(pe)
}

func (t *Tracer) handleConnect(ev *ebpf.Event) {
	if !t.countsDestination(ev.NetNS, ev.Destination.Addr()) {
		return
	}
	id, ok := t.attributed(ev.CgroupID, ev.PID)
	if !ok {
		return
	}
	key := destKey{ev.Destination, t.actual(ev.Source, ev.Destination)}
	if !t.countsDestination(ev.NetNS, key.actual.Addr()) {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(id)
	if len(t.seededIndex) > 0 {
		t.replaceSeeded(id, ev.Source, ev.Destination)
	}
	if old := t.connections[ev.Sock]; old != nil {
		// A socket at this address was open and its close never arrived: the address was
		// freed and reused.
		t.forget(ev.Sock, old, now)
		t.closesLost.Add(1)
	} else if _, ok := t.lostCloses[ev.Sock]; ok {
		// Likewise for one already closed by reconcile: its close would have come first.
		delete(t.lostCloses, ev.Sock)
		t.closesLost.Add(1)
	}
	d := t.destination(s, key, now)
	if d == nil {
		return
	}
	d.SuccessfulConnects++
	d.ConnectionTime += ev.Duration
	d.ActiveConnections++
	t.connections[ev.Sock] = &connection{id: id, key: key}
}

func (t *Tracer) handleConnectFailed(ev *ebpf.Event) {
	// failed_connects has no actual_destination label: a connection that never opened has no
	// NAT result worth one. All failures of a destination go to one entry, its pair with
	// itself, without a conntrack lookup, so the per-destination count never drops when
	// another pair of the destination expires.
	t.countOnDestination(ev, false, func(d *destination) { d.FailedConnects++ })
}

// countOnDestination attributes ev and lets count update its destination entry (created when
// the limit allows): the pair with the actual destination behind NAT when nat, else the
// destination's pair with itself.
func (t *Tracer) countOnDestination(ev *ebpf.Event, nat bool, count func(*destination)) {
	if !t.countsDestination(ev.NetNS, ev.Destination.Addr()) {
		return
	}
	id, ok := t.attributed(ev.CgroupID, ev.PID)
	if !ok {
		return
	}
	key := destKey{ev.Destination, ev.Destination}
	if nat {
		key.actual = t.actual(ev.Source, ev.Destination)
		if !t.countsDestination(ev.NetNS, key.actual.Addr()) {
			return
		}
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if d := t.destination(t.state(id), key, now); d != nil {
		count(d)
	}
}

func (t *Tracer) handleRetransmit(ev *ebpf.Event) {
	if ev.Inbound() {
		return // inbound connections have no destination of this container
	}
	// Retransmits of established connections need no attribution: the connection has it.
	t.mu.Lock()
	if conn := t.connections[ev.Sock]; conn != nil {
		if d := t.destinationOf(conn); d != nil {
			d.Retransmits++
			d.lastActive = t.now()
		}
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()

	// A SYN retransmitted before the connection was established.
	t.countOnDestination(ev, true, func(d *destination) { d.Retransmits++ })
}

// onState attributes an event by cgroup id and pid and, when a container claims it, runs apply
// on the container's state under t.mu.
func (t *Tracer) onState(cgroupID uint64, pid uint32, apply func(s *containerState, now time.Time)) {
	id, ok := t.attributed(cgroupID, pid)
	if !ok {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	apply(t.state(id), now)
}

// handleListen applies accepts and listening sockets opening and closing.
func (t *Tracer) handleListen(ev *ebpf.Event) {
	t.onState(ev.CgroupID, ev.PID, func(s *containerState, now time.Time) { t.applyListen(ev, s, now) })
}

func (t *Tracer) applyListen(ev *ebpf.Event, s *containerState, now time.Time) {
	switch ev.Type {
	case ebpf.EventAccept:
		// On the address the connection was accepted on: for a wildcard listener, one of the
		// addresses it is reported at.
		if l := t.listen(s, ev.Source, now); l != nil {
			l.inbound++
		}
	case ebpf.EventListenOpen:
		if l := t.listen(s, ev.Source, now); l != nil {
			t.listening(l, ev.NetNS, ev.PID)
		}
	case ebpf.EventListenClose:
		if l := t.listen(s, ev.Source, now); l != nil {
			l.open, l.listener = false, true
		}
	}
}

func (t *Tracer) handleOOMKill(ev *ebpf.Event) {
	// mark_victim runs in the context of the task that hit the OOM condition, which may belong
	// to another container than the victim: only the victim's cgroup and pid count.
	t.onState(ev.CgroupID, ev.TargetPID, func(s *containerState, now time.Time) {
		s.oomKills++
		s.lastOOMKill = now
	})
}

// handleClose ends a connection with the kernel's final byte counts.
func (t *Tracer) handleClose(ev *ebpf.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conn := t.connections[ev.Sock]
	if conn == nil {
		// Closed by reconcile while its close waited in the ring buffer: the connection no
		// longer counts as active, but its last bytes do, and its close was not lost.
		if lc, ok := t.lostCloses[ev.Sock]; ok {
			delete(t.lostCloses, ev.Sock)
			if d := t.destinationOf(lc.conn); d != nil {
				t.account(d, lc.conn, ev.BytesSent, ev.BytesReceived)
				d.lastActive = t.now()
			}
		}
		return
	}
	if d := t.destinationOf(conn); d != nil {
		t.account(d, conn, ev.BytesSent, ev.BytesReceived)
	}
	t.forget(ev.Sock, conn, t.now())
}

// forget ends open connection conn (at sock): it no longer counts as active. t.mu is held.
func (t *Tracer) forget(sock uint64, conn *connection, now time.Time) {
	delete(t.connections, sock)
	t.rememberClosed(sock, conn, now)
	if conn.seeded != nil {
		delete(t.seededIndex, conn.seeded.index)
	}
	if d := t.destinationOf(conn); d != nil {
		d.ActiveConnections--
		d.lastActive = now
	}
}

// account adds what the kernel counted since the last account.
func (t *Tracer) account(d *destination, conn *connection, sent, received uint64) {
	if sent >= conn.bytesSent {
		d.BytesSent += sent - conn.bytesSent
		conn.bytesSent = sent
	}
	if received >= conn.bytesReceived {
		d.BytesReceived += received - conn.bytesReceived
		conn.bytesReceived = received
	}
}
