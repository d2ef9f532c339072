package containers

// Config is the `containers` section of the codexray receiver configuration.
type Config struct {
	// Enabled turns this source on. Default true.
	Enabled bool `mapstructure:"enabled"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config { return Config{Enabled: true} }

// Validate reports the first invalid setting.
func (c *Config) Validate() error { return nil }
