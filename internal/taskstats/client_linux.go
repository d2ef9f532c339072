//go:build linux

package taskstats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrGone is returned for a task that no longer exists (the kernel answered ESRCH).
var ErrGone = errors.New("taskstats: task is gone")

// ErrUnavailable wraps every reason the TASKSTATS family cannot be used: no kernel support,
// no permission (CAP_NET_ADMIN is needed for queries), not in the initial namespaces.
var ErrUnavailable = errors.New("taskstats: unavailable")

// Namespace tells in which network namespace a socket was opened and why.
type Namespace struct {
	// Host is true when the socket lives in the namespace of <proc_root>/1/ns/net, the host's
	// for an agent with hostPID. Queries are answered in any namespace, but the kernel
	// delivers exit notifications in the initial network namespace only.
	Host bool
	// Note explains a fallback, e.g. "/proc/1/ns/net: permission denied; using the agent's own
	// network namespace". Empty when nothing unusual happened.
	Note string
}

// Client queries per-task and per-thread-group statistics over one generic-netlink socket.
// A Client is not safe for concurrent use.
type Client struct {
	conn      *genetlink.Conn
	family    genetlink.Family
	namespace Namespace
	reply     Reply

	raw     syscall.RawConn
	seq     uint32
	wbuf    [queryMsgSize]byte
	rbuf    []byte
	n       int
	ioErr   error
	writeFn func(fd uintptr) bool // built once: closures passed per call would allocate
	readFn  func(fd uintptr) bool
}

// Dial opens a TASKSTATS socket in the host network namespace, reached through
// procRoot/1/ns/net. When that namespace is the agent's own, or cannot be opened (as for an
// agent without hostPID or where pid 1's namespaces are hidden), the socket is opened in the
// agent's own namespace and Namespace().Note says so.
func Dial(procRoot string) (*Client, error) {
	conn, family, ns, err := dialTaskstats(procRoot)
	if err != nil {
		return nil, err
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	c := &Client{conn: conn, family: family, namespace: ns, raw: raw, rbuf: make([]byte, messageBuffer)}
	c.writeFn = func(fd uintptr) bool {
		_, c.ioErr = unix.Write(int(fd), c.wbuf[:])
		return !errors.Is(c.ioErr, unix.EAGAIN)
	}
	c.readFn = func(fd uintptr) bool {
		c.n, c.ioErr = unix.Read(int(fd), c.rbuf)
		return !errors.Is(c.ioErr, unix.EAGAIN)
	}
	return c, nil
}

// messageBuffer is the fixed receive buffer of every socket: a TASKSTATS message is at most
// two records of ~600 bytes; a fixed buffer saves the size-peeking recvmsg of each reply.
const messageBuffer = 16 << 10

// dialHost opens a generic-netlink socket in the host network namespace when it can.
// dialTaskstats opens a generic-netlink socket (see dialHost for the namespace) and resolves
// the TASKSTATS family on it.
func dialTaskstats(procRoot string) (*genetlink.Conn, genetlink.Family, Namespace, error) {
	conn, ns, err := dialHost(procRoot)
	if err != nil {
		return nil, genetlink.Family{}, ns, err
	}
	family, err := conn.GetFamily(familyName)
	if err != nil {
		_ = conn.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, family, ns, fmt.Errorf("%w: generic netlink family %s not found (kernel without CONFIG_TASKSTATS, or not the host network namespace): %w", ErrUnavailable, familyName, err)
		}
		return nil, family, ns, fmt.Errorf("%w: resolving generic netlink family %s: %w", ErrUnavailable, familyName, err)
	}
	return conn, family, ns, nil
}

func dialHost(procRoot string) (*genetlink.Conn, Namespace, error) {
	own := &netlink.Config{MessageBufferSize: messageBuffer}
	hostNS := filepath.Join(procRoot, "1", "ns", "net")
	f, err := os.Open(hostNS)
	if err != nil {
		conn, derr := genetlink.Dial(own)
		if derr != nil {
			return nil, Namespace{}, fmt.Errorf("%w: opening generic netlink socket: %w", ErrUnavailable, derr)
		}
		return conn, Namespace{Note: fmt.Sprintf("%s unreadable (%v); TASKSTATS socket opened in the agent's own network namespace, so exit notifications arrive only if it is the host's", hostNS, err)}, nil
	}
	defer f.Close()
	if sameNamespace(f, "/proc/thread-self/ns/net") {
		conn, err := genetlink.Dial(own)
		if err != nil {
			return nil, Namespace{}, fmt.Errorf("%w: opening generic netlink socket: %w", ErrUnavailable, err)
		}
		return conn, Namespace{Host: true}, nil
	}
	// netlink.Config.NetNS makes the socket package lock an OS thread, setns into the
	// namespace, create the socket and restore the thread (or let it die if it cannot).
	conn, err := genetlink.Dial(&netlink.Config{NetNS: int(f.Fd()), MessageBufferSize: messageBuffer})
	if err != nil {
		conn, derr := genetlink.Dial(own)
		if derr != nil {
			return nil, Namespace{}, fmt.Errorf("%w: opening generic netlink socket: %w", ErrUnavailable, derr)
		}
		return conn, Namespace{Note: fmt.Sprintf("entering %s failed (%v); TASKSTATS socket opened in the agent's own network namespace", hostNS, err)}, nil
	}
	return conn, Namespace{Host: true}, nil
}

