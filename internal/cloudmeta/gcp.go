package cloudmeta

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Google Compute Engine metadata server: plain-text values under /computeMetadata/v1/, each
// request carrying "Metadata-Flavor: Google"; the server answers with the same header, which
// tells it apart from anything else listening on the address. Single values are fetched rather
// than ?recursive=true because the recursive instance document includes user attributes
// (startup scripts, ssh keys) of unbounded size.
const (
	gcpFlavorHeader = "Metadata-Flavor"
	gcpFlavor       = "Google"
	gcpPrefix       = "/computeMetadata/v1/"
)

var gcpHeader = http.Header{gcpFlavorHeader: {gcpFlavor}}

// gcpGet fetches a text value and checks that a Google metadata server answered.
func gcpGet(f *fetcher, path string) (string, error) {
	b, h, err := f.do(http.MethodGet, gcpPrefix+path, gcpHeader)
	if err != nil {
		return "", err
	}
	if h.Get(gcpFlavorHeader) != gcpFlavor {
		return "", fmt.Errorf("GET %s%s: answer without %s: %s header: %w", gcpPrefix, path, gcpFlavorHeader, gcpFlavor, ErrMalformed)
	}
	v, err := parseText(b)
	if err != nil {
		return "", fmt.Errorf("GET %s%s: %w", gcpPrefix, path, err)
	}
	return v, nil
}

func gcpGetOptional(f *fetcher, path string) (string, error) {
	v, err := gcpGet(f, path)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return v, err
}

// gcpLifeCycle maps scheduling/provisioning-model (SPOT, STANDARD; absent on old instances)
// and scheduling/preemptible (TRUE, FALSE) to a life cycle.
func gcpLifeCycle(provisioningModel, preemptible string) string {
	switch {
	case strings.EqualFold(provisioningModel, "SPOT"):
		return "spot"
	case strings.EqualFold(preemptible, "TRUE"):
		return "preemptible"
	case provisioningModel != "" || preemptible != "":
		return "on-demand"
	}
	return ""
}

func fetchGCP(f *fetcher) (Metadata, error) {
	id, err := gcpGet(f, "instance/id")
	if err != nil {
		return Metadata{}, err
	}
	m := Metadata{Provider: GCP.Label(), InstanceID: id}
	var errs []error
	value := func(path string, optional bool) string {
		var v string
		var err error
		if optional {
			v, err = gcpGetOptional(f, path)
		} else {
			v, err = gcpGet(f, path)
		}
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	m.AccountID = value("project/project-id", false)
	// "projects/123456789/machineTypes/e2-standard-4" and "projects/123456789/zones/europe-west1-b"
	m.InstanceType = lastSegment(value("instance/machine-type", false))
	m.AvailabilityZone = lastSegment(value("instance/zone", false))
	m.Region = regionOfZone(m.AvailabilityZone)
	m.LifeCycle = gcpLifeCycle(value("instance/scheduling/provisioning-model", true), value("instance/scheduling/preemptible", true))
	m.LocalIPv4 = value("instance/network-interfaces/0/ip", true)
	m.PublicIPv4 = value("instance/network-interfaces/0/access-configs/0/external-ip", true)
	keepIPv4("local ipv4", &m.LocalIPv4, &errs)
	keepIPv4("public ipv4", &m.PublicIPv4, &errs)
	return m, errors.Join(errs...)
}
