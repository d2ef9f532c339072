// Package cgroups reads the kernel's control groups: it maps /proc/<pid>/cgroup to a container
// identity for cgroup v1, v2 and hybrid hosts and reads per-cgroup resource counters (cpu, memory,
// block IO, PSI), always below a configurable root so tests can point it at fixture trees.
// It holds no state about containers and talks to no container runtime.
package cgroups
