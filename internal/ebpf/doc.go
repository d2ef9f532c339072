// Package ebpf owns the kernel side of the agent: the BPF C programs (GPL-2.0) attached to
// tracepoints and raw tracepoints, their committed bpf2go objects, the loader that keeps the
// links alive, and the decoding of ring-buffer events into typed Go values. It must not read
// cgroups or runtime metadata: attribution to containers happens in internal/containers.
package ebpf
