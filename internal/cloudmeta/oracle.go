package cloudmeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Oracle Cloud Infrastructure IMDS v2: JSON documents under /opc/v2/, each request carrying
// "Authorization: Bearer Oracle" (v2 refuses requests without it). The instance document gives
// identity, shape and placement; the VNIC list gives the private address. OCI publishes no
// public address in IMDS.
const (
	oracleInstancePath = "/opc/v2/instance/"
	oracleVNICsPath    = "/opc/v2/vnics/"
)

var oracleHeader = http.Header{"Authorization": {"Bearer Oracle"}}

type oracleInstance struct {
	ID                  string `json:"id"`
	TenantID            string `json:"tenantId"`
	CompartmentID       string `json:"compartmentId"`
	Shape               string `json:"shape"`
	Region              string `json:"region"`
	CanonicalRegionName string `json:"canonicalRegionName"`
	AvailabilityDomain  string `json:"availabilityDomain"`
	OCIADName           string `json:"ociAdName"`
	FaultDomain         string `json:"faultDomain"`
}

// parseOracleInstance decodes /opc/v2/instance/; id is required.
func parseOracleInstance(b []byte) (Metadata, error) {
	var doc oracleInstance
	if err := json.Unmarshal(b, &doc); err != nil {
		return Metadata{}, fmt.Errorf("oracle instance document: %w: %w", err, ErrMalformed)
	}
	if doc.ID == "" {
		return Metadata{}, fmt.Errorf("oracle instance document has no id: %w", ErrMalformed)
	}
	m := Metadata{
		Provider:     Oracle.Label(),
		InstanceID:   doc.ID,
		InstanceType: doc.Shape,
		// canonicalRegionName is "us-ashburn-1"; region is the short key "iad".
		Region: firstNonEmpty(doc.CanonicalRegionName, doc.Region),
		// availabilityDomain carries a tenancy-specific prefix ("Uocm:PHX-AD-1"); ociAdName
		// ("phx-ad-1") is the same for every tenancy, like an AWS zone id.
		AvailabilityZone:   doc.AvailabilityDomain,
		AvailabilityZoneID: doc.OCIADName,
		// The tenancy is the account; older IMDS versions only tell the compartment.
		AccountID: firstNonEmpty(doc.TenantID, doc.CompartmentID),
	}
	if err := checkFields(m); err != nil {
		return Metadata{}, fmt.Errorf("oracle instance document: %w", err)
	}
	return m, nil
}

type oracleVNIC struct {
	PrivateIP string `json:"privateIp"`
}

// parseOracleVNICs returns the primary (first) VNIC's private IPv4 address.
func parseOracleVNICs(b []byte) (string, error) {
	var vnics []oracleVNIC
	if err := json.Unmarshal(b, &vnics); err != nil {
		return "", fmt.Errorf("oracle vnics: %w: %w", err, ErrMalformed)
	}
	if len(vnics) == 0 || vnics[0].PrivateIP == "" {
		return "", nil
	}
	if !isIPv4(vnics[0].PrivateIP) {
		return "", fmt.Errorf("oracle vnics: privateIp %q is not IPv4: %w", truncate(vnics[0].PrivateIP), ErrMalformed)
	}
	return vnics[0].PrivateIP, nil
}

func fetchOracle(f *fetcher) (Metadata, error) {
	b, err := get(f, oracleInstancePath, oracleHeader)
	if err != nil {
		return Metadata{}, err
	}
	m, err := parseOracleInstance(b)
	if err != nil {
		return Metadata{}, err
	}
	b, err = get(f, oracleVNICsPath, oracleHeader)
	if errors.Is(err, ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	m.LocalIPv4, err = parseOracleVNICs(b)
	return m, err
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
