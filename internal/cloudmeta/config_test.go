package cloudmeta

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Enabled: true, DMIRoot: "/sys/class/dmi/id", Timeout: time.Second, RefreshInterval: time.Hour,
		RetryInitialInterval: time.Second, RetryMaxInterval: 5 * time.Minute, MaxResponseBytes: 65536,
	}
	if cfg != want {
		t.Fatalf("DefaultConfig = %+v, want %+v", cfg, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none means valid
	}{
		{"every provider accepted", func(c *Config) { c.Provider = "oracle" }, nil},
		{"unknown provider", func(c *Config) { c.Provider = "AWS" }, []string{`cloud.provider "AWS" is not one of alibaba, aws, azure, digitalocean, gcp, hetzner, oracle, scaleway`}},
		{"endpoint with port and prefix", func(c *Config) { c.Endpoint = "http://127.0.0.1:8080/imds" }, nil},
		{"endpoint without scheme", func(c *Config) { c.Endpoint = "169.254.169.254" }, []string{"cloud.endpoint", "scheme must be http or https"}},
		{"endpoint with query", func(c *Config) { c.Endpoint = "http://h/?x=1" }, []string{"query or fragment"}},
		{"no dmi root when detecting", func(c *Config) { c.DMIRoot = "" }, []string{"cloud.dmi_root must be set"}},
		{"no dmi root with forced provider", func(c *Config) { c.DMIRoot, c.Provider = "", "gcp" }, nil},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, []string{"cloud.timeout must be positive"}},
		{"refresh too short", func(c *Config) { c.RefreshInterval = 10 * time.Millisecond }, []string{"cloud.refresh_interval must be at least 1s"}},
		{"retry max below initial", func(c *Config) { c.RetryMaxInterval = 100 * time.Millisecond }, []string{"cloud.retry_max_interval (100ms) must not be below"}},
		{"zero retry", func(c *Config) { c.RetryInitialInterval = 0 }, []string{"cloud.retry_initial_interval must be positive"}},
		{"response cap zero", func(c *Config) { c.MaxResponseBytes = 0 }, []string{"cloud.max_response_bytes must be in 1..16777216"}},
		{"response cap huge", func(c *Config) { c.MaxResponseBytes = 1 << 30 }, []string{"cloud.max_response_bytes"}},
		{"override ip not ipv4", func(c *Config) { c.Overrides.PublicIPv4 = "2001:db8::1" }, []string{`cloud.overrides.public_ipv4 "2001:db8::1" is not an IPv4 address`}},
		{"override ip ok", func(c *Config) { c.Overrides.LocalIPv4 = "10.1.2.3" }, nil},
		{"all errors reported together", func(c *Config) { c.Timeout, c.Provider = 0, "ibm" }, []string{"cloud.timeout", "cloud.provider"}},
		{"disabled skips checks", func(c *Config) { c.Enabled, c.Timeout = false, 0 }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestResourceAttributes(t *testing.T) {
	for _, tc := range []struct {
		md   Metadata
		want map[string]string
	}{
		{wantFixture[AWS], map[string]string{
			"cloud.provider": "aws", "cloud.platform": "aws_ec2", "cloud.account.id": "123456789012",
			"cloud.region": "eu-west-1", "cloud.availability_zone": "eu-west-1b", "host.type": "m6i.large",
		}},
		{wantFixture[Azure], map[string]string{
			"cloud.provider": "azure", "cloud.platform": "azure.vm", "cloud.account.id": "8d1b2c3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
			"cloud.region": "westeurope", "cloud.availability_zone": "westeurope-2", "host.type": "Standard_D4s_v5",
		}},
		// No semconv platform for droplets; no account or type in their metadata.
		{wantFixture[DigitalOcean], map[string]string{"cloud.provider": "digitalocean", "cloud.region": "nyc3"}},
		{wantFixture[Oracle], map[string]string{
			"cloud.provider": "oracle_cloud", "cloud.platform": "oracle_cloud_compute",
			"cloud.account.id": "ocid1.tenancy.oc1..aaaaaaaaexampletenancy", "cloud.region": "us-phoenix-1",
			"cloud.availability_zone": "Uocm:PHX-AD-1", "host.type": "VM.Standard.E4.Flex",
		}},
		{Metadata{}, map[string]string{}},
		{Metadata{Region: "dc-berlin"}, map[string]string{"cloud.region": "dc-berlin"}},
	} {
		got := tc.md.ResourceAttributes()
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.md.Provider, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", tc.md.Provider, k, got[k], v)
			}
		}
	}
}

func TestProviderLabels(t *testing.T) {
	for p := range providers {
		l := p.Label()
		if l == "" {
			t.Errorf("%s has no label", p)
		}
		if back, ok := providerByLabel(l); !ok || back != p {
			t.Errorf("label %q maps back to %q", l, back)
		}
	}
	if Provider("ibm").Label() != "" {
		t.Error("unknown provider has a label")
	}
}

func TestParseTextAndHelpers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"i-0123\n", "i-0123", true},
		{"  eu-west-1b  ", "eu-west-1b", true},
		{"", "", false},
		{"a\nb", "", false},
		{"<html>", "", false},
		{"\xff\xfe", "", false},
		{strings.Repeat("a", 256), strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), "", false},
	} {
		got, err := parseText([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseText(%q) = %q, %v", tc.in, got, err)
		}
	}
	if lastSegment("projects/1/zones/us-central1-a") != "us-central1-a" || lastSegment("plain") != "plain" {
		t.Error("lastSegment")
	}
	for zone, region := range map[string]string{"us-central1-a": "us-central1", "fr-par-1": "fr-par", "nozone": "", "-a": ""} {
		if got := regionOfZone(zone); got != region {
			t.Errorf("regionOfZone(%q) = %q, want %q", zone, got, region)
		}
	}
	for in, want := range map[string]bool{"10.0.0.1": true, "::ffff:10.0.0.1": false, "2001:db8::1": false, "10.0.0": false, "": false} {
		if isIPv4(in) != want {
			t.Errorf("isIPv4(%q) != %v", in, want)
		}
	}
}
