package containers

import (
	"errors"
	"fmt"
	"time"
)

// Config is the `containers` section of the codexray receiver configuration. The registry
// has no switch: every source attributes through it.
type Config struct {
	// ScanInterval is how often every process in /proc is re-attributed (new and gone
	// containers are also found on demand and through process events). Default 10s.
	ScanInterval time.Duration `mapstructure:"scan_interval"`
	// Retention is how long a container whose processes are all gone stays queryable and
	// listed by Containers (with GoneAt set), so its final counters are reported. After it, its
	// series stop (all but a recent OOM kill count: the receiver's retention.go). Default 5m.
	Retention time.Duration `mapstructure:"retention"`
	// IncludeOtherCgroups treats any other non-root cgroup (not a runtime's container, not a
	// systemd service, not a user session: a transient scope, a VM, a cgroup made by hand) as a
	// container of runtime "cgroup" with its cgroup path as ID. Default false, as
	// coroot-node-agent reports containers and systemd services only; turn it on to attribute
	// processes an operator put into a cgroup of their own.
	IncludeOtherCgroups bool `mapstructure:"include_other_cgroups"`
	// DockerSocket is dockerd's API socket; "" disables docker metadata.
	// Default "/var/run/docker.sock".
	DockerSocket string `mapstructure:"docker_socket"`
	// CRISockets are CRI runtime sockets (containerd, CRI-O), asked in order for the metadata
	// of containerd, CRI-O and kubepods containers. Sockets that do not exist are skipped.
	// Default ["/run/containerd/containerd.sock", "/run/crio/crio.sock"].
	CRISockets []string `mapstructure:"cri_sockets"`
	// RuntimeTimeout bounds every call to a runtime. Calls are made by the registry's metadata
	// goroutine, never on a lookup, so a hung socket delays metadata (and the publication of
	// Kubernetes-shaped containers, by at most this long), never attribution. Default 2s.
	RuntimeTimeout time.Duration `mapstructure:"runtime_timeout"`
	// MetadataRefreshInterval is how often live containers' runtime metadata (restart count,
	// labels) is re-read. Default 1m.
	MetadataRefreshInterval time.Duration `mapstructure:"metadata_refresh_interval"`
	// MinRescanInterval rate-limits the on-demand scans a lookup miss triggers (a new cgroup
	// id from eBPF). Concurrent misses share a scan; an id or pid still unknown after one is
	// a miss for a second without looking again. Default 200ms.
	MinRescanInterval time.Duration `mapstructure:"min_rescan_interval"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		ScanInterval:            10 * time.Second,
		Retention:               5 * time.Minute,
		IncludeOtherCgroups:     false,
		DockerSocket:            "/var/run/docker.sock",
		CRISockets:              []string{"/run/containerd/containerd.sock", "/run/crio/crio.sock"},
		RuntimeTimeout:          2 * time.Second,
		MetadataRefreshInterval: time.Minute,
		MinRescanInterval:       200 * time.Millisecond,
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"scan_interval", c.ScanInterval, 100 * time.Millisecond},
		{"retention", c.Retention, 0},
		{"runtime_timeout", c.RuntimeTimeout, time.Millisecond},
		{"metadata_refresh_interval", c.MetadataRefreshInterval, time.Second},
		{"min_rescan_interval", c.MinRescanInterval, 0},
	} {
		if d.v < d.min {
			return fmt.Errorf("containers: %s must be at least %v, got %v", d.name, d.min, d.v)
		}
	}
	for _, s := range c.CRISockets {
		if s == "" {
			return errors.New("containers: cri_sockets must not contain an empty path")
		}
	}
	return nil
}
