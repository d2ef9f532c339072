package l7tracer

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/l7"
)

// Config is the `ebpf.l7` section of the receiver configuration.
type Config struct {
	// Enabled loads the L7 capture beside the TCP tracer. Default true.
	Enabled bool `mapstructure:"enabled"`
	// RingBufferSize is the kernel→agent buffer of L7 segments in bytes: a power of two and a
	// multiple of the page size. Segments that do not fit are dropped and counted. Default 8 MiB.
	RingBufferSize int `mapstructure:"ring_buffer_size"`
	// Protocols switches each protocol; a protocol switched off is not detected in the kernel
	// and its metrics are not produced. All default to true.
	Protocols Protocols `mapstructure:"protocols"`
	// MaxSeriesPerContainer caps a container's L7 series (counters and histograms together);
	// requests that would add one beyond it are dropped and counted. Default 1000.
	MaxSeriesPerContainer int `mapstructure:"max_series_per_container"`
	// MaxDomainsPerContainer caps the distinct DNS names per container; later ones are counted
	// under the domain "~other". Default 50 (coroot-node-agent's).
	MaxDomainsPerContainer int `mapstructure:"max_domains_per_container"`
	// SeriesTTL forgets a series (and a domain, an ip→fqdn pair) without requests for this long.
	// Default 10m.
	SeriesTTL time.Duration `mapstructure:"series_ttl"`
}

// Protocols has one switch per protocol, named as internal/l7 names them.
type Protocols struct {
	HTTP       bool `mapstructure:"http"`  // HTTP/1.x
	HTTP2      bool `mapstructure:"http2"` // HTTP/2 with prior knowledge, gRPC included
	Postgres   bool `mapstructure:"postgres"`
	MySQL      bool `mapstructure:"mysql"` // MySQL and MariaDB
	Redis      bool `mapstructure:"redis"`
	Memcached  bool `mapstructure:"memcached"`
	Mongo      bool `mapstructure:"mongo"`
	Kafka      bool `mapstructure:"kafka"`
	Cassandra  bool `mapstructure:"cassandra"`
	DNS        bool `mapstructure:"dns"`
	ClickHouse bool `mapstructure:"clickhouse"`
	ZooKeeper  bool `mapstructure:"zookeeper"`
	RabbitMQ   bool `mapstructure:"rabbitmq"`
	NATS       bool `mapstructure:"nats"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:                true,
		RingBufferSize:         ebpf.DefaultL7RingBufferSize,
		Protocols:              AllProtocols(),
		MaxSeriesPerContainer:  1000,
		MaxDomainsPerContainer: l7.DefaultMaxDomainsPerContainer,
		SeriesTTL:              10 * time.Minute,
	}
}

// AllProtocols returns every protocol switched on.
func AllProtocols() Protocols {
	return Protocols{true, true, true, true, true, true, true, true, true, true, true, true, true, true}
}

// enabled returns the switch of each protocol by its l7.Protocol value, read from the
// mapstructure names: the field named after a protocol's String() is its switch.
func (p Protocols) enabled() [16]bool {
	var on [16]bool
	v := reflect.ValueOf(p)
	typ := v.Type()
	byName := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		byName[typ.Field(i).Tag.Get("mapstructure")] = v.Field(i).Bool()
	}
	for proto := l7.ProtocolHTTP; proto.Valid(); proto++ {
		on[proto] = byName[proto.String()]
	}
	return on
}

// Mask returns the kernel's protocol mask: bit p set for every protocol p switched on.
func (p Protocols) Mask() uint32 {
	var m uint32
	for proto, on := range p.enabled() {
		if on {
			m |= 1 << proto
		}
	}
	return m
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if err := ebpf.CheckRingBufferSize(c.RingBufferSize); err != nil {
		errs = append(errs, fmt.Errorf("ebpf.l7.ring_buffer_size: %w", err))
	}
	if c.MaxSeriesPerContainer <= 0 {
		errs = append(errs, fmt.Errorf("ebpf.l7.max_series_per_container must be positive, got %d", c.MaxSeriesPerContainer))
	}
	if c.MaxDomainsPerContainer <= 0 {
		errs = append(errs, fmt.Errorf("ebpf.l7.max_domains_per_container must be positive, got %d", c.MaxDomainsPerContainer))
	}
	if c.SeriesTTL <= 0 {
		errs = append(errs, fmt.Errorf("ebpf.l7.series_ttl must be positive, got %s", c.SeriesTTL))
	}
	return errors.Join(errs...)
}
