// Package taskstats is the node's source of per-container delay accounting: a generic-netlink
// TASKSTATS client (per-TGID queries, the per-exit stats subscription, decoding of struct
// taskstats by version) and the accumulation of per-process totals into monotonic
// per-container totals.
//
// It owns its netlink sockets and reads /proc (the configured proc root) and
// kernel.task_delayacct; it attributes processes to containers only through the Resolver
// interface (implemented by *containers.Registry, IDs only) and never touches cgroups or BPF.
//
// Use from the receiver:
//
//	c, err := taskstats.NewCollector(cfg, registry, logger) // errors.Is(err, ErrUnavailable): report and carry on
//	c.Start()                                               // exit listener goroutine
//	err = c.Collect(time.Now())                             // once per collection tick
//	d, ok := c.ContainerDelays(container.ID)                // cumulative seconds
//	st := c.Status()                                        // delayacct state, listener errors, overruns
//	c.Close()
//
// Kernel facts this package relies on: exit notifications are delivered only to sockets in the
// initial network namespace (sockets are opened there through <proc_root>/1/ns/net when the
// agent runs elsewhere; queries work in any); exit-listener registration needs the initial
// user and pid namespaces; queries need CAP_NET_ADMIN. CPU delay is always accounted; disk (blkio),
// swap-in, reclaim and thrashing delays only while kernel.task_delayacct=1, and some kernels
// then occasionally add the time since boot to a task's disk delay (filtered, see blkio.go).
//
// A collection costs one netlink round trip per live process (BENCHMARKS.md has the figures).
package taskstats
