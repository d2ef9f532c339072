// Package containers owns the registry: which containers run on the node, which processes and
// cgroups belong to each, their runtime metadata (dockerd, containerd/CRI) and their expiry.
// Other sources attribute what they observe through it; it never reads BPF or log files itself.
//
// Use:
//
//	var reg containers.Registry                      // zero value: empty, lookups miss
//	err := reg.Start(cfg, cgroupsCfg, logger)        // first scan at once, then every scan_interval
//	defer reg.Close()
//	c, ok := reg.ContainerByCgroupID(cgid)           // eBPF: bpf_get_current_cgroup_id()
//	c, ok := reg.ContainerByPID(pid)                 // taskstats, OOM kills
//	reg.OnProcessStart(pid); reg.OnProcessExit(pid)  // process events keep it current
//	for _, c := range reg.Containers() { s, err := c.Resources() }  // each collection
//
// Processes are attributed from /proc/<pid>/cgroup (internal/cgroups). A container is first
// seen with a scan, an on-demand rescan after a lookup miss (rate-limited by
// min_rescan_interval, concurrent misses sharing one scan, an id or pid still unknown after a
// scan answered as a miss for a second) or a process event. Attribution never calls a
// runtime: the container is published with what its cgroup tells and queued for metadata,
// which one goroutine asks the runtimes for (a timeout per call, a 30 s pause of a socket
// that failed) holding no lock a lookup takes, then publishes as a new copy. Lookups wait at
// most for a /proc scan, never for a runtime. A Kubernetes-shaped container (its cgroup names
// a pod) is pending until its runtime answered or failed, and lookups miss it meanwhile: the
// answer decides its ID, whether it is a new instance of a known container, or a pod sandbox
// (pause), which is not a container. Any other container's ID is fixed by its cgroup.
//
// Lookups by cgroup id need the unified hierarchy (cgroup v2, or hybrid with its unified
// mount): on a cgroup v1-only host, cgroup ids name no container, ContainerByCgroupID misses
// at once without scanning, and callers attribute by pid (ContainerByPID) instead.
// A container whose processes are all gone gets GoneAt, stays queryable and listed for the
// retention (its last counters are kept), then is forgotten everywhere: the receiver stops its
// series then (receiver/codexrayreceiver, retention.go). One that exited before any scan saw it
// is listed as gone once a source asks DescribeGone about it (gone.go). See ID for naming.
//
// A container restarted into a new cgroup (Kubernetes: new runtime id, same ID; docker: its
// cgroup re-created, told apart by the directory's inode) is a new instance: a new copy is
// published with FirstSeen = when the new instance was seen, because its cgroup counters start
// from zero again; Restarts stays the runtime's restart count. Stats().NewInstances counts them.
// Restarts is cumulative from RestartsSince, which moves only when the count begins again under
// the same ID (a pod re-created with a new UID, a count that went down), so callers record
// container.restarts with RestartsSince as its start.
//
// In a pod with a private cgroup namespace, internal/cgroups resolves every process's path
// against the agent's namespace root on the host tree, so attribution and cgroup ids are the
// host's; processes whose paths cannot be placed are skipped and counted
// (Stats().NamespaceSkipped), and Start logs once what was found.
//
// A container's cgroup paths converge on its own cgroups: a process seen while its runtime
// moves it in (an exec event, a lookup, a scan in that window) shows only some hierarchies, so
// every later sight of its processes and every collection (Resources) while an expected
// hierarchy is missing re-resolve them (cgroups.FS.Locate); a path outside the container is
// never read. A container still incomplete at its second collection is counted once
// (Stats().CgroupIncomplete).
//
// A *Container is immutable once published; metadata refreshes publish a new copy.
package containers
