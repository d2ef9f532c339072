package tracer

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"ring buffer not a power of two", func(c *Config) { c.RingBufferSize = 3 << 20 }, "ring_buffer_size"},
		{"ring buffer below a page", func(c *Config) { c.RingBufferSize = 1024 }, "ring_buffer_size"},
		{"ring buffer zero", func(c *Config) { c.RingBufferSize = 0 }, "ring_buffer_size"},
		{"no destinations", func(c *Config) { c.MaxDestinationsPerContainer = 0 }, "max_destinations_per_container"},
		{"ttl", func(c *Config) { c.DestinationTTL = 0 }, "destination_ttl"},
		{"oom retention", func(c *Config) { c.OOMKillRetention = -time.Second }, "oom_kill_retention"},
		{"proc root of the receiver (empty)", func(c *Config) { c.ProcRoot = "" }, ""},
		{"proc root set", func(c *Config) { c.ProcRoot = "/host/proc" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %s", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if !c.Enabled || c.RingBufferSize != 4<<20 || c.MaxDestinationsPerContainer != 1000 ||
		c.DestinationTTL != 10*time.Minute || c.OOMKillRetention != 30*time.Minute || !c.Conntrack || !c.Latency || c.ProcRoot != "" {
		t.Errorf("defaults changed: %+v", c)
	}
}
