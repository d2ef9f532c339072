package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// ErrMoved is returned when the process given for a namespace is no longer in it (it exited
// and its pid was reused, or it changed namespaces): its addresses would be another
// namespace's.
var ErrMoved = errors.New("the process is no longer in that network namespace")

// requestTimeout bounds every rtnetlink exchange: a reading must never hang its caller.
const requestTimeout = time.Second

// Reader reads the local addresses of network namespaces. Safe for concurrent use: requests
// are serialised on one rtnetlink socket.
type Reader struct {
	mu       sync.Mutex
	conn     *netlink.Conn
	own      uint32
	procRoot string
	link     []byte
}

// Open opens an rtnetlink socket in the agent's network namespace. procRoot is where the
// processes given to Addresses are looked up to check their namespace ("" means /proc).
func Open(procRoot string) (*Reader, error) {
	own, err := Own()
	if err != nil {
		return nil, fmt.Errorf("netns: reading the agent's own namespace: %w", err)
	}
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("netns: opening rtnetlink socket: %w", err)
	}
	// Dumps honour a target namespace only under strict checking.
	if err := conn.SetOption(netlink.GetStrictCheck, true); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("netns: enabling strict rtnetlink checking (Linux 4.20): %w", err)
	}
	return &Reader{conn: conn, own: own, procRoot: procfs.Root(procRoot)}, nil
}

// Close releases the socket.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	err := r.conn.Close()
	r.conn = nil
	return err
}

// Addresses returns the local addresses of network namespace ns (an inode, as Of returns it),
// found through pid, a process in it: the addresses of its links that are not operationally
// down, without link-local and multicast ones, loopback included, sorted, each once. Errors:
// ErrMoved when pid is not in ns (checked when its namespace link is readable), a permission
// error without CAP_NET_ADMIN, ESRCH when pid exited.
func (r *Reader) Addresses(pid, ns uint32) ([]netip.Addr, error) {
	if ns == 0 || pid == 0 {
		return nil, errors.New("netns: no namespace or process given")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil, errors.New("netns: reader closed")
	}
	// A namespace link we may not read (pid 1 in some sandboxes) proves nothing either way.
	if cur, err := Of(r.procRoot, pid, &r.link); err == nil && cur != ns {
		return nil, ErrMoved
	} else if err != nil && procfs.Gone(err) {
		return nil, err
	}
	target := int32(-1) // the agent's own namespace: no target
	if ns != r.own {
		id, err := r.nsid(pid)
		if err != nil {
			return nil, err
		}
		target = id
	}
	down, err := r.downLinks(target)
	if err != nil {
		return nil, err
	}
	return r.addresses(target, down)
}

// nsid returns the id pid's namespace has in the agent's namespace, giving it one if needed.
func (r *Reader) nsid(pid uint32) (int32, error) {
	id, err := r.getNSID(pid)
	if err != nil || id >= 0 {
		return id, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.NETNSA_PID, pid)
	ae.Int32(unix.NETNSA_NSID, -1) // any free id
	b, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	_, err = r.execute(unix.RTM_NEWNSID, netlink.Acknowledge, append(make([]byte, rtgenmsgLen), b...))
	if err != nil && !errors.Is(err, unix.EEXIST) { // EEXIST: given one meanwhile
		return 0, fmt.Errorf("netns: assigning a netns id to the namespace of pid %d: %w", pid, err)
	}
	id, err = r.getNSID(pid)
	if err == nil && id < 0 {
		err = fmt.Errorf("netns: the namespace of pid %d has no netns id after assigning one", pid)
	}
	return id, err
}

// From linux/rtnetlink.h and linux/if.h; x/sys/unix lacks them.
const (
	rtgenmsgLen          = 4 // struct rtgenmsg, aligned
	rtextFilterSkipStats = 1 << 3
	ifOperDown           = 2
)

func (r *Reader) getNSID(pid uint32) (int32, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.NETNSA_PID, pid)
	b, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	msgs, err := r.execute(unix.RTM_GETNSID, 0, append(make([]byte, rtgenmsgLen), b...))
	if err != nil {
		return 0, fmt.Errorf("netns: netns id of the namespace of pid %d: %w", pid, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNSID {
			continue
		}
		if id, ok := parseNSID(m.Data); ok {
			return id, nil
		}
	}
	return 0, errors.New("netns: RTM_GETNSID reply without an id")
}

