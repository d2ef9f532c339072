package tracer

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"

	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/netns"
	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// existingSocket is a listening socket or an open connection found in /proc.
type existingSocket struct {
	procSocket
	family uint16 // ebpf.FamilyIPv4 (net/tcp) or ebpf.FamilyIPv6 (net/tcp6)
	netns  *procNetNS
	owner  uint32 // a process with a file descriptor on it; 0 when none was found
}

// procNetNS is one network namespace, seen through the processes in it. Containers with a
// network of their own (docker bridge, Kubernetes pods) have sockets the host's /proc/net/tcp
// does not show; /proc/<pid>/net/tcp shows the table of <pid>'s namespace, no setns needed.
type procNetNS struct {
	inode       uint32
	pids        []uint32 // processes in it: any of them shows its socket tables
	listenPorts map[uint16]bool
	sockets     []*existingSocket
}

// socketScan is one pass over a procfs: the TCP sockets of every network namespace some
// process is in, and a process holding each. Input that vanished or could not be read is
// counted and skipped.
type socketScan struct {
	root       string
	namespaces map[uint32]*procNetNS
	byInode    map[uint64]*existingSocket
	processes  int

	vanished   uint64 // processes that exited while being read
	unreadable uint64 // namespace links, socket tables or fd directories that could not be read
	malformed  uint64 // socket table lines that did not parse

	buf  []byte // file contents, reused
	link []byte // readlink target, reused
}

// scanSockets reads the listening sockets and open connections of every network namespace
// under root (a procfs mount) and finds, through /proc/<pid>/fd, which process holds each.
func scanSockets(root string) (*socketScan, error) {
	s := &socketScan{
		root:       root,
		namespaces: map[uint32]*procNetNS{},
		byInode:    map[uint64]*existingSocket{},
		buf:        make([]byte, 0, 64<<10),
		link:       make([]byte, 256),
	}
	pids, err := listPIDs(root)
	if err != nil {
		return nil, err
	}
	s.processes = len(pids)
	live := pids[:0]
	for _, pid := range pids {
		ok, gone := s.visitNamespace(pid)
		if gone {
			s.vanished++
			continue
		}
		if !ok {
			s.unreadable++
		}
		live = append(live, pid)
	}
	if len(s.byInode) == 0 {
		return s, nil
	}
	for _, pid := range live {
		s.findOwned(pid)
	}
	return s, nil
}

// listPIDs lists the processes under root, parents before children: the first holder found
// owns a shared socket.
func listPIDs(root string) ([]uint32, error) {
	pids, err := procfs.Pids(root, nil)
	if err != nil {
		return nil, err
	}
	slices.Sort(pids)
	return pids, nil
}

func (s *socketScan) pidPath(pid uint32, rest string) string {
	return procfs.PidPath(s.root, pid, rest)
}

// visitNamespace reads pid's network namespace and, the first time it is seen, its socket
// tables. ok is false when the namespace link is unreadable (the process's file descriptors
// are still matched against the other namespaces' sockets); gone when the process exited.
func (s *socketScan) visitNamespace(pid uint32) (ok, vanished bool) {
	ino, err := s.netnsOf(pid)
	if err != nil {
		return false, procfs.Gone(err)
	}
	ns := s.namespaces[ino]
	if ns == nil {
		ns = &procNetNS{inode: ino, listenPorts: map[uint16]bool{}}
		if err := s.readTables(ns, pid); err != nil {
			// the next process in this namespace reads the tables instead
			return false, procfs.Gone(err)
		}
		s.namespaces[ino] = ns
	}
	ns.pids = append(ns.pids, pid)
	return true, false
}

// netnsOf returns the inode number of pid's network namespace from the "net:[4026531840]"
// link: the number the kernel side reads from sock->sk_net.
func (s *socketScan) netnsOf(pid uint32) (uint32, error) {
	return netns.Of(s.root, pid, &s.link)
}

// readTables reads net/tcp and net/tcp6 of pid into ns, keeping listening sockets and open
// connections.
func (s *socketScan) readTables(ns *procNetNS, pid uint32) error {
	return s.eachSocket(pid, func(family uint16, p *procSocket) {
		if p.state == tcpListen {
			ns.listenPorts[p.local.Port()] = true
		} else if !openConnectionState(p.state) {
			return
		}
		if p.inode == 0 {
			return // no file: an orphan, or accepted but not yet accept()ed
		}
		e := &existingSocket{procSocket: *p, family: family, netns: ns}
		ns.sockets = append(ns.sockets, e)
		s.byInode[p.inode] = e
	})
}

// eachSocket calls fn for every line of pid's net/tcp and net/tcp6. A missing tcp6 (IPv6
// disabled) is no error.
func (s *socketScan) eachSocket(pid uint32, fn func(family uint16, p *procSocket)) error {
	for _, family := range [...]uint16{ebpf.FamilyIPv4, ebpf.FamilyIPv6} {
		name, v6 := "net/tcp", family == ebpf.FamilyIPv6
		if v6 {
			name = "net/tcp6"
		}
		malformed, err := readProcNet(s.pidPath(pid, name), v6, &s.buf, func(p *procSocket) { fn(family, p) })
		s.malformed += uint64(malformed)
		if err != nil {
			if v6 && errors.Is(err, fs.ErrNotExist) {
				if _, serr := os.Stat(s.pidPath(pid, "net")); serr == nil {
					continue
				}
			}
			return err
		}
	}
	return nil
}

// findOwned marks the sockets pid holds a file descriptor on.
func (s *socketScan) findOwned(pid uint32) {
	err := procfs.EachFD(s.root, pid, &s.link, func(_ int, target []byte) {
		inner, ok := bytes.CutPrefix(target, []byte("socket:["))
		if !ok || len(inner) < 2 || inner[len(inner)-1] != ']' {
			return
		}
		ino, ok := parseDecimal(inner[:len(inner)-1])
		if !ok {
			return
		}
		if e := s.byInode[ino]; e != nil && e.owner == 0 {
			e.owner = pid
		}
	})
	if err != nil {
		s.countFailure(err)
	}
}

func (s *socketScan) countFailure(err error) {
	if procfs.Gone(err) {
		s.vanished++
	} else {
		s.unreadable++
	}
}

// current re-reads the open connections of ns, by inode, through any process still in it.
func (s *socketScan) current(ns *procNetNS) (map[uint64]procSocket, error) {
	err := errors.New("no process left in network namespace " + strconv.FormatUint(uint64(ns.inode), 10))
	for _, pid := range ns.pids {
		out := map[uint64]procSocket{}
		malformed := s.malformed // counted once, by the first reading
		err = s.eachSocket(pid, func(_ uint16, p *procSocket) {
			if openConnectionState(p.state) && p.inode != 0 {
				out[p.inode] = *p
			}
		})
		s.malformed = malformed
		if err == nil {
			return out, nil
		}
	}
	return nil, err
}
