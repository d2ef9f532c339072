package ebpf

import (
	"errors"
	"fmt"
	"net/netip"

	cebpf "github.com/cilium/ebpf"
)

// FlagSeeded marks close and retransmit events of a connection that was open before the
// agent started (see Probe.AddSeeded): the event's Sock is the id user space gave it.
const FlagSeeded uint16 = 2

// Address families of SocketTuple.Family.
const (
	FamilyIPv4 uint16 = afInet
	FamilyIPv6 uint16 = afInet6
)

// SocketTuple identifies an open TCP connection the way the kernel side sees it, so that one
// found in /proc/<pid>/net/tcp{,6} can be recognised when it closes. Family is the socket's
// own: an IPv6 socket talking to an IPv4 peer keeps its v4-mapped addresses.
type SocketTuple struct {
	NetNS  uint32 // inode number of the socket's network namespace (/proc/<pid>/ns/net)
	Family uint16 // FamilyIPv4 or FamilyIPv6
	Local  netip.AddrPort
	Remote netip.AddrPort
}

// seededKey is struct seeded_key of codexray.c, as bpf2go generates it.
type seededKey codexraySeededKey

func (k *seededKey) set(s SocketTuple) error {
	*k = seededKey{Netns: s.NetNS, Family: s.Family, Sport: s.Local.Port(), Dport: s.Remote.Port()}
	switch s.Family {
	case FamilyIPv4:
		if !s.Local.Addr().Is4() || !s.Remote.Addr().Is4() {
			return fmt.Errorf("ipv4 socket tuple with addresses %s, %s", s.Local, s.Remote)
		}
		a, b := s.Local.Addr().As4(), s.Remote.Addr().As4()
		copy(k.Saddr[:], a[:])
		copy(k.Daddr[:], b[:])
	case FamilyIPv6:
		if !s.Local.Addr().Is6() || !s.Remote.Addr().Is6() {
			return fmt.Errorf("ipv6 socket tuple with addresses %s, %s", s.Local, s.Remote)
		}
		k.Saddr, k.Daddr = s.Local.Addr().As16(), s.Remote.Addr().As16()
	default:
		return fmt.Errorf("socket tuple with address family %d", s.Family)
	}
	return nil
}

// AddSeeded tells the kernel side about a connection that was open before the agent started.
// When it closes, an EventClose with Sock == id and FlagSeeded is emitted (byte counts 0: what
// it transferred is unknown), and each retransmit of it an EventRetransmit with that Sock. The
// kernel forgets the tuple at the close. ids must not look like kernel addresses: the tracer
// sets the top bit and keeps the rest small.
func (p *Probe) AddSeeded(s SocketTuple, id uint64) error {
	release, err := p.use()
	if err != nil {
		return err
	}
	defer release()
	var k seededKey
	if err := k.set(s); err != nil {
		return err
	}
	if err := p.objs.Seeded.Update(&k, id, cebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("adding seeded connection %s → %s: %w", s.Local, s.Remote, err)
	}
	return nil
}

// RemoveSeeded forgets a seeded connection. It returns false when the kernel side no longer
// had it: the connection closed and its EventClose is on its way.
func (p *Probe) RemoveSeeded(s SocketTuple) (bool, error) {
	release, err := p.use()
	if err != nil {
		return false, err
	}
	defer release()
	var k seededKey
	if err := k.set(s); err != nil {
		return false, err
	}
	err = p.objs.Seeded.Delete(&k)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, cebpf.ErrKeyNotExist):
		return false, nil
	}
	return false, fmt.Errorf("removing seeded connection %s → %s: %w", s.Local, s.Remote, err)
}

// SeededConnections calls fn with the id of every seeded connection the kernel side still
// holds. The kernel forgets a tuple at the connection's close even when the ring buffer had no
// room for its EventClose, so an id missing here is a connection that closed.
func (p *Probe) SeededConnections(fn func(id uint64)) error {
	release, err := p.use()
	if err != nil {
		return err
	}
	defer release()
	var (
		k  seededKey
		id uint64
	)
	it := p.objs.Seeded.Iterate()
	for it.Next(&k, &id) {
		fn(id)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterating seeded connections map: %w", err)
	}
	return nil
}
