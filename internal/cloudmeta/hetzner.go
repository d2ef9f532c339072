package cloudmeta

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Hetzner Cloud metadata service: /hetzner/v1/metadata is a YAML document whose keys are also
// served one by one as text (instance-id, region, availability-zone, public-ipv4, ...); the
// private networks are a YAML list of their own. Single keys are fetched because the whole
// document carries vendor data of unbounded size. Hetzner publishes no instance type and no
// account in the metadata service.
const (
	hetznerPrefix          = "/hetzner/v1/metadata/"
	hetznerPrivateNetworks = "/hetzner/v1/metadata/private-networks"
)

type hetznerPrivateNetwork struct {
	IP string `yaml:"ip"`
}

// parseHetznerPrivateNetworks returns the first private network address ("" when the server
// is in no private network; the service answers an empty list then).
func parseHetznerPrivateNetworks(b []byte) (string, error) {
	var nets []hetznerPrivateNetwork
	if err := yaml.Unmarshal(b, &nets); err != nil {
		return "", fmt.Errorf("hetzner private-networks: %w: %w", err, ErrMalformed)
	}
	for _, n := range nets {
		if n.IP == "" {
			continue
		}
		if !isIPv4(n.IP) {
			return "", fmt.Errorf("hetzner private-networks: ip %q is not IPv4: %w", truncate(n.IP), ErrMalformed)
		}
		return n.IP, nil
	}
	return "", nil
}

func fetchHetzner(f *fetcher) (Metadata, error) {
	id, err := getText(f, hetznerPrefix+"instance-id", nil)
	if err != nil {
		return Metadata{}, err
	}
	m := Metadata{Provider: Hetzner.Label(), InstanceID: id}
	var errs []error
	optional := func(key string, dst *string) {
		v, err := getOptionalText(f, hetznerPrefix+key, nil)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*dst = v
	}
	optional("region", &m.Region)                      // eu-central
	optional("availability-zone", &m.AvailabilityZone) // fsn1-dc14
	optional("public-ipv4", &m.PublicIPv4)
	keepIPv4("public ipv4", &m.PublicIPv4, &errs)
	b, err := get(f, hetznerPrivateNetworks, nil)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		errs = append(errs, err)
	default:
		ip, err := parseHetznerPrivateNetworks(b)
		if err != nil {
			errs = append(errs, err)
		}
		m.LocalIPv4 = ip
	}
	return m, errors.Join(errs...)
}
