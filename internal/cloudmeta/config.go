package cloudmeta

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the `cloud` section of the codexray receiver configuration.
//
//	cloud:
//	  enabled: true                 # default true
//	  provider: ""                  # "" detects from DMI; or aws, gcp, azure, hetzner,
//	                                # digitalocean, oracle, alibaba, scaleway
//	  endpoint: ""                  # metadata base URL; "" uses the provider's well-known address
//	  dmi_root: /sys/class/dmi/id   # where detection reads sys_vendor, product_name, ...
//	  timeout: 1s                   # per HTTP request
//	  refresh_interval: 1h          # how often known metadata is fetched again
//	  retry_initial_interval: 1s    # first back-off after a failed fetch, doubled each failure
//	  retry_max_interval: 5m        # back-off ceiling
//	  max_response_bytes: 65536     # a larger answer is refused and counted
//	  overrides:                    # set by hand; win over fetched values
//	    account_id: "123456789012"
//	    region: eu-west-1
type Config struct {
	// Enabled turns this source on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Provider forces the metadata client instead of detecting the provider from DMI.
	// Default "" (detect). One of the Provider constants.
	Provider string `mapstructure:"provider"`
	// Endpoint overrides the metadata service base URL (scheme://host[:port][/prefix]).
	// Default "" uses the provider's well-known link-local address.
	Endpoint string `mapstructure:"endpoint"`
	// DMIRoot is the directory holding the SMBIOS/DMI identification files.
	// Default /sys/class/dmi/id; in a pod, mount the host's /sys and point here.
	DMIRoot string `mapstructure:"dmi_root"`
	// Timeout bounds each HTTP request to the metadata service. Default 1s.
	Timeout time.Duration `mapstructure:"timeout"`
	// RefreshInterval is how often metadata is fetched again after a success. Default 1h.
	RefreshInterval time.Duration `mapstructure:"refresh_interval"`
	// RetryInitialInterval is the wait after the first failed fetch; each further failure
	// doubles it up to RetryMaxInterval. Default 1s.
	RetryInitialInterval time.Duration `mapstructure:"retry_initial_interval"`
	// RetryMaxInterval caps the back-off between failed fetches. Default 5m.
	RetryMaxInterval time.Duration `mapstructure:"retry_max_interval"`
	// MaxResponseBytes caps one metadata response body; a larger one fails the fetch and is
	// counted in Stats.OversizedResponses. Default 65536.
	MaxResponseBytes int64 `mapstructure:"max_response_bytes"`
	// Overrides are values set by hand; each non-empty field wins over the fetched one.
	// On a machine without a metadata service they are the whole answer.
	Overrides Overrides `mapstructure:"overrides"`
}

// Overrides are node cloud attributes set by hand. Empty fields are not overridden.
type Overrides struct {
	AccountID          string `mapstructure:"account_id"`
	InstanceID         string `mapstructure:"instance_id"`
	InstanceType       string `mapstructure:"instance_type"`
	LifeCycle          string `mapstructure:"instance_life_cycle"`
	Region             string `mapstructure:"region"`
	AvailabilityZone   string `mapstructure:"availability_zone"`
	AvailabilityZoneID string `mapstructure:"availability_zone_id"`
	LocalIPv4          string `mapstructure:"local_ipv4"`
	PublicIPv4         string `mapstructure:"public_ipv4"`
}

// Documented defaults.
const (
	DefaultDMIRoot              = "/sys/class/dmi/id"
	DefaultTimeout              = time.Second
	DefaultRefreshInterval      = time.Hour
	DefaultRetryInitialInterval = time.Second
	DefaultRetryMaxInterval     = 5 * time.Minute
	DefaultMaxResponseBytes     = 64 << 10

	// maxResponseBytesLimit keeps a typo (an extra zero or three) from letting a broken
	// endpoint fill memory.
	maxResponseBytesLimit = 16 << 20
)

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:              true,
		DMIRoot:              DefaultDMIRoot,
		Timeout:              DefaultTimeout,
		RefreshInterval:      DefaultRefreshInterval,
		RetryInitialInterval: DefaultRetryInitialInterval,
		RetryMaxInterval:     DefaultRetryMaxInterval,
		MaxResponseBytes:     DefaultMaxResponseBytes,
	}
}

// Validate reports every invalid setting, joined.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.Provider != "" {
		if _, ok := providers[Provider(c.Provider)]; !ok {
			errs = append(errs, fmt.Errorf("cloud.provider %q is not one of %s (or empty to detect)", c.Provider, strings.Join(providerNames(), ", ")))
		}
	}
	if c.Endpoint != "" {
		if err := validateEndpoint(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("cloud.endpoint: %w", err))
		}
	}
	if c.Provider == "" && c.DMIRoot == "" {
		errs = append(errs, errors.New("cloud.dmi_root must be set when cloud.provider is empty (it is how the provider is detected)"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("cloud.timeout must be positive, got %s", c.Timeout))
	}
	if c.RefreshInterval < time.Second {
		errs = append(errs, fmt.Errorf("cloud.refresh_interval must be at least 1s, got %s", c.RefreshInterval))
	}
	if c.RetryInitialInterval <= 0 {
		errs = append(errs, fmt.Errorf("cloud.retry_initial_interval must be positive, got %s", c.RetryInitialInterval))
	}
	if c.RetryMaxInterval < c.RetryInitialInterval {
		errs = append(errs, fmt.Errorf("cloud.retry_max_interval (%s) must not be below cloud.retry_initial_interval (%s)", c.RetryMaxInterval, c.RetryInitialInterval))
	}
	if c.MaxResponseBytes <= 0 || c.MaxResponseBytes > maxResponseBytesLimit {
		errs = append(errs, fmt.Errorf("cloud.max_response_bytes must be in 1..%d, got %d", maxResponseBytesLimit, c.MaxResponseBytes))
	}
	for _, o := range []struct{ name, value string }{
		{"local_ipv4", c.Overrides.LocalIPv4},
		{"public_ipv4", c.Overrides.PublicIPv4},
	} {
		if o.value != "" && !isIPv4(o.value) {
			errs = append(errs, fmt.Errorf("cloud.overrides.%s %q is not an IPv4 address", o.name, o.value))
		}
	}
	return errors.Join(errs...)
}

func validateEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: must not carry a query or fragment", raw)
	}
	return nil
}
