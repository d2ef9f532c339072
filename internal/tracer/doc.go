// Package tracer turns kernel events from internal/ebpf into per-container TCP and OOM state:
// successful and failed connects, connection time, active connections, retransmits and bytes
// per (destination, actual_destination), listen addresses with inbound connection counts,
// passive RTT per destination IP, and OOM kills. It attributes every event to a container
// through the Registry interface (implemented by *containers.Registry) and enforces the
// cardinality limits of ebpf.Config, counting every drop. It must not read cgroups or talk to
// container runtimes itself, and it never emits metrics: the receiver reads ContainerStats.
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
