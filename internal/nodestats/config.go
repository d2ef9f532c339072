package nodestats

import "github.com/codexray/codexray-node-agent/internal/procfs"

// DefaultSysRoot is where sysfs is mounted unless configured otherwise.
const DefaultSysRoot = "/sys"

// Config says where the host's procfs and sysfs are, and where else the machine id may be.
type Config struct {
	// ProcRoot is the host's procfs ("" means /proc).
	ProcRoot string
	// SysRoot is the host's sysfs ("" means /sys).
	SysRoot string
	// MachineIDPaths are tried, in order, after the host root's /etc/machine-id and
	// /var/lib/dbus/machine-id (read through ProcRoot/1/root). Empty means /etc/machine-id,
	// /var/lib/dbus/machine-id in the agent's own file system (a pod mounts the host's there).
	MachineIDPaths []string
}

func (c Config) procRoot() string { return procfs.Root(c.ProcRoot) }

func (c Config) sysRoot() string {
	if c.SysRoot == "" {
		return DefaultSysRoot
	}
	return c.SysRoot
}

func (c Config) machineIDPaths() []string {
	if len(c.MachineIDPaths) == 0 {
		return []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}
	}
	return c.MachineIDPaths
}
