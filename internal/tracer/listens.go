package tracer

import (
	"errors"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/netns"
	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// Listen addresses are reported so that a client's destination equals the listen_addr of the
// server it reached, as coroot-node-agent reports them:
//
//   - A wildcard listener (0.0.0.0:p, [::]:p) is reported once per local address of its
//     network namespace (links not operationally down, no link-local or multicast addresses);
//     0.0.0.0 takes the IPv4 addresses only, [::] all of them. The addresses are read at each
//     Refresh, so they follow a namespace that gains or loses an address, never per event.
//     Until a namespace could be read once, its wildcard listeners are reported as they are.
//   - Loopback addresses are reported, and loopback destinations counted, only in the host's
//     network namespace: elsewhere they name nothing another container could reach.
//   - A docker-proxy listener (a published port of a container on a docker network) is also
//     reported on the container it forwards to, with proxy="dockerd": clients dial the host
//     address and reach that container.
//
// Inbound connections count on the address they were accepted on, which for a wildcard
// listener is one of its reported addresses.

// NetNSAddresses reads the local addresses of a network namespace (by inode) through a
// process in it. *netns.Reader implements it.
type NetNSAddresses interface {
	Addresses(pid, ns uint32) ([]netip.Addr, error)
}

// maxNamespaceAddrs caps the addresses a wildcard listener is reported at, per namespace: a
// node with hundreds of addresses would otherwise multiply every wildcard listener's series.
// The addresses beyond it (the highest) are counted in Stats.NamespaceAddrsDropped.
const maxNamespaceAddrs = 64

// namespace is what the tracer knows of a network namespace some open wildcard listener is in.
type namespace struct {
	addrs []netip.Addr // at the last good reading, sorted, at most maxNamespaceAddrs
	read  bool         // addrs were read at least once
	total int          // addresses at the last good reading, before the cap
}

// proxiedListen is a docker-proxy listener reported on the container it forwards to.
type proxiedListen struct {
	addr  netip.AddrPort
	netns uint32
}

// isHostNetNS reports whether ns is the host's network namespace. An unknown namespace (0,
// or no host namespace known) counts as the host's: nothing is left out on a guess.
func (t *Tracer) isHostNetNS(ns uint32) bool {
	return ns == 0 || t.hostNetNS == 0 || ns == t.hostNetNS
}

// countsDestination reports whether connections to dst from network namespace ns are counted:
// loopback destinations only from the host's namespace.
func (t *Tracer) countsDestination(ns uint32, dst netip.Addr) bool {
	return !dst.IsLoopback() || t.isHostNetNS(ns)
}

// reportedAddrs calls fn for each address listen address addr (of a listener in namespace ns)
// is reported at: see the top of this file. t.mu is held.
func (t *Tracer) reportedAddrs(addr netip.AddrPort, ns uint32, fn func(netip.AddrPort)) {
	ip := addr.Addr()
	host := t.isHostNetNS(ns)
	if !ip.IsUnspecified() {
		if host || !ip.IsLoopback() {
			fn(addr)
		}
		return
	}
	n := t.namespaces[ns]
	if n == nil || !n.read {
		fn(addr)
		return
	}
	for _, a := range n.addrs {
		if ip.Is4() && !a.Is4() || a.IsLoopback() && !host {
			continue
		}
		fn(netip.AddrPortFrom(a, addr.Port()))
	}
}

// listenRefresh is what refreshListens reads outside t.mu: namespaces of open wildcard
// listeners (with processes to read them through) and processes to classify as docker-proxy.
type listenRefresh struct {
	namespaces map[uint32][]uint32     // inode → pids of listeners in it (a few)
	classify   map[uint32]dockerProxy  // pid → what it forwards as docker-proxy (zero: not one)
	results    map[uint32][]netip.Addr // inode → addresses read
	buf        []byte
}

// maxPidsPerNamespace bounds the processes tried to read one namespace: listeners that
// exited make the next one be tried.
const maxPidsPerNamespace = 4

// refreshListens reads the addresses of the network namespaces of open wildcard listeners,
// finds docker-proxy listeners and the containers they forward to. Called by Refresh (under
// refreshMu, not t.mu: it reads /proc and rtnetlink).
func (t *Tracer) refreshListens() {
	r := &t.listenWork
	clear(r.namespaces)
	clear(r.classify)
	clear(r.results)
	t.mu.Lock()
	for _, s := range t.containers {
		for addr, l := range s.listens {
			if !l.open || !l.listener {
				continue
			}
			if addr.Addr().IsUnspecified() && l.netns != 0 && l.pid != 0 {
				pids := r.namespaces[l.netns]
				if len(pids) < maxPidsPerNamespace && !slices.Contains(pids, l.pid) {
					r.namespaces[l.netns] = append(pids, l.pid)
				}
			}
			if !l.classified && l.pid != 0 {
				r.classify[l.pid] = dockerProxy{}
			}
		}
	}
	t.mu.Unlock()

	reader := t.opts.Addresses
	if reader != nil {
		for ns, pids := range r.namespaces {
			if addrs, ok := t.readNamespace(reader, ns, pids); ok {
				r.results[ns] = addrs
			}
		}
	}
	root := procfs.Root(t.opts.Config.ProcRoot)
	for pid := range r.classify {
		cmdline, err := procfs.ReadFile(procfs.PidPath(root, pid, "cmdline"), &r.buf)
		if err != nil {
			continue // exited: not a proxy worth reporting
		}
		if p, ok := parseDockerProxy(cmdline); ok {
			r.classify[pid] = p
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	for ns, addrs := range r.results {
		n := t.namespaces[ns]
		if n == nil {
			n = &namespace{}
			t.namespaces[ns] = n
		}
		if len(addrs) > maxNamespaceAddrs {
			if !n.read || n.total != len(addrs) {
				t.namespaceAddrsDropped.Add(uint64(len(addrs) - maxNamespaceAddrs))
			}
			n.total, addrs = len(addrs), addrs[:maxNamespaceAddrs]
		} else {
			n.total = len(addrs)
		}
		n.addrs, n.read = addrs, true
	}
	for ns := range t.namespaces {
		if _, used := r.namespaces[ns]; !used {
			delete(t.namespaces, ns) // no open wildcard listener in it any more
		}
	}
	t.resolveProxies(r.classify)
}

// readNamespace reads the addresses of namespace ns through the first of pids that is still
// in it. A failure other than a gone or moved process is counted and logged once.
func (t *Tracer) readNamespace(reader NetNSAddresses, ns uint32, pids []uint32) ([]netip.Addr, bool) {
	var err error
	for _, pid := range pids {
		var addrs []netip.Addr
		addrs, err = reader.Addresses(pid, ns)
		if err == nil {
			return addrs, true
		}
		if !procfs.Gone(err) && !errors.Is(err, netns.ErrMoved) {
			break // the same for any process of the namespace
		}
	}
	t.netnsUnreadable.Add(1)
	if !procfs.Gone(err) && !errors.Is(err, netns.ErrMoved) { // e.g. no CAP_NET_ADMIN
		t.netnsWarnOnce.Do(func() {
			t.opts.Logger.Warn("cannot read the addresses of a network namespace: its wildcard listen addresses keep the last addresses read, or stay wildcards",
				zap.Uint32("netns", ns), zap.Error(err))
		})
	}
	return nil, false
}

// resolveProxies records what the processes of classify are (docker-proxy or not) on their
// listeners, and lists each docker-proxy listener under the container it forwards to: the one
// reporting a listen address equal to the proxy's container address (its port folded to 0
// when ephemeral). The proxied address keeps the host port unfolded: dockerd publishes random
// ports from the ephemeral range, and coroot-node-agent reports them as they are. t.mu is held.
func (t *Tracer) resolveProxies(classify map[uint32]dockerProxy) {
	proxies := false
	for _, s := range t.containers {
		for _, l := range s.listens {
			if !l.open || !l.listener {
				continue
			}
			if !l.classified && l.pid != 0 {
				if p, read := classify[l.pid]; read {
					l.classified, l.proxy = true, p
				}
			}
			proxies = proxies || l.proxy.to.IsValid()
		}
	}
	clear(t.proxied)
	if !proxies {
		return
	}
	index := t.listenIndex()
	for id, s := range t.containers {
		for addr, l := range s.listens {
			if !l.open || !l.listener || !l.proxy.to.IsValid() {
				continue
			}
			target, ok := index[l.proxy.to]
			if !ok {
				target, ok = index[t.listenKey(l.proxy.to)]
			}
			if ok && target != id {
				if l.proxy.hostPort != 0 {
					addr = netip.AddrPortFrom(addr.Addr(), l.proxy.hostPort)
				}
				t.proxied[target] = append(t.proxied[target], proxiedListen{addr: addr, netns: l.netns})
			}
		}
	}
}

// listenIndex maps every reported address of every open listener that is not a proxy to its
// container. t.mu is held.
func (t *Tracer) listenIndex() map[netip.AddrPort]containers.ID {
	index := map[netip.AddrPort]containers.ID{}
	for id, s := range t.containers {
		for addr, l := range s.listens {
			if !l.open || !l.listener || l.proxy.to.IsValid() {
				continue
			}
			t.reportedAddrs(addr, l.netns, func(a netip.AddrPort) { index[a] = id })
		}
	}
	return index
}

// listenRow identifies one reported listen address of a container.
type listenRow struct {
	addr  netip.AddrPort
	proxy bool
}

// appendListens fills s.Listens with container id's reported listen addresses: its open
// listeners at their reported addresses, the addresses it accepted connections on, and the
// docker-proxy listeners that forward to it. One row per address (and proxy). t.mu is held.
func (t *Tracer) appendListens(id containers.ID, cs *containerState, s *ContainerStats) {
	rows := t.listenRows
	clear(rows)
	row := func(a netip.AddrPort, proxy bool) *ListenStats {
		k := listenRow{a, proxy}
		if i, ok := rows[k]; ok {
			return &s.Listens[i]
		}
		rows[k] = len(s.Listens)
		ls := ListenStats{Address: a.String()}
		if proxy {
			ls.Proxy = ProxyDockerd
		}
		s.Listens = append(s.Listens, ls)
		return &s.Listens[len(s.Listens)-1]
	}
	for addr, l := range cs.listens {
		if l.open && l.listener {
			t.reportedAddrs(addr, l.netns, func(a netip.AddrPort) {
				r := row(a, false)
				r.Open = true
				if r.Start.IsZero() {
					r.Start = l.created
				}
			})
		}
		if l.inbound > 0 {
			r := row(addr, false)
			r.InboundConnections, r.Start = l.inbound, l.created
		}
	}
	for _, p := range t.proxied[id] {
		t.reportedAddrs(p.addr, p.netns, func(a netip.AddrPort) {
			r := row(a, true)
			r.Open, r.Start = true, cs.created
		})
	}
}
