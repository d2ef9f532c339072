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
// min_rescan_interval) or a process event; its runtime metadata is asked for then, with a
// timeout per call and a 30 s pause of a runtime socket that failed, so a hung or garbage
// socket costs one timeout, not one per event. Pod sandboxes (pause) are not containers.
// A container whose processes are all gone gets GoneAt, stays queryable and listed for the
// retention (its last counters are kept), then is forgotten everywhere. See ID for naming.
//
// A container restarted into a new cgroup (Kubernetes: new runtime id, same ID; docker: its
// cgroup re-created, told apart by the directory's inode) is a new instance: a new copy is
// published with FirstSeen = when the new instance was seen, because its cgroup counters start
// from zero again; Restarts stays the runtime's restart count. Stats().NewInstances counts them.
//
// In a pod with a private cgroup namespace, internal/cgroups resolves every process's path
// against the agent's namespace root on the host tree, so attribution and cgroup ids are the
// host's; processes whose paths cannot be placed are skipped and counted
// (Stats().NamespaceSkipped), and Start logs once what was found.
//
// A *Container is immutable once published; metadata refreshes publish a new copy.
package containers
