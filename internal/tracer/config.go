package tracer

import (
	"errors"
	"fmt"
	"time"

	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// Config is the `ebpf` section of the codexray receiver configuration: the kernel side's ring
// buffer (passed to internal/ebpf) and the tuning of the per-container state built here.
type Config struct {
	// Enabled turns the eBPF tracer on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// RingBufferSize is the kernel→agent event buffer in bytes: a power of two and a multiple
	// of the page size. Events that do not fit are dropped and counted. Default 4 MiB.
	RingBufferSize int `mapstructure:"ring_buffer_size"`
	// MaxDestinationsPerContainer caps the (destination, actual_destination) pairs, listen
	// addresses and latency destinations kept per container; events beyond it are dropped and
	// counted. Default 1000.
	MaxDestinationsPerContainer int `mapstructure:"max_destinations_per_container"`
	// DestinationTTL forgets a destination (or listen address) without open connections and
	// without events for this long. Default 10m.
	DestinationTTL time.Duration `mapstructure:"destination_ttl"`
	// OOMKillRetention keeps a container's OOM kill count reportable this long after its last
	// kill, even when the container is gone (an OOM-killed container usually is). Default 30m.
	OOMKillRetention time.Duration `mapstructure:"oom_kill_retention"`
	// Conntrack resolves the actual destination of NATed connections (e.g. Kubernetes
	// Services) through netlink conntrack. Default true.
	Conntrack bool `mapstructure:"conntrack"`
	// Latency reports container_net_latency_seconds from the kernel's smoothed RTT of open
	// connections, per destination IP. Default true.
	Latency bool `mapstructure:"latency"`
	// ProcRoot is the host's procfs, where the TCP sockets open before the agent started are
	// read (seed.go). Default "": the receiver's node.proc_root (and "/proc" where the tracer is
	// used on its own).
	ProcRoot string `mapstructure:"proc_root"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:                     true,
		RingBufferSize:              ebpf.DefaultRingBufferSize,
		MaxDestinationsPerContainer: 1000,
		DestinationTTL:              10 * time.Minute,
		OOMKillRetention:            30 * time.Minute,
		Conntrack:                   true,
		Latency:                     true,
	}
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if err := ebpf.CheckRingBufferSize(c.RingBufferSize); err != nil {
		errs = append(errs, fmt.Errorf("ebpf.ring_buffer_size: %w", err))
	}
	if c.MaxDestinationsPerContainer <= 0 {
		errs = append(errs, fmt.Errorf("ebpf.max_destinations_per_container must be positive, got %d", c.MaxDestinationsPerContainer))
	}
	if c.DestinationTTL <= 0 {
		errs = append(errs, fmt.Errorf("ebpf.destination_ttl must be positive, got %s", c.DestinationTTL))
	}
	if c.OOMKillRetention <= 0 {
		errs = append(errs, fmt.Errorf("ebpf.oom_kill_retention must be positive, got %s", c.OOMKillRetention))
	}
	return errors.Join(errs...)
}
