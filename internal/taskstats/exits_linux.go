//go:build linux

package taskstats

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// exitReadBuffer is the receive buffer asked for the exit socket: exits arrive in bursts
// (a build, a cron job) and every overrun loses final stats.
const exitReadBuffer = 8 << 20

// ExitListener receives the final statistics of every task that exits on the node, sent by
// the kernel to sockets registered for a CPU mask. It must live in the host's network, user
// and pid namespaces: the kernel delivers these notifications in the initial network
// namespace and refuses registrations from elsewhere.
type ExitListener struct {
	conn      *genetlink.Conn
	family    genetlink.Family
	cpuMask   string
	namespace Namespace
	overruns  atomic.Uint64
	malformed atomic.Uint64
	closed    atomic.Bool
}

// ListenExits opens a dedicated socket (see Dial for the namespace) and registers it for the
// exits on every possible CPU.
func ListenExits(procRoot string) (*ExitListener, error) {
	conn, family, ns, err := dialTaskstats(procRoot)
	if err != nil {
		return nil, err
	}
	// Bigger than rmem_max needs SO_RCVBUFFORCE (CAP_NET_ADMIN); fall back to what is allowed.
	if err := setReadBufferForce(conn, exitReadBuffer); err != nil {
		_ = conn.SetReadBuffer(exitReadBuffer)
	}
	l := &ExitListener{conn: conn, family: family, cpuMask: possibleCPUs(), namespace: ns}
	if err := l.register(cmdAttrRegisterCPUMask); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return l, nil
}

func setReadBufferForce(conn *genetlink.Conn, n int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// possibleCPUs returns the kernel's list of possible CPUs ("0-63"): the mask has to be a
// subset of it, and CPUs hot-plugged later are then covered too.
func possibleCPUs() string {
	if b, err := os.ReadFile("/sys/devices/system/cpu/possible"); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
	}
	return fmt.Sprintf("0-%d", runtime.NumCPU()-1)
}

func (l *ExitListener) register(attr uint16) error {
	mask := append([]byte(l.cpuMask), 0)
	_, err := l.conn.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmdGet, Version: l.family.Version},
		Data:   appendAttr(nil, attr, mask),
	}, l.family.ID, netlink.Request|netlink.Acknowledge)
	if err != nil {
		what := "registering"
		if attr == cmdAttrDeregisterCPUMsk {
			what = "deregistering"
		}
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: %s exit listener for CPUs %s refused (not in the initial user/pid namespace?): %w", ErrUnavailable, what, l.cpuMask, err)
		}
		return fmt.Errorf("%w: %s exit listener for CPUs %s: %w", ErrUnavailable, what, l.cpuMask, err)
	}
	return nil
}

// Namespace returns where the socket was opened.
func (l *ExitListener) Namespace() Namespace { return l.namespace }

// CPUMask returns the CPU list the listener registered for.
func (l *ExitListener) CPUMask() string { return l.cpuMask }

// Overruns counts the times the socket buffer overflowed (ENOBUFS): exit records were lost.
func (l *ExitListener) Overruns() uint64 { return l.overruns.Load() }

// Malformed counts notifications that could not be decoded and were skipped.
func (l *ExitListener) Malformed() uint64 { return l.malformed.Load() }

// Run receives exit notifications and calls fn for each until Close is called, then returns
// nil; it returns an error only for a failure of the socket itself. Overruns and undecodable
// messages are counted and skipped. fn runs on Run's goroutine; r is reused after fn returns.
func (l *ExitListener) Run(fn func(r *Reply)) error {
	var r Reply
	for {
		msgs, _, err := l.conn.Receive()
		if err != nil {
			if l.closed.Load() {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				l.overruns.Add(1)
				continue
			}
			return fmt.Errorf("taskstats: receiving exit notifications: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Command != cmdNew {
				continue
			}
			if err := ParseReply(m.Data, &r); err != nil {
				l.malformed.Add(1)
				continue
			}
			fn(&r)
		}
	}
}

// Close deregisters the listener and closes its socket, which makes Run return.
func (l *ExitListener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	// The registration is keyed by this socket's port id: the kernel drops it the first time
	// a delivery to the closed socket fails, so there is nothing to deregister separately.
	return l.conn.Close()
}
