// Package tracer turns kernel events from internal/ebpf into per-container TCP and OOM state:
// successful and failed connects, connection time, active connections, retransmits and bytes
// per (destination, actual_destination), listen addresses with inbound connection counts,
// passive RTT per destination IP, and OOM kills. It attributes every event to a container
// through the Resolver interface (implemented by *containers.Registry), keeping container IDs
// only, and enforces the cardinality limits of Config, counting every drop. It must not read cgroups or talk to
// container runtimes itself, and it never emits metrics: the receiver reads ContainerStats.
//
// Once the BPF programs are attached, the reader goroutine first records the TCP sockets that
// were already open (seed.go), then reads the first event; Start does not wait for it (Seeded
// tells when it is done). It reads: listening sockets and dialled
// connections of every network namespace, read from <ebpf.proc_root>/<pid>/net/tcp{,6} and
// attributed through /proc/<pid>/fd to the holder's container (Resolver.ContainerIDByPID).
// Seeded connections count as active connections (never as connects) and their close comes
// from the kernel side, which knows them by namespace and 4-tuple. Input that vanished or did
// not parse is counted in Stats (SeedVanished, SeedUnreadable, SeedMalformed).
//
// A connection whose close event was lost (ring buffer full, evicted from the kernel's LRU
// connections map, socket address reused) is closed when a new connection takes its socket
// address, or once Refreshes have missed it on the kernel side twice in a row and for at least
// 30 s; a close event that was only late (the reader lagging) still adds its final bytes up to
// 5 minutes after that. Counted in Stats.ClosesLost once its close is taken never to come.
// Every cumulative count carries the time its entry was created (DestinationStats.Start,
// ListenStats.Start, ContainerStats.OOMKillsStart): an entry forgotten after destination_ttl
// or oom_kill_retention and created again counts from zero with a later time.
//
// Listen addresses are reported as clients dial them, so that a destination (or, behind NAT,
// an actual destination) equals its server's listen address (listens.go): wildcard listeners
// at the addresses of their network namespace (read through internal/netns at each Refresh),
// loopback only in the host's namespace, docker-proxy listeners also on the container they
// forward to.
//
// Use:
//
//	t := tracer.New(tracer.Options{Config: cfg.EBPF, Resolver: registry, OnProcess: fn})
//	if err := t.Start(); err != nil { ... } // loads BPF, opens conntrack and rtnetlink, starts the reader
//	t.Refresh()                             // at each collection: live byte counters, lost closes, RTT, expiry, namespaces' addresses
//	var s tracer.ContainerStats
//	t.ContainerStats(c.ID, &s)
//	t.Forget(ids)                           // containers gone for good: all but an OOM kill count within oom_kill_retention
//	t.Close()
package tracer
