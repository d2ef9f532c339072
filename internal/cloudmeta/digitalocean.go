package cloudmeta

import "errors"

// DigitalOcean droplet metadata: a directory-like tree of text values under /metadata/v1/.
// Single values are fetched rather than /metadata/v1.json because that document embeds user
// data (up to 64 KiB on its own). Droplet metadata has no instance type and no account.
const doPrefix = "/metadata/v1/"

func fetchDigitalOcean(f *fetcher) (Metadata, error) {
	id, err := getText(f, doPrefix+"id", nil)
	if err != nil {
		return Metadata{}, err
	}
	m := Metadata{Provider: DigitalOcean.Label(), InstanceID: id}
	var errs []error
	optional := func(path string, dst *string) {
		v, err := getOptionalText(f, doPrefix+path, nil)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*dst = v
	}
	optional("region", &m.Region) // nyc3; DigitalOcean has no zones below a region
	optional("interfaces/private/0/ipv4/address", &m.LocalIPv4)
	optional("interfaces/public/0/ipv4/address", &m.PublicIPv4)
	keepIPv4("local ipv4", &m.LocalIPv4, &errs)
	keepIPv4("public ipv4", &m.PublicIPv4, &errs)
	return m, errors.Join(errs...)
}
