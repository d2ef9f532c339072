// Package cloudmeta detects the cloud provider of the node from DMI files and asks its instance
// metadata service who the node is: account, instance, type, region, zone, lifecycle and IPs.
//
// It owns detection (Detect, reading sys_vendor, product_name, bios_*, board_vendor,
// chassis_asset_tag and product_uuid under a configurable root) and one client per provider:
// AWS (IMDSv2 session token with IMDSv1 fallback), GCP, Azure, Hetzner, DigitalOcean, Oracle
// Cloud (IMDS v2), Alibaba Cloud (hardened-mode token with fallback) and Scaleway. It touches
// nothing but those files and the metadata endpoint; it knows nothing of pdata or the receiver.
//
// The receiver uses it through a Watcher:
//
//	w := cloudmeta.NewWatcher(cfg, logger) // cfg is the `cloud` config section
//	w.Start(ctx)                           // returns at once; fetching runs in a goroutine
//	md, ok := w.Current()                  // at each collection; ok is false until known
//	md.ResourceAttributes()                // cloud.provider, cloud.platform, cloud.account.id,
//	                                       // cloud.region, cloud.availability_zone, host.type
//	w.Stats()                              // attempts, failures, oversized responses, last error
//	w.Shutdown()                           // cancels in-flight requests, waits; idempotent
//
// Behaviour worth knowing:
//   - Start never waits for the network. Each HTTP request is bounded by cfg.Timeout (1s) and
//     each body by cfg.MaxResponseBytes (64 KiB); failures are retried with exponential
//     back-off (1s doubling to 5m), successes refreshed every cfg.RefreshInterval (1h).
//   - A result carrying an instance id is published even when an optional field failed; the
//     fetch is then retried with back-off. A failed refresh keeps the last good value.
//   - Where DMI only hints at a provider (Hyper-V without Azure's asset tag, Xen with an
//     ec2-looking UUID) the first fetch is a probe: no answer means "not in a cloud", logged
//     once at info level, and asked again only after the refresh interval.
//   - A machine outside any cloud (no DMI, or DMI of another vendor) makes no request and
//     logs one info line; Current reports nothing unless overrides are configured.
//   - Overrides win over fetched values; they are published alone only when there is no
//     provider to ask, so one node never shows two node_cloud_info series.
//   - Metadata.Provider uses coroot-node-agent's label spelling (AWS, GCP, Azure, Hetzner,
//     DigitalOcean, Oracle, Alibaba, Scaleway); ResourceAttributes maps it to the OTel
//     semantic-convention values (aws, gcp, azure, hetzner, oracle_cloud, alibaba_cloud, ...).
//
// Response shapes follow each provider's public documentation; testdata/imds holds one
// recorded answer per path and testdata/dmi one DMI tree per provider.
package cloudmeta
