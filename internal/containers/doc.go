// Package containers owns the registry: which containers run on the node, which processes and
// cgroups belong to each, their runtime metadata (dockerd, containerd/CRI) and their expiry.
// Other sources attribute what they observe through it; it never reads BPF or log files itself.
package containers
