package codexrayreceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/cloudmeta"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

var (
	_ source                 = (*cloudSource)(nil)
	_ nodeRecorder           = (*cloudSource)(nil)
	_ nodeDescriber          = (*cloudSource)(nil)
	_ containerNodeDescriber = (*cloudSource)(nil)
)

// cloudSource publishes the node's cloud identity: node_cloud_info and the cloud.* / host.type
// attributes of the node resource. Both appear once the metadata service has answered (or at
// once when only overrides are configured); until then, and on machines outside any cloud,
// the node simply has none.
type cloudSource struct {
	cfg     cloudmeta.Config
	logger  *zap.Logger
	watcher *cloudmeta.Watcher
}

func newCloudSource(env sourceEnv) source {
	return &cloudSource{cfg: env.cfg.Cloud, logger: env.settings.Logger.With(zap.String("source", "cloud"))}
}

func (s *cloudSource) name() string  { return "cloud" }
func (s *cloudSource) enabled() bool { return s.cfg.Enabled }

// start launches the watcher; it never waits for the metadata service.
func (s *cloudSource) start(ctx context.Context, _ component.Host) error {
	s.watcher = cloudmeta.NewWatcher(s.cfg, s.logger)
	s.watcher.Start(ctx)
	return nil
}

func (s *cloudSource) shutdown(context.Context) error {
	if s.watcher != nil {
		s.watcher.Shutdown()
	}
	return nil
}

func (s *cloudSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	st := s.watcher.Stats()
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.FailedRequests), "cloud", "request_failed")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.OversizedResponses), "cloud", "response_too_large")
	md, ok := s.watcher.Current()
	if !ok {
		return
	}
	mb.RecordNodeCloudInfoDataPoint(now, 1, md.Provider, md.AccountID, md.InstanceID, md.InstanceType, md.LifeCycle,
		md.Region, md.AvailabilityZone, md.AvailabilityZoneID, md.LocalIPv4, md.PublicIPv4)
}

func (s *cloudSource) describeNode(rb *metadata.ResourceBuilder) {
	md, ok := s.watcher.Current()
	if !ok {
		return
	}
	rb.SetHostID(md.InstanceID) // the semantic conventions' host.id on a cloud
	// Only attributes with a value: an empty cloud.region is worse than none.
	attrs := md.ResourceAttributes()
	for key, set := range map[string]func(string){
		cloudmeta.AttrCloudProvider:         rb.SetCloudProvider,
		cloudmeta.AttrCloudPlatform:         rb.SetCloudPlatform,
		cloudmeta.AttrCloudAccountID:        rb.SetCloudAccountID,
		cloudmeta.AttrCloudRegion:           rb.SetCloudRegion,
		cloudmeta.AttrCloudAvailabilityZone: rb.SetCloudAvailabilityZone,
		cloudmeta.AttrHostType:              rb.SetHostType,
	} {
		if v, ok := attrs[key]; ok {
			set(v)
		}
	}
}

// describeContainerNode names the node of a container resource the way a cloud names it:
// host.id is the instance id, and coroot-node-agent's az and region labels are set once the
// metadata has both (it adds neither otherwise).
func (s *cloudSource) describeContainerNode(rb *metadata.ResourceBuilder) {
	md, ok := s.watcher.Current()
	if !ok {
		return
	}
	rb.SetHostID(md.InstanceID)
	if md.Region != "" && md.AvailabilityZone != "" {
		rb.SetCorootAz(md.AvailabilityZone)
		rb.SetCorootRegion(md.Region)
	}
}
