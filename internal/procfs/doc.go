// Package procfs reads a procfs mounted below a configurable root: the host's /proc, or the
// host's procfs mounted elsewhere (/host/proc) when the agent runs in a pod. It owns the
// mechanics every /proc reader needs and repeats otherwise: listing the pids (Pids), iterating a
// process's file descriptors with their link targets (EachFD), reading a link (ReadLink) or a
// small virtual file (ReadFile) into a reused buffer, and telling a process that vanished while
// being read from one that could not be read (Gone).
//
// It knows nothing about containers, cgroups, sockets or log files, and keeps no state: callers
// interpret what they read and count what vanished or was unreadable in their own terms.
package procfs
