package nodestats

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// physicalInterface is coroot-node-agent's interface filter, applied to the lower-cased name
// and anchored at the start only: Ethernet by every naming scheme (ethN, enoN, ensN, enpXsY,
// enxMAC, emN, pXpY), bonds and numbered bridges (brN, vmbrN, Proxmox). VLANs on those
// (eth0.100) match through the prefix. Not matched, and so not reported: lo, docker0, cni0,
// flannel.1, cali*, veth*, tun/tap, Wi-Fi (wlan0, wlp3s0) and docker's br-<id> bridges — the
// Node page shows the node's own links, not container plumbing. Kept as coroot-node-agent has
// it, so Coroot sees the same interfaces from both agents.
var physicalInterface = regexp.MustCompile(`^(en(p\d+)?p\d+s\d+(f\d+)?|eth\d+|eno\d+|ens\d+|em\d+|bond\d+|p\d+p\d+|enx[0-9a-f]+|br\d+|vmbr\d+)`)

// PhysicalInterface reports whether an interface is one coroot-node-agent reports.
func PhysicalInterface(name string) bool {
	return physicalInterface.MatchString(strings.ToLower(name))
}

// Interface is one network interface of the node.
type Interface struct {
	Name                 string
	RxBytes, RxPackets   uint64
	TxBytes, TxPackets   uint64
	Up                   bool     // operstate "up" (coroot-node-agent: netlink OperUp)
	Addresses            []string // IP addresses without prefix length, see ReadAddresses
	AddressesUnavailable bool     // addresses could not be read for the node's namespace
}

// parseNetDev appends the interfaces of a /proc/<pid>/net/dev file to dst: after two header
// lines, "name: rx_bytes rx_packets errs drop fifo frame compressed multicast tx_bytes
// tx_packets …". Interface names cannot contain ':' (the kernel refuses them), so the first
// colon ends the name even when a large counter follows it without a space.
func parseNetDev(b []byte, dst []Interface) ([]Interface, error) {
	var fs [][]byte
	for n := 0; len(b) > 0; n++ {
		var line []byte
		line, b = nextLine(b)
		if n < 2 {
			continue // headers
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			return dst, fmt.Errorf("parsing net/dev: no interface name in %q", line)
		}
		name := bytes.TrimSpace(line[:colon])
		fs = fields(line[colon+1:], fs)
		if len(name) == 0 || bytes.ContainsAny(name, " \t") || len(fs) < 10 {
			return dst, fmt.Errorf("parsing net/dev: %q", line)
		}
		var v [4]uint64
		for i, col := range [4]int{0, 1, 8, 9} {
			x, err := parseUint(fs[col])
			if err != nil {
				return dst, fmt.Errorf("parsing net/dev: %q: %w", line, err)
			}
			v[i] = x
		}
		dst = append(dst, Interface{Name: string(name), RxBytes: v[0], RxPackets: v[1], TxBytes: v[2], TxPackets: v[3]})
	}
	return dst, nil
}
