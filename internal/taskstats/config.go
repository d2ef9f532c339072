package taskstats

import (
	"errors"
	"path/filepath"
)

// Config is the `taskstats` section of the codexray receiver configuration.
type Config struct {
	// Enabled turns this source on. Default true.
	Enabled bool `mapstructure:"enabled"`

	// ProcRoot is where the host's procfs is mounted: processes are listed there, and the
	// host network namespace is reached through <proc_root>/1/ns/net. Default "": the
	// receiver's node.proc_root (and "/proc" where this package is used on its own); set it only
	// to read another procfs than the other sources.
	ProcRoot string `mapstructure:"proc_root"`

	// EnableTaskDelayacct writes 1 to kernel.task_delayacct at start when it is 0. Without it
	// the kernel does not account disk (blkio), swap-in, reclaim or thrashing delays and they
	// stay 0; CPU delay is always accounted. Default false: the agent does not change kernel
	// settings unless asked. The setting is left on at shutdown.
	EnableTaskDelayacct bool `mapstructure:"enable_task_delayacct"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Enabled: true}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.ProcRoot != "" && !filepath.IsAbs(c.ProcRoot) {
		return errors.New("taskstats: proc_root must be an absolute path, got " + c.ProcRoot)
	}
	return nil
}
