package nodestats

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// Identity is how coroot-node-agent names a node on every series: machine_id and system_uuid.
// Coroot's server keys a node by them and ignores a node_info series on which both are empty.
type Identity struct {
	// MachineID is /etc/machine-id of the host, dashes removed: read through the host's root
	// (ProcRoot/1/root/etc/machine-id, then …/var/lib/dbus/machine-id), then from
	// Config.MachineIDPaths in the agent's own file system (a pod mounts the host's file
	// there, and /proc/1/root is not readable everywhere), then, like coroot-node-agent, the
	// DMI product_uuid with its dashes removed.
	MachineID string
	// SystemUUID is the DMI product_uuid (SysRoot/devices/virtual/dmi/id/product_uuid, the
	// value kube-state-metrics reports as kube_node_info's system_uuid), trimmed and otherwise
	// as the firmware wrote it; "" when absent (no DMI, e.g. on arm64 without SMBIOS) or
	// unreadable (it is root-only).
	SystemUUID string
}

// ReadIdentity reads the node's identity. It never fails: what cannot be read is empty.
func ReadIdentity(cfg Config) Identity {
	id := Identity{SystemUUID: readTrimmed(filepath.Join(cfg.sysRoot(), "devices/virtual/dmi/id/product_uuid"))}
	hostRoot := filepath.Join(cfg.procRoot(), "1", "root")
	var candidates []string
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		candidates = append(candidates, filepath.Join(hostRoot, p))
	}
	candidates = append(candidates, cfg.machineIDPaths()...)
	for _, p := range candidates {
		if v := machineID(readTrimmed(p)); v != "" {
			id.MachineID = v
			return id
		}
	}
	id.MachineID = machineID(id.SystemUUID)
	return id
}

func machineID(s string) string { return strings.ReplaceAll(s, "-", "") }

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// AgentVersion is node_agent_info's version label: the collector build's version when the
// caller has one (component.BuildInfo.Version), else the module version the binary was built
// from, else "unknown".
func AgentVersion(buildVersion string) string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "unknown"
}
