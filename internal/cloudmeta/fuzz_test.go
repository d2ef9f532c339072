package cloudmeta

import (
	"os"
	"path/filepath"
	"testing"
)

// Each fuzz target feeds a parser arbitrary bytes: it must return a value or an error, never
// panic, and whatever it returns must be fit to be a label value.

func seedFile(f *testing.F, parts ...string) {
	f.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata", "imds"}, parts...)...))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func checkParsed(t *testing.T, m Metadata, err error) {
	t.Helper()
	if err != nil {
		if !m.IsZero() {
			t.Fatalf("error %v with a non-empty result %+v", err, m)
		}
		return
	}
	if m.InstanceID == "" {
		t.Fatalf("success without an instance id: %+v", m)
	}
	if cerr := checkFields(m); cerr != nil {
		t.Fatalf("accepted a value unfit for a label: %v", cerr)
	}
}

func FuzzParseAWSIdentityDocument(f *testing.F) {
	seedFile(f, "aws", "latest", "dynamic", "instance-identity", "document")
	f.Add([]byte(`{"instanceId":"i-1","privateIp":"fd00::1"}`))
	f.Add([]byte(`{"instanceId":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseAWSIdentityDocument(b)
		checkParsed(t, m, err)
	})
}

func FuzzParseAzureInstance(f *testing.F) {
	seedFile(f, "azure", "metadata", "instance")
	f.Add([]byte(`{"compute":{"vmId":"x","zone":"1"},"network":{"interface":[{"ipv4":{"ipAddress":[{}]}}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseAzureInstance(b)
		checkParsed(t, m, err)
	})
}

func FuzzParseOracleInstance(f *testing.F) {
	seedFile(f, "oracle", "opc", "v2", "instance")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseOracleInstance(b)
		checkParsed(t, m, err)
	})
}

func FuzzParseScalewayConf(f *testing.F) {
	seedFile(f, "scaleway", "conf")
	f.Add([]byte(`{"id":"x","public_ip":null,"public_ips":[{"address":"1.2.3.4"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseScalewayConf(b)
		checkParsed(t, m, err)
	})
}

func FuzzParseAddressLists(f *testing.F) {
	// Hetzner's YAML private networks and Oracle's JSON VNIC list both yield one address.
	seedFile(f, "hetzner", "hetzner", "v1", "metadata", "private-networks")
	seedFile(f, "oracle", "opc", "v2", "vnics")
	f.Add([]byte("[]"))
	f.Add([]byte("- ip: *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, parse := range map[string]func([]byte) (string, error){"hetzner": parseHetznerPrivateNetworks, "oracle": parseOracleVNICs} {
			ip, err := parse(b)
			if err == nil && ip != "" && !isIPv4(ip) {
				t.Fatalf("%s accepted %q as an IPv4 address", name, ip)
			}
			if err != nil && ip != "" {
				t.Fatalf("%s: error %v with address %q", name, err, ip)
			}
		}
	})
}

func FuzzParseText(f *testing.F) {
	f.Add([]byte("i-0123456789abcdef0"))
	f.Add([]byte("projects/734918273645/zones/europe-west1-b\n"))
	f.Add([]byte("<html>\n</html>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseText(b)
		if err != nil {
			return
		}
		if v == "" || checkValue(v) != nil {
			t.Fatalf("accepted %q", v)
		}
		// Whatever the GCP path helpers make of a value stays fit for a label.
		if checkValue(lastSegment(v)) != nil || checkValue(regionOfZone(v)) != nil {
			t.Fatalf("helpers broke %q", v)
		}
	})
}