// sameNamespace reports whether the open namespace file f is the namespace at path.
func sameNamespace(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// Namespace returns where the socket was opened.
func (c *Client) Namespace() Namespace { return c.namespace }

// Close closes the socket.
func (c *Client) Close() error { return c.conn.Close() }

// TGID returns the statistics of a whole thread group (process): those of its threads that
// already exited plus those of its live threads. It returns ErrGone when the process no
// longer exists.
func (c *Client) TGID(tgid uint32) (Stats, error) {
	r, err := c.query(cmdAttrTGID, tgid)
	if err != nil {
		return Stats{}, err
	}
	if !r.HasGroup {
		return Stats{}, fmt.Errorf("%w: reply to TGID %d query without AGGR_TGID", ErrMalformed, tgid)
	}
	return r.Group, nil
}

// PID returns the statistics of one task (thread).
func (c *Client) PID(pid uint32) (Stats, error) {
	r, err := c.query(cmdAttrPID, pid)
	if err != nil {
		return Stats{}, err
	}
	if !r.HasTask {
		return Stats{}, fmt.Errorf("%w: reply to PID %d query without AGGR_PID", ErrMalformed, pid)
	}
	return r.Task, nil
}

// Raw returns a copy of the undecoded reply attributes of a TGID query (for fixtures).
func (c *Client) Raw(tgid uint32) ([]byte, error) {
	b, err := c.execute(cmdAttrTGID, tgid)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

func (c *Client) query(attr uint16, id uint32) (*Reply, error) {
	b, err := c.execute(attr, id)
	if err != nil {
		return nil, err
	}
	if err := ParseReply(b, &c.reply); err != nil {
		return nil, err
	}
	return &c.reply, nil
}

// Netlink framing (include/uapi/linux/netlink.h, genetlink.h).
const (
	nlmsgHdrLen  = 16 // len u32, type u16, flags u16, seq u32, pid u32
	genlHdrLen   = 4  // cmd u8, version u8, reserved u16
	nlmsgError   = 2  // NLMSG_ERROR
	nlmFRequest  = 1  // NLM_F_REQUEST
	queryMsgSize = nlmsgHdrLen + genlHdrLen + nlaHdrLen + 4
)

// execute sends one query and returns the reply's attributes, which alias the receive buffer
// until the next query. It talks to the socket directly (one write, one read, no allocation):
// at one query per process per collection, the generic netlink helpers' allocations and
// size-peeking reads were most of the cost.
func (c *Client) execute(attr uint16, id uint32) ([]byte, error) {
	c.seq++
	w := c.wbuf[:queryMsgSize]
	ne := binary.NativeEndian
	ne.PutUint32(w[0:], queryMsgSize)
	ne.PutUint16(w[4:], c.family.ID)
	ne.PutUint16(w[6:], nlmFRequest)
	ne.PutUint32(w[8:], c.seq)
	ne.PutUint32(w[12:], 0)
	w[16], w[17], w[18], w[19] = cmdGet, c.family.Version, 0, 0
	ne.PutUint16(w[20:], nlaHdrLen+4)
	ne.PutUint16(w[22:], attr)
	ne.PutUint32(w[24:], id)

	c.ioErr = nil
	if err := c.raw.Write(c.writeFn); err != nil {
		return nil, fmt.Errorf("taskstats: query %d: %w", id, err)
	}
	if c.ioErr != nil {
		return nil, fmt.Errorf("taskstats: query %d: sending: %w", id, c.ioErr)
	}
	for {
		c.ioErr = nil
		if err := c.raw.Read(c.readFn); err != nil {
			return nil, fmt.Errorf("taskstats: query %d: %w", id, err)
		}
		if c.ioErr != nil {
			return nil, fmt.Errorf("taskstats: query %d: receiving: %w", id, c.ioErr)
		}
		b := c.rbuf[:c.n]
		if len(b) < nlmsgHdrLen {
			return nil, fmt.Errorf("%w: %d-byte netlink message", ErrMalformed, len(b))
		}
		l := int(ne.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return nil, fmt.Errorf("%w: netlink length %d of %d bytes", ErrMalformed, l, len(b))
		}
		if ne.Uint32(b[8:]) != c.seq {
			continue // a reply to an earlier, abandoned query
		}
		typ := ne.Uint16(b[4:])
		payload := b[nlmsgHdrLen:l]
		if typ == nlmsgError {
			if len(payload) < 4 {
				return nil, fmt.Errorf("%w: short netlink error", ErrMalformed)
			}
			errno := unix.Errno(-int32(ne.Uint32(payload)))
			switch errno {
			case 0:
				continue // an acknowledgement; the reply follows
			case unix.ESRCH:
				return nil, ErrGone
			case unix.EPERM, unix.EACCES:
				return nil, fmt.Errorf("%w: TASKSTATS query denied (needs CAP_NET_ADMIN): %w", ErrUnavailable, errno)
			}
			return nil, fmt.Errorf("taskstats: query %d: %w", id, errno)
		}
		if typ != c.family.ID || len(payload) < genlHdrLen {
			return nil, fmt.Errorf("%w: unexpected netlink message type %d", ErrMalformed, typ)
		}
		return payload[genlHdrLen:], nil
	}
}
