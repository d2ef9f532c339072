package nodestats

import (
	"errors"
	"net"
	"os"
)

// AddressLister returns the IP addresses of the named interfaces, as node_net_interface_ip's
// ip label spells them, keyed by interface name.
type AddressLister func(names []string) (map[string][]string, error)

// errOtherNamespace: the agent's network namespace is not the node's, so the agent's own
// interface addresses are not the node's.
var errOtherNamespace = errors.New("the agent does not run in the node's network namespace (deploy it with hostNetwork)")

// ownAddresses lists addresses from the agent's own network namespace (netlink, through the
// net package). The kernel offers no per-interface IPv4 list in procfs, and entering pid 1's
// namespace needs CAP_SYS_ADMIN, which the agent does not hold: it reports addresses only
// when it shares the node's namespace (hostNetwork), which sameNetNS checks where it can.
func ownAddresses(names []string) (map[string][]string, error) {
	res := make(map[string][]string, len(names))
	var errs []error
	for _, name := range names {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if s, keep := addressLabel(ipn.IP); keep {
					res[name] = append(res[name], s)
				}
			}
		}
	}
	return res, errors.Join(errs...)
}

// addressLabel applies coroot-node-agent's address filter: link-local unicast (fe80::/10,
// 169.254/16) and multicast addresses are not the node's addresses for Coroot.
func addressLabel(ip net.IP) (string, bool) {
	if ip == nil || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsLinkLocalMulticast() {
		return "", false
	}
	return ip.String(), true
}

// sameNetNS reports whether the agent (its own /proc/self) is in the network namespace whose
// files the collection reads (netPath, e.g. <proc_root>/1/ns/net). When either link cannot be
// read (pid 1's namespaces are not readable everywhere), it assumes so.
func sameNetNS(netPath string) bool {
	own, err1 := os.Readlink("/proc/self/ns/net")
	node, err2 := os.Readlink(netPath)
	if err1 != nil || err2 != nil {
		return true
	}
	return own == node
}