// downLinks lists the links of the target namespace that are operationally down.
func (r *Reader) downLinks(target int32) (map[int32]bool, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
	if target >= 0 {
		ae.Int32(unix.IFLA_TARGET_NETNSID, target)
	}
	b, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := r.execute(unix.RTM_GETLINK, netlink.Dump, append(make([]byte, unix.SizeofIfInfomsg), b...))
	if err != nil {
		return nil, fmt.Errorf("netns: listing links: %w", err)
	}
	down := map[int32]bool{}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		index, isDown, err := parseLink(m.Data)
		if err != nil {
			return nil, err
		}
		if isDown {
			down[index] = true
		}
	}
	return down, nil
}

func (r *Reader) addresses(target int32, down map[int32]bool) ([]netip.Addr, error) {
	var b []byte
	if target >= 0 {
		ae := netlink.NewAttributeEncoder()
		ae.Int32(unix.IFA_TARGET_NETNSID, target)
		var err error
		if b, err = ae.Encode(); err != nil {
			return nil, err
		}
	}
	msgs, err := r.execute(unix.RTM_GETADDR, netlink.Dump, append(make([]byte, unix.SizeofIfAddrmsg), b...))
	if err != nil {
		return nil, fmt.Errorf("netns: listing addresses: %w", err)
	}
	var out []netip.Addr
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWADDR {
			continue
		}
		index, addr, err := parseAddr(m.Data)
		if err != nil {
			return nil, err
		}
		if down[index] || !Usable(addr) {
			continue
		}
		out = append(out, addr)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// Usable reports whether a local address can identify a listener from outside its link:
// link-local and multicast addresses cannot (they are the same on every link).
func Usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLinkLocalUnicast() && !a.IsMulticast() &&
		!a.IsLinkLocalMulticast()
}

func (r *Reader) execute(typ uint16, flags netlink.HeaderFlags, data []byte) ([]netlink.Message, error) {
	if err := r.conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return nil, err
	}
	return r.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request | flags},
		Data:   data,
	})
}

// parseNSID reads NETNSA_NSID from an RTM_NEWNSID message body.
func parseNSID(data []byte) (int32, bool) {
	if len(data) < rtgenmsgLen {
		return 0, false
	}
	ad, err := netlink.NewAttributeDecoder(data[rtgenmsgLen:])
	if err != nil {
		return 0, false
	}
	for ad.Next() {
		if ad.Type() == unix.NETNSA_NSID && len(ad.Bytes()) == 4 {
			return int32(binary.NativeEndian.Uint32(ad.Bytes())), true
		}
	}
	return 0, false
}

var errMalformed = errors.New("netns: malformed rtnetlink message")

// parseLink reads an RTM_NEWLINK body: the link's index and whether it is operationally down
// (IF_OPER_DOWN; "unknown", as loopback reports, is not down).
func parseLink(data []byte) (index int32, down bool, err error) {
	if len(data) < unix.SizeofIfInfomsg {
		return 0, false, errMalformed
	}
	index = int32(binary.NativeEndian.Uint32(data[4:8]))
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", errMalformed, err)
	}
	for ad.Next() {
		if ad.Type() == unix.IFLA_OPERSTATE && len(ad.Bytes()) == 1 {
			down = ad.Bytes()[0] == ifOperDown
		}
	}
	if err := ad.Err(); err != nil {
		return 0, false, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return index, down, nil
}

// parseAddr reads an RTM_NEWADDR body: the link's index and the local address (IFA_LOCAL where
// present: on point-to-point links IFA_ADDRESS is the peer's).
func parseAddr(data []byte) (index int32, addr netip.Addr, err error) {
	if len(data) < unix.SizeofIfAddrmsg {
		return 0, addr, errMalformed
	}
	index = int32(binary.NativeEndian.Uint32(data[4:8]))
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfAddrmsg:])
	if err != nil {
		return 0, addr, fmt.Errorf("%w: %w", errMalformed, err)
	}
	var address, local netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(ad.Bytes())
		}
	}
	if err := ad.Err(); err != nil {
		return 0, addr, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if local.IsValid() {
		return index, local.Unmap(), nil
	}
	return index, address.Unmap(), nil
}
