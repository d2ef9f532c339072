package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The node's addresses: a bridge of its own carries the node IP and the pods; Services get
// virtual IPs from a range that nothing else on the machine uses.
const (
	BridgeName = "cxk8s0"
	// NodeIP is the bridge's address: the kubelet's node IP, the API server's advertised
	// address and so the pod IP of host-network pods (the agent).
	NodeIP      = "10.244.77.1"
	PodCIDR     = "10.244.77.0/24"
	ServiceCIDR = "10.96.77.0/24"
	// APIServiceIP is the "kubernetes" Service's ClusterIP (the first of ServiceCIDR); the
	// API server's certificate names it.
	APIServiceIP = "10.96.77.1"
)

// addBridge creates the bridge with the node IP. The CNI bridge plugin attaches pods to it
// (and would create it, but the kubelet needs the node IP on an interface before the first
// pod exists).
func addBridge() error {
	if interfaceExists(BridgeName) {
		return fmt.Errorf("interface %s exists already", BridgeName)
	}
	for _, args := range [][]string{
		{"link", "add", BridgeName, "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", BridgeName},
		{"link", "set", BridgeName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func deleteBridge() error {
	if !interfaceExists(BridgeName) {
		return nil
	}
	if out, err := exec.Command("ip", "link", "del", BridgeName).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link del %s: %w: %s", BridgeName, err, out)
	}
	return nil
}

func interfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// cniConfig is the pod network: the bridge plugin with host-local addresses from PodCIDR,
// its allocations kept below the cluster's root. Pods get a route to the Service range only
// (through the node, where kube-proxy's NAT rules are): they can reach each other, the node
// and Services, nothing beyond the machine.
func cniConfig(ipamDir string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "cxk8s",
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      BridgeName,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": ipamDir,
				"ranges": [][]map[string]string{{{
					"subnet": PodCIDR, "rangeStart": "10.244.77.10", "rangeEnd": "10.244.77.250", "gateway": NodeIP,
				}}},
				"routes": []map[string]string{{"dst": ServiceCIDR}},
			},
		}},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// The kernel settings the node changes. The kubelet sets the first six at start (it has no
// mode that leaves them alone and still starts: protectKernelDefaults turns a difference into
// a start failure); the CNI bridge plugin turns on IP forwarding for its gateway. They are
// machine-wide, so the cluster saves them before it starts and puts them back when it stops.
var nodeSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
}

// saveSysctls records the current values in file, unless a file from an earlier run that
// did not restore them is there: its values are the machine's own.
func saveSysctls(file string) error {
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	var b strings.Builder
	for _, name := range nodeSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", name))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s\n", name, strings.TrimSpace(string(v)))
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// restoreSysctls writes back what saveSysctls recorded and removes the record.
func restoreSysctls(file string) error {
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "..") {
			continue
		}
		p := filepath.Join("/proc/sys", name)
		if cur, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(cur)) == val {
			continue
		}
		if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("restoring sysctls: %s", strings.Join(errs, "; "))
	}
	return os.Remove(file)
}
