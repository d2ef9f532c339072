// Package ebpf owns the kernel side of the agent: the BPF C programs (codexray.c, GPL-2.0)
// attached to raw tracepoints only (no kprobes, fentry or tracefs needed; CO-RE against
// /sys/kernel/btf/vmlinux; kernel >= 5.8 for the ring buffer), their committed bpf2go objects, the loader
// that keeps the links alive, and the allocation-free decoding of ring-buffer events into typed
// Go values. It must not read cgroups or runtime metadata: attribution to containers happens in
// internal/tracer through the registry.
//
// Use:
//
//	p, err := ebpf.Load(ebpf.LoadOptions{RingBufferSize: cfg.RingBufferSize})
//	// errors.Is(err, ebpf.ErrUnsupported) / ebpf.ErrPermission: report the status, carry on.
//	var ev ebpf.Event
//	for {
//		err := p.ReadEvent(&ev) // one goroutine; 0 allocations per event
//		if errors.Is(err, ebpf.ErrClosed) { return }
//		...
//	}
//	p.Connections(func(sock uint64, c *ebpf.ConnectionCounters) { ... }) // live byte counters
//	p.LostEvents()                                                     // ring buffer overflow
//	p.AddSeeded(tuple, id)    // a connection open before Load: its close comes with Sock == id
//	p.RemoveSeeded(tuple)
//	p.SeededConnections(func(id uint64) { ... }) // seeded connections still open
//	p.Close()
//
// Regenerate the objects with `go generate ./internal/ebpf/...` (clang, libbpf-dev); the output
// for amd64 and arm64 is deterministic for a given clang version.
package ebpf
