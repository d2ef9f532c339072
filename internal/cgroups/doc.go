// Package cgroups reads the kernel's control groups: it maps /proc/<pid>/cgroup to a container
// identity for cgroup v1, v2 and hybrid hosts and reads per-cgroup resource counters (cpu, memory,
// block IO, PSI), always below a configurable root so tests can point it at fixture trees.
// It holds no state about containers and talks to no container runtime.
//
// Use:
//
//	fs, err := cgroups.Open(cfg)               // detects LayoutV1, LayoutV2 or LayoutHybrid
//	paths, err := fs.ProcessPaths(pid)         // parses ProcRoot/<pid>/cgroup
//	id := paths.Identify()                     // Kind, runtime ID, pod UID, container cgroup path
//	own, missing := fs.Locate(id, paths.ContainerPaths(id)) // the container's own cgroups
//	stats, err := fs.Stats(own)
//	ino, err := fs.CgroupID(paths.Unified)     // what bpf_get_current_cgroup_id() returns
//
// A process read while its runtime moves it into a new container lists some hierarchies in
// the container and others still at the runtime's cgroup (runc joins them one by one): Locate
// keeps only the container's own paths and completes a runtime's container from its directories;
// missing says which expected hierarchies (Expected) are not there yet, to try again later.
//
// What counts as a container (see Identify): docker (cgroupfs "/docker/<id>", systemd
// "docker-<id>.scope"), containerd ("/k8s.io/<id>", "cri-containerd-<id>.scope"), CRI-O
// ("crio-<id>[.scope]"), podman ("libpod-<id>.scope", also rootless), kubepods with the
// cgroupfs driver ("/kubepods[/<qos>]/pod<uid>/<id>", runtime unknown from the path) and the
// systemd driver (all QoS classes), systemd services ("/system.slice/…/<unit>.service"). The
// root cgroup, /init.scope, user sessions (/user.slice), kubepods pod/QoS levels and runtime
// monitors (conmon) are not containers. Every other non-root cgroup is KindOther ("cgroup"):
// hand-made cgroups, transient scopes, this VM's /process_api shells; the registry decides
// whether to track them.
//
// Metric sources: v1 cpuacct.usage, cpu.stat throttled_time, cpu.cfs_quota_us/period_us,
// memory.stat total_rss/total_cache, memory.limit_in_bytes, blkio.throttle.io_serviced and
// io_service_bytes; v2 cpu.stat usage_usec/throttled_usec, cpu.max, memory.stat anon/file,
// memory.max, io.stat; PSI from {cpu,memory,io}.pressure on the v2 hierarchy (pure v2 or
// hybrid's unified mount). Block devices are named from ProcRoot/partitions.
//
// Cgroup namespaces: an agent in a pod on a cgroup v2 node has a private cgroup namespace, so
// the kernel prints other processes' paths relative to the agent's own cgroup
// ("0::/../../besteffort/…"). Open finds the namespace root of every hierarchy on the host tree
// under Root (the directory whose cgroup.procs lists the agent's own pid, see namespace.go),
// and ProcessPaths joins every path to it, so Identify, Stats and CgroupID see host paths and
// the ids eBPF reports. Namespaces() says what was found, for the caller to log once. A path
// that cannot be placed is refused with ErrNamespaceRelative, never guessed.
package cgroups
