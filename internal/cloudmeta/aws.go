package cloudmeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// AWS EC2 instance metadata service. IMDSv2 first: PUT a session token, then send it with
// every GET. When the token is refused (IMDSv2 disabled, an old emulator) or its answer never
// arrives (hop limit 1 seen from a container), fall back to IMDSv1 plain GETs.
const (
	awsTokenPath       = "/latest/api/token"
	awsTokenTTLHeader  = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	awsTokenHeader     = "X-Aws-Ec2-Metadata-Token"
	awsTokenTTLSeconds = "21600"
	awsIdentityPath    = "/latest/dynamic/instance-identity/document"
	awsMetaDataPath    = "/latest/meta-data/"
)

// awsIdentityDocument holds the fields we use of the instance identity document.
type awsIdentityDocument struct {
	AccountID        string `json:"accountId"`
	InstanceID       string `json:"instanceId"`
	InstanceType     string `json:"instanceType"`
	Region           string `json:"region"`
	AvailabilityZone string `json:"availabilityZone"`
	PrivateIP        string `json:"privateIp"`
}

// parseAWSIdentityDocument decodes the instance identity document; an instance id is required.
func parseAWSIdentityDocument(b []byte) (Metadata, error) {
	var doc awsIdentityDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		return Metadata{}, fmt.Errorf("instance identity document: %w: %w", err, ErrMalformed)
	}
	if doc.InstanceID == "" {
		return Metadata{}, fmt.Errorf("instance identity document has no instanceId: %w", ErrMalformed)
	}
	m := Metadata{
		Provider:         AWS.Label(),
		AccountID:        doc.AccountID,
		InstanceID:       doc.InstanceID,
		InstanceType:     doc.InstanceType,
		Region:           doc.Region,
		AvailabilityZone: doc.AvailabilityZone,
	}
	// privateIp is an IPv6 address on IPv6-only instances: keep only IPv4 here.
	if isIPv4(doc.PrivateIP) {
		m.LocalIPv4 = doc.PrivateIP
	}
	if err := checkFields(m); err != nil {
		return Metadata{}, fmt.Errorf("instance identity document: %w", err)
	}
	return m, nil
}

// imdsToken asks for an IMDSv2-style session token (AWS and Alibaba share the protocol with
// different header names). ok=false means "use v1"; err is set only when the caller's
// context is done.
func imdsToken(f *fetcher, ttlHeader string) (token string, ok bool, err error) {
	b, _, err := f.do(http.MethodPut, awsTokenPath, http.Header{ttlHeader: {awsTokenTTLSeconds}})
	if err != nil {
		if f.ctx.Err() != nil {
			return "", false, f.ctx.Err()
		}
		return "", false, nil //nolint:nilerr // no token: the caller falls back to IMDSv1
	}
	t, perr := parseText(b)
	if perr != nil {
		return "", false, nil //nolint:nilerr // a malformed token is no token: IMDSv1
	}
	return t, true, nil
}

func fetchAWS(f *fetcher) (Metadata, error) {
	header := http.Header{}
	token, ok, err := imdsToken(f, awsTokenTTLHeader)
	if err != nil {
		return Metadata{}, err
	}
	if ok {
		header.Set(awsTokenHeader, token)
	}
	b, err := get(f, awsIdentityPath, header)
	if err != nil {
		return Metadata{}, err
	}
	m, err := parseAWSIdentityDocument(b)
	if err != nil {
		return Metadata{}, err
	}
	// The rest is optional: 404 leaves the field empty, other failures are reported so the
	// watcher retries, while what is known is kept.
	var errs []error
	optional := func(path string, dst *string, isIP bool) {
		v, err := getOptionalText(f, awsMetaDataPath+path, header)
		if err == nil && isIP {
			err = checkIPv4(path, v)
		}
		if err != nil {
			errs = append(errs, err)
			return
		}
		if v != "" {
			*dst = v
		}
	}
	optional("placement/availability-zone-id", &m.AvailabilityZoneID, false)
	optional("instance-life-cycle", &m.LifeCycle, false)
	optional("local-ipv4", &m.LocalIPv4, true)
	optional("public-ipv4", &m.PublicIPv4, true)
	return m, errors.Join(errs...)
}
