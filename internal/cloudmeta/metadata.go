package cloudmeta

import (
	"net"
	"sort"
	"strings"
)

// Provider names a cloud whose instance metadata service this package speaks. The values are
// the ones accepted by Config.Provider.
type Provider string

// Providers with a metadata client.
const (
	AWS          Provider = "aws"
	GCP          Provider = "gcp"
	Azure        Provider = "azure"
	Hetzner      Provider = "hetzner"
	DigitalOcean Provider = "digitalocean"
	Oracle       Provider = "oracle"
	Alibaba      Provider = "alibaba"
	Scaleway     Provider = "scaleway"
)

// providerInfo is what the rest of the world calls a provider.
type providerInfo struct {
	// semconvProvider and semconvPlatform are the OTel cloud.provider / cloud.platform
	// values; empty where the semantic conventions define none.
	semconvProvider string
	semconvPlatform string
	// endpoint is the well-known metadata service base URL.
	endpoint string
	fetch    func(*fetcher) (Metadata, error)
}

const linkLocalIMDS = "http://169.254.169.254"

var providers = map[Provider]providerInfo{
	AWS:          {"aws", "aws_ec2", linkLocalIMDS, fetchAWS},
	GCP:          {"gcp", "gcp_compute_engine", linkLocalIMDS, fetchGCP},
	Azure:        {"azure", "azure.vm", linkLocalIMDS, fetchAzure},
	Hetzner:      {"hetzner", "hetzner.cloud_server", linkLocalIMDS, fetchHetzner},
	DigitalOcean: {"digitalocean", "", linkLocalIMDS, fetchDigitalOcean},
	Oracle:       {"oracle_cloud", "oracle_cloud_compute", linkLocalIMDS, fetchOracle},
	Alibaba:      {"alibaba_cloud", "alibaba_cloud_ecs", "http://100.100.100.200", fetchAlibaba},
	Scaleway:     {"scaleway", "", "http://169.254.42.42", fetchScaleway},
}

func providerNames() []string {
	names := make([]string, 0, len(providers))
	for p := range providers {
		names = append(names, string(p))
	}
	sort.Strings(names)
	return names
}

// Metadata is who the node is in its cloud. Every field may be empty: not every provider
// publishes every field (Hetzner has no instance type, Oracle no public IP in its IMDS, ...).
type Metadata struct {
	// Provider is the node_cloud_info{provider} label: AWS, GCP, Azure, Hetzner,
	// DigitalOcean, Oracle, Alibaba, Scaleway. It is coroot-node-agent's spelling, so
	// dashboards built for it keep matching; Provider.Label maps a config name to it.
	Provider string
	// AccountID: AWS account, GCP project id, Azure subscription, Oracle tenancy (or
	// compartment), Alibaba owner account, Scaleway organization.
	AccountID    string
	InstanceID   string
	InstanceType string
	// LifeCycle is on-demand, spot or preemptible (GCP), or low-priority (Azure); AWS may also
	// say scheduled.
	LifeCycle          string
	Region             string
	AvailabilityZone   string
	AvailabilityZoneID string
	LocalIPv4          string
	PublicIPv4         string
}

// fillFrom returns m with every empty field taken from prev.
func (m Metadata) fillFrom(prev Metadata) Metadata {
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&m.AccountID, prev.AccountID},
		{&m.InstanceType, prev.InstanceType},
		{&m.LifeCycle, prev.LifeCycle},
		{&m.Region, prev.Region},
		{&m.AvailabilityZone, prev.AvailabilityZone},
		{&m.AvailabilityZoneID, prev.AvailabilityZoneID},
		{&m.LocalIPv4, prev.LocalIPv4},
		{&m.PublicIPv4, prev.PublicIPv4},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	return m
}

// IsZero reports whether nothing is known.
func (m Metadata) IsZero() bool { return m == Metadata{} }

// withOverrides returns m with every non-empty override applied.
func (m Metadata) withOverrides(o Overrides) Metadata {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&m.AccountID, o.AccountID)
	set(&m.InstanceID, o.InstanceID)
	set(&m.InstanceType, o.InstanceType)
	set(&m.LifeCycle, o.LifeCycle)
	set(&m.Region, o.Region)
	set(&m.AvailabilityZone, o.AvailabilityZone)
	set(&m.AvailabilityZoneID, o.AvailabilityZoneID)
	set(&m.LocalIPv4, o.LocalIPv4)
	set(&m.PublicIPv4, o.PublicIPv4)
	return m
}

// Resource attribute keys of the OTel semantic conventions set on the node resource.
const (
	AttrCloudProvider         = "cloud.provider"
	AttrCloudPlatform         = "cloud.platform"
	AttrCloudAccountID        = "cloud.account.id"
	AttrCloudRegion           = "cloud.region"
	AttrCloudAvailabilityZone = "cloud.availability_zone"
	AttrHostType              = "host.type"
)

// ResourceAttributes returns the node resource attributes (OTel semantic conventions) that m
// supports; empty values are left out. host.id is not among them: the receiver sets it to the
// machine id, the instance id travels in node_cloud_info.
func (m Metadata) ResourceAttributes() map[string]string {
	attrs := make(map[string]string, 6)
	put := func(k, v string) {
		if v != "" {
			attrs[k] = v
		}
	}
	if p, ok := providerByLabel(m.Provider); ok {
		info := providers[p]
		put(AttrCloudProvider, info.semconvProvider)
		put(AttrCloudPlatform, info.semconvPlatform)
	}
	put(AttrCloudAccountID, m.AccountID)
	put(AttrCloudRegion, m.Region)
	put(AttrCloudAvailabilityZone, m.AvailabilityZone)
	put(AttrHostType, m.InstanceType)
	return attrs
}

func providerByLabel(label string) (Provider, bool) {
	for p := range providers {
		if p.Label() == label {
			return p, true
		}
	}
	return "", false
}

// Label returns the node_cloud_info{provider} value for p ("" when p is unknown). It is a
// switch, not a lookup in providers, because the fetch functions in that table call it.
func (p Provider) Label() string {
	switch p {
	case AWS:
		return "AWS"
	case GCP:
		return "GCP"
	case Azure:
		return "Azure"
	case Hetzner:
		return "Hetzner"
	case DigitalOcean:
		return "DigitalOcean"
	case Oracle:
		return "Oracle"
	case Alibaba:
		return "Alibaba"
	case Scaleway:
		return "Scaleway"
	}
	return ""
}

func isIPv4(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() != nil && !strings.Contains(s, ":")
}
