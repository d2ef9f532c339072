package cloudmeta

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Azure Instance Metadata Service: one JSON document, requested with "Metadata: true" (the
// service refuses requests without it, and requests carrying X-Forwarded-For).
const (
	azureInstancePath = "/metadata/instance?api-version=2021-02-01"
)

var azureHeader = http.Header{"Metadata": {"true"}}

type azureInstance struct {
	Compute struct {
		SubscriptionID string `json:"subscriptionId"`
		VMID           string `json:"vmId"`
		VMSize         string `json:"vmSize"`
		Location       string `json:"location"`
		Zone           string `json:"zone"`
		Priority       string `json:"priority"`
	} `json:"compute"`
	Network struct {
		Interface []struct {
			IPv4 struct {
				IPAddress []struct {
					PrivateIPAddress string `json:"privateIpAddress"`
					PublicIPAddress  string `json:"publicIpAddress"`
				} `json:"ipAddress"`
			} `json:"ipv4"`
		} `json:"interface"`
	} `json:"network"`
}

// azureLifeCycle maps compute.priority (Regular, Spot, Low; empty on some VM kinds).
func azureLifeCycle(priority string) string {
	switch strings.ToLower(priority) {
	case "spot":
		return "spot"
	case "low":
		return "low-priority"
	case "regular":
		return "on-demand"
	}
	return ""
}

// parseAzureInstance decodes /metadata/instance; compute.vmId is required.
func parseAzureInstance(b []byte) (Metadata, error) {
	var doc azureInstance
	if err := json.Unmarshal(b, &doc); err != nil {
		return Metadata{}, fmt.Errorf("azure instance document: %w: %w", err, ErrMalformed)
	}
	c := doc.Compute
	if c.VMID == "" {
		return Metadata{}, fmt.Errorf("azure instance document has no compute.vmId: %w", ErrMalformed)
	}
	m := Metadata{
		Provider:     Azure.Label(),
		AccountID:    c.SubscriptionID,
		InstanceID:   c.VMID,
		InstanceType: c.VMSize,
		LifeCycle:    azureLifeCycle(c.Priority),
		Region:       c.Location,
	}
	// Azure zones are "1", "2", "3" within a location; "westeurope-1" is the spelling
	// Kubernetes uses in topology.kubernetes.io/zone, and is unique across regions.
	if c.Zone != "" && c.Location != "" {
		m.AvailabilityZone = c.Location + "-" + c.Zone
	}
	// The first interface's first address is the primary one.
	for _, nic := range doc.Network.Interface {
		for _, a := range nic.IPv4.IPAddress {
			if m.LocalIPv4 == "" && isIPv4(a.PrivateIPAddress) {
				m.LocalIPv4 = a.PrivateIPAddress
			}
			if m.PublicIPv4 == "" && isIPv4(a.PublicIPAddress) {
				m.PublicIPv4 = a.PublicIPAddress
			}
		}
	}
	if err := checkFields(m); err != nil {
		return Metadata{}, fmt.Errorf("azure instance document: %w", err)
	}
	return m, nil
}

func fetchAzure(f *fetcher) (Metadata, error) {
	b, err := get(f, azureInstancePath, azureHeader)
	if err != nil {
		return Metadata{}, err
	}
	return parseAzureInstance(b)
}
