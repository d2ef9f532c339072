package cloudmeta

import (
	"errors"
	"net/http"
)

// Alibaba Cloud ECS metadata service at 100.100.100.200: EC2-like text values under
// /latest/meta-data/. In hardened mode it requires a session token obtained exactly like
// IMDSv2 (PUT /latest/api/token) under Alibaba's own header names; normal mode answers plain
// GETs, so a refused token falls back to them.
const (
	alibabaTokenTTLHeader = "X-Aliyun-Ecs-Metadata-Token-Ttl-Seconds"
	alibabaTokenHeader    = "X-Aliyun-Ecs-Metadata-Token"
	alibabaMetaDataPath   = "/latest/meta-data/"
)

func fetchAlibaba(f *fetcher) (Metadata, error) {
	header := http.Header{}
	token, ok, err := imdsToken(f, alibabaTokenTTLHeader)
	if err != nil {
		return Metadata{}, err
	}
	if ok {
		header.Set(alibabaTokenHeader, token)
	}
	id, err := getText(f, alibabaMetaDataPath+"instance-id", header)
	if err != nil {
		return Metadata{}, err
	}
	m := Metadata{Provider: Alibaba.Label(), InstanceID: id}
	var errs []error
	optional := func(path string, dst *string) {
		v, err := getOptionalText(f, alibabaMetaDataPath+path, header)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*dst = v
	}
	optional("owner-account-id", &m.AccountID)
	optional("instance/instance-type", &m.InstanceType) // ecs.g6e.large
	optional("region-id", &m.Region)                    // cn-hangzhou
	optional("zone-id", &m.AvailabilityZone)            // cn-hangzhou-i
	optional("private-ipv4", &m.LocalIPv4)
	// An elastic IP, when bound, is the address the world sees; otherwise the fixed public IP.
	optional("eipv4", &m.PublicIPv4)
	if m.PublicIPv4 == "" {
		optional("public-ipv4", &m.PublicIPv4)
	}
	keepIPv4("local ipv4", &m.LocalIPv4, &errs)
	keepIPv4("public ipv4", &m.PublicIPv4, &errs)
	return m, errors.Join(errs...)
}
