package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"
)

// EventType says what happened in the kernel. Values mirror CX_EVENT_* in codexray.c.
type EventType uint32

const (
	// EventConnect means an outbound connect() reached ESTABLISHED. Duration is the connection time.
	EventConnect EventType = 1
	// EventConnectFailed means an outbound connect() went from SYN_SENT to CLOSE.
	EventConnectFailed EventType = 2
	// EventAccept means an inbound connection reached ESTABLISHED on a listening socket's child.
	EventAccept EventType = 3
	// EventListenOpen means a socket entered LISTEN.
	EventListenOpen EventType = 4
	// EventListenClose means a listening socket closed.
	EventListenClose EventType = 5
	// EventClose means a connection the agent saw open has closed; carries the final byte counts.
	EventClose EventType = 6
	// EventRetransmit means the kernel retransmitted a segment (SYN included) of a tracked socket.
	EventRetransmit EventType = 7
	// EventProcessFork means a new process (not thread) was created; TargetPID is the child.
	EventProcessFork EventType = 8
	// EventProcessExec means a process called execve.
	EventProcessExec EventType = 9
	// EventProcessExit means a process's thread-group leader exited.
	EventProcessExit EventType = 10
	// EventOOMKill means the OOM killer chose TargetPID; CgroupID is the victim's cgroup.
	EventOOMKill EventType = 11

	maxEventType = EventOOMKill
)

var eventTypeNames = [...]string{
	"unknown", "connect", "connect_failed", "accept", "listen_open", "listen_close", "close",
	"retransmit", "process_fork", "process_exec", "process_exit", "oom_kill",
}

func (t EventType) String() string {
	if t > maxEventType {
		return fmt.Sprintf("EventType(%d)", uint32(t))
	}
	return eventTypeNames[t]
}

// FlagInbound marks connections accepted by a local listener.
const FlagInbound uint16 = 1

// EventSize is the size in bytes of one ring-buffer record (struct event in codexray.c).
const EventSize = int(unsafe.Sizeof(codexrayEvent{}))

// Where Decode finds each field of struct event: offsets into the Go type bpf2go generates
// from codexray.c (-type event), so the layout is written once, in C.
var ev codexrayEvent

const (
	offTimestamp     = unsafe.Offsetof(ev.TimestampNs)
	offSock          = unsafe.Offsetof(ev.Sock)
	offCgroupID      = unsafe.Offsetof(ev.CgroupId)
	offDuration      = unsafe.Offsetof(ev.DurationNs)
	offBytesSent     = unsafe.Offsetof(ev.BytesSent)
	offBytesReceived = unsafe.Offsetof(ev.BytesReceived)
	offType          = unsafe.Offsetof(ev.Type)
	offPID           = unsafe.Offsetof(ev.Pid)
	offTID           = unsafe.Offsetof(ev.Tid)
	offTargetPID     = unsafe.Offsetof(ev.TargetPid)
	offSRTT          = unsafe.Offsetof(ev.SrttUs)
	offFamily        = unsafe.Offsetof(ev.Family)
	offSport         = unsafe.Offsetof(ev.Sport)
	offDport         = unsafe.Offsetof(ev.Dport)
	offFlags         = unsafe.Offsetof(ev.Flags)
	offSaddr         = unsafe.Offsetof(ev.Saddr)
	offDaddr         = unsafe.Offsetof(ev.Daddr)
	offNetNS         = unsafe.Offsetof(ev.Netns)
)

const (
	afInet  = 2
	afInet6 = 10
)

// ErrShortEvent is returned for a record smaller than EventSize.
var ErrShortEvent = errors.New("ebpf: short event record")

// Event is one decoded ring-buffer record. Decode overwrites every field, so one Event can be
// reused for every record without allocating.
type Event struct {
	Type EventType
	// Timestamp is CLOCK_MONOTONIC (bpf_ktime_get_ns), not wall-clock time.
	Timestamp time.Duration
	// Sock is the kernel address of the socket: an opaque connection identity.
	Sock uint64
	// CgroupID is the inode of the cgroup v2 directory the event belongs to: the connecting
	// process's cgroup, the socket's cgroup for inbound connections, the victim's for OOM kills.
	CgroupID uint64
	// Duration is the connection time (SYN_SENT to ESTABLISHED or CLOSE).
	Duration      time.Duration
	BytesSent     uint64
	BytesReceived uint64
	PID           uint32 // process id (tgid) of the context the event is attributed to
	TID           uint32
	TargetPID     uint32 // fork child, exec'ing/exiting process, OOM victim
	SRTT          time.Duration
	Flags         uint16
	// Source and Destination are as the socket sees them: for outbound connections Destination
	// is the address dialled (before NAT), for inbound ones Source is the listen address.
	Source      netip.AddrPort
	Destination netip.AddrPort
	// NetNS is the inode of the socket's network namespace (/proc/<pid>/ns/net) for socket
	// events, 0 for process and OOM events.
	NetNS uint32
}

// Inbound reports whether the connection was accepted rather than dialled.
func (e *Event) Inbound() bool { return e.Flags&FlagInbound != 0 }

// Decode fills e from one ring-buffer record in the kernel's (little-endian) layout.
func (e *Event) Decode(b []byte) error {
	if len(b) < EventSize {
		return ErrShortEvent
	}
	le := binary.LittleEndian
	typ := EventType(le.Uint32(b[offType:]))
	if typ == 0 || typ > maxEventType {
		return fmt.Errorf("ebpf: unknown event type %d", uint32(typ))
	}
	e.Type = typ
	e.Timestamp = time.Duration(le.Uint64(b[offTimestamp:]))
	e.Sock = le.Uint64(b[offSock:])
	e.CgroupID = le.Uint64(b[offCgroupID:])
	e.Duration = time.Duration(le.Uint64(b[offDuration:]))
	e.BytesSent = le.Uint64(b[offBytesSent:])
	e.BytesReceived = le.Uint64(b[offBytesReceived:])
	e.PID = le.Uint32(b[offPID:])
	e.TID = le.Uint32(b[offTID:])
	e.TargetPID = le.Uint32(b[offTargetPID:])
	e.SRTT = time.Duration(le.Uint32(b[offSRTT:])) * time.Microsecond
	family := le.Uint16(b[offFamily:])
	// Ports come from the tracepoints already in host byte order.
	sport := le.Uint16(b[offSport:])
	dport := le.Uint16(b[offDport:])
	e.Flags = le.Uint16(b[offFlags:])
	e.NetNS = le.Uint32(b[offNetNS:])
	switch family {
	case afInet:
		e.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offSaddr:offSaddr+4])), sport)
		e.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[offDaddr:offDaddr+4])), dport)
	case afInet6:
		e.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offSaddr:offSaddr+16])).Unmap(), sport)
		e.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[offDaddr:offDaddr+16])).Unmap(), dport)
	case 0:
		// process and OOM events carry no addresses
		e.Source, e.Destination = netip.AddrPort{}, netip.AddrPort{}
	default:
		return fmt.Errorf("ebpf: %s event with address family %d", typ, family)
	}
	return nil
}
