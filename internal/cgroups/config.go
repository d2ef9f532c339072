package cgroups

import (
	"errors"
	"path/filepath"
)

// Config is the `cgroups` section of the codexray receiver configuration.
type Config struct {
	// Enabled turns the per-container resource metrics (cpu, memory, block IO, PSI) on.
	// Default true.
	Enabled bool `mapstructure:"enabled"`
	// Root is where the cgroup hierarchies are mounted: a cgroup2 file system (pure v2), or a
	// directory of v1 controller mounts optionally with cgroup2 at Root/unified (v1, hybrid).
	// Default "/sys/fs/cgroup". In a pod it is the host's, mounted read-only.
	Root string `mapstructure:"root"`
	// ProcRoot is the procfs of the host's pid namespace: /proc/<pid>/cgroup is read from it,
	// and block device names from ProcRoot/partitions. Default "": the receiver's
	// node.proc_root (and "/proc" where this package is used on its own); set it only to read
	// another procfs than the other sources.
	ProcRoot string `mapstructure:"proc_root"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Enabled: true, Root: "/sys/fs/cgroup"}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.Root == "" {
		return errors.New("cgroups: root must not be empty (default /sys/fs/cgroup)")
	}
	if !filepath.IsAbs(c.Root) {
		return errors.New("cgroups: root must be an absolute path, got " + c.Root)
	}
	if c.ProcRoot != "" && !filepath.IsAbs(c.ProcRoot) {
		return errors.New("cgroups: proc_root must be an absolute path, got " + c.ProcRoot)
	}
	return nil
}
