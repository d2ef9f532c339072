package cloudmeta

import (
	"encoding/json"
	"fmt"
)

// Scaleway instance metadata at 169.254.42.42: /conf?format=json is the server description
// (id, commercial type, organization, zone, addresses).
const scalewayConfPath = "/conf?format=json"

type scalewayConf struct {
	ID             string `json:"id"`
	CommercialType string `json:"commercial_type"`
	Organization   string `json:"organization"`
	Project        string `json:"project"`
	PrivateIP      string `json:"private_ip"`
	PublicIP       *struct {
		Address string `json:"address"`
	} `json:"public_ip"`
	PublicIPsV4 []struct {
		Address string `json:"address"`
		Family  string `json:"family"`
	} `json:"public_ips"`
	Location struct {
		ZoneID string `json:"zone_id"`
	} `json:"location"`
}

// parseScalewayConf decodes /conf?format=json; id is required.
func parseScalewayConf(b []byte) (Metadata, error) {
	var doc scalewayConf
	if err := json.Unmarshal(b, &doc); err != nil {
		return Metadata{}, fmt.Errorf("scaleway conf: %w: %w", err, ErrMalformed)
	}
	if doc.ID == "" {
		return Metadata{}, fmt.Errorf("scaleway conf has no id: %w", ErrMalformed)
	}
	m := Metadata{
		Provider:         Scaleway.Label(),
		AccountID:        firstNonEmpty(doc.Organization, doc.Project),
		InstanceID:       doc.ID,
		InstanceType:     doc.CommercialType,
		AvailabilityZone: doc.Location.ZoneID,               // fr-par-1
		Region:           regionOfZone(doc.Location.ZoneID), // fr-par
	}
	if isIPv4(doc.PrivateIP) {
		m.LocalIPv4 = doc.PrivateIP
	}
	if doc.PublicIP != nil && isIPv4(doc.PublicIP.Address) {
		m.PublicIPv4 = doc.PublicIP.Address
	}
	for _, ip := range doc.PublicIPsV4 {
		if m.PublicIPv4 == "" && isIPv4(ip.Address) {
			m.PublicIPv4 = ip.Address
		}
	}
	if err := checkFields(m); err != nil {
		return Metadata{}, fmt.Errorf("scaleway conf: %w", err)
	}
	return m, nil
}

func fetchScaleway(f *fetcher) (Metadata, error) {
	b, err := get(f, scalewayConfPath, nil)
	if err != nil {
		return Metadata{}, err
	}
	return parseScalewayConf(b)
}
