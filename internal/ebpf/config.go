package ebpf

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Config is the `ebpf` section of the codexray receiver configuration. It covers the kernel
// side (this package) and the per-container TCP/OOM state built from it (internal/tracer).
type Config struct {
	// Enabled turns the eBPF tracer on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// RingBufferSize is the kernel→agent event buffer in bytes: a power of two and a multiple
	// of the page size. Events that do not fit are dropped and counted. Default 4 MiB.
	RingBufferSize int `mapstructure:"ring_buffer_size"`
	// MaxDestinationsPerContainer caps the (destination, actual_destination) pairs and listen
	// addresses kept per container; events beyond it are dropped and counted. Default 1000.
	MaxDestinationsPerContainer int `mapstructure:"max_destinations_per_container"`
	// DestinationTTL forgets a destination (or listen address) without open connections and
	// without events for this long; if it comes back, its counts start from zero under a new
	// start time. Default 10m.
	DestinationTTL time.Duration `mapstructure:"destination_ttl"`
	// OOMKillRetention keeps a container's OOM kill count reportable this long after its last
	// kill, even when the container is gone (an OOM-killed container usually is). Once
	// forgotten, a later kill counts from zero under a new start time. Default 30m.
	OOMKillRetention time.Duration `mapstructure:"oom_kill_retention"`
	// Conntrack resolves the actual destination of NATed connections (e.g. Kubernetes
	// Services) through netlink conntrack. Default true.
	Conntrack bool `mapstructure:"conntrack"`
	// Latency reports container_net_latency_seconds from the kernel's smoothed RTT of open
	// connections, per destination IP. Default true.
	Latency bool `mapstructure:"latency"`
	// ProcRoot is the host's procfs, where the TCP sockets that were open before the agent
	// started are read right after start, in the background and before the first kernel event
	// is applied (listen addresses and long-lived connections). In a pod it is
	// the host's /proc through hostPID, or a host mount such as /host/proc. Default "": the
	// receiver's node.proc_root (and "/proc" where the tracer is used on its own); set it only
	// to read another procfs than the other sources.
	ProcRoot string `mapstructure:"proc_root"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:                     true,
		RingBufferSize:              4 << 20,
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
	if err := validRingBufferSize(c.RingBufferSize); err != nil {
		errs = append(errs, err)
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

func validRingBufferSize(n int) error {
	page := os.Getpagesize()
	if n < page || n&(n-1) != 0 || n%page != 0 || n > 1<<30 {
		return fmt.Errorf("ebpf.ring_buffer_size must be a power of two between the page size (%d) and 1 GiB, got %d", page, n)
	}
	return nil
}
