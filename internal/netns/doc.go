// Package netns reads what the agent needs to know about network namespaces: which one a
// process is in (the inode of /proc/<pid>/ns/net), which one is the host's, and the local
// addresses of any of them, read over rtnetlink from the agent's own namespace.
//
// Addresses are read without entering the namespace (setns needs CAP_SYS_ADMIN, which the
// agent does not hold): the namespace is given a netns id in the agent's namespace
// (RTM_GETNSID, RTM_NEWNSID when it has none, both by pid), and links and addresses are dumped
// with IFLA_TARGET_NETNSID / IFA_TARGET_NETNSID. That needs CAP_NET_ADMIN and Linux 4.20. The
// only trace left behind is the netns id, which the kernel forgets with the namespace.
//
// It must not import other packages of this module except internal/procfs.
package netns
