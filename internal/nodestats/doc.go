// Package nodestats reads what a node says about its own resources, in the shape and units of
// coroot-node-agent's node metrics, so that Coroot's Node page works on codexray's output:
//
//	node_resources_cpu_usage_seconds_total{mode}       CPUTimes (/proc/stat, seconds per mode)
//	node_resources_cpu_logical_cores                   Snapshot.LogicalCores (/proc/stat cpuN lines)
//	node_resources_memory_{total,free,available,cached}_bytes   Memory (/proc/meminfo)
//	node_resources_disk_{reads,writes}_total, …_{read,written}_bytes_total,
//	  …_{read,write,io}_time_seconds_total{device}     Disk (/proc/diskstats, whole disks only)
//	node_net_{received,transmitted}_{bytes,packets}_total{interface},
//	  node_net_interface_up{interface}, node_net_interface_ip{interface,ip}
//	                                                   Interface (net/dev, sysfs operstate, addresses)
//	node_uptime_seconds                                Snapshot.UptimeSeconds (/proc/uptime)
//	machine_id, system_uuid (labels of every series)   Identity
//	node_agent_info{version}                           AgentVersion
//
// Everything is read below a configurable procfs and sysfs root (the host's, e.g. /host/proc in
// a pod) through internal/procfs. The rules coroot-node-agent applies, and where this package
// deliberately differs, are stated once, on the code that applies them: WholeDisk,
// PhysicalInterface, parseMeminfo (kB), parseStat (USER_HZ), ReadIdentity.
//
// It reads files and keeps no state between collections; it knows nothing of containers, of
// the collector's pdata or of metric names beyond this comment, and must not import the
// receiver.
package nodestats
