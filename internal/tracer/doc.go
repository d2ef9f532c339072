// Package tracer turns kernel events from internal/ebpf into per-container TCP and OOM state:
// successful and failed connects, connection time, active connections, retransmits and bytes
// per (destination, actual_destination), listen addresses with inbound connection counts,
// passive RTT per destination IP, and OOM kills. It attributes every event to a container
// through the Registry interface (implemented by *containers.Registry) and enforces the
// cardinality limits of ebpf.Config, counting every drop. It must not read cgroups or talk to
// container runtimes itself, and it never emits metrics: the receiver reads ContainerStats.
//
// At Start, once the BPF programs are attached and before the first event is read, it also
// records the TCP sockets that were already open (seed.go): listening sockets and dialled
// connections of every network namespace, read from <ebpf.proc_root>/<pid>/net/tcp{,6} and
// attributed through /proc/<pid>/fd to the holder's container (Registry.ContainerByPID).
// Seeded connections count as active connections (never as connects) and their close comes
// from the kernel side, which knows them by namespace and 4-tuple. Input that vanished or did
// not parse is counted in Stats (SeedVanished, SeedUnreadable, SeedMalformed).
//
// Use:
//
//	t := tracer.New(tracer.Options{Config: cfg.EBPF, Registry: registry, OnProcess: fn})
//	if err := t.Start(); err != nil { ... } // loads BPF, opens conntrack, starts the reader
//	t.Refresh()                             // at each collection: live byte counters, RTT, expiry
//	var s tracer.ContainerStats
//	t.ContainerStats(c.ID, &s)
//	t.Close()
package tracer
