package codexrayreceiver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/cloudmeta"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// An imitation of the GCP metadata server on loopback (the cloudmeta package tests every
// provider; this test is about what the receiver makes of an answer).
func gcpImitation(t *testing.T) *httptest.Server {
	t.Helper()
	values := map[string]string{
		"/computeMetadata/v1/project/project-id":                                         "my-project-4711",
		"/computeMetadata/v1/instance/id":                                                "4520031799277581759",
		"/computeMetadata/v1/instance/machine-type":                                      "projects/734918273645/machineTypes/e2-standard-4",
		"/computeMetadata/v1/instance/zone":                                              "projects/734918273645/zones/europe-west1-b",
		"/computeMetadata/v1/instance/scheduling/preemptible":                            "FALSE",
		"/computeMetadata/v1/instance/network-interfaces/0/ip":                           "10.132.0.7",
		"/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip": "198.51.100.17",
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "", http.StatusForbidden)
			return
		}
		v, ok := values[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		_, _ = w.Write([]byte(v))
	}))
	t.Cleanup(s.Close)
	return s
}

func newTestCloudSource(t *testing.T, cfg cloudmeta.Config) *cloudSource {
	t.Helper()
	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	rcfg.Cloud = cfg
	src := newCloudSource(sourceEnv{cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type)}).(*cloudSource)
	require.Equal(t, "cloud", src.name())
	return src
}

func TestCloudSourceRecordsNodeCloudInfoAndResource(t *testing.T) {
	s := gcpImitation(t)
	cfg := cloudmeta.DefaultConfig()
	cfg.Provider, cfg.Endpoint = "gcp", s.URL
	cfg.Overrides.AvailabilityZoneID = "euw1-b-id" // overrides reach the metric too
	src := newTestCloudSource(t, cfg)
	require.True(t, src.enabled())
	require.NoError(t, src.start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, src.shutdown(context.Background())) }()
	require.Eventually(t, func() bool { _, ok := src.watcher.Current(); return ok }, 5*time.Second, 10*time.Millisecond)

	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	src.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
	rb := mb.NewResourceBuilder()
	src.describeNode(rb)
	md := mb.Emit(metadata.WithResource(rb.Emit()))

	require.Equal(t, 1, md.ResourceMetrics().Len())
	res := md.ResourceMetrics().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{
		"cloud.provider":          "gcp",
		"cloud.platform":          "gcp_compute_engine",
		"cloud.account.id":        "my-project-4711",
		"cloud.region":            "europe-west1",
		"cloud.availability_zone": "europe-west1-b",
		"host.type":               "e2-standard-4",
		"host.id":                 "4520031799277581759", // the semantic conventions: the instance id on a cloud
	}, res)

	// Container resources name the node by its instance id too, and carry coroot's az and
	// region labels (when switched on) once the metadata has both.
	crb := allAttributes()
	src.describeContainerNode(crb)
	assert.Equal(t, map[string]any{"host.id": "4520031799277581759", "az": "europe-west1-b", "region": "europe-west1"},
		crb.Emit().Attributes().AsRaw())

	info := metricstest.Metric(t, md, "node.cloud_info")
	require.Equal(t, 1, info.Gauge().DataPoints().Len())
	dp := info.Gauge().DataPoints().At(0)
	assert.Equal(t, int64(1), dp.IntValue())
	assert.Equal(t, map[string]any{
		"provider": "GCP", "account_id": "my-project-4711", "instance_id": "4520031799277581759",
		"instance_type": "e2-standard-4", "instance_life_cycle": "on-demand", "region": "europe-west1",
		"availability_zone": "europe-west1-b", "availability_zone_id": "euw1-b-id",
		"local_ipv4": "10.132.0.7", "public_ipv4": "198.51.100.17",
	}, dp.Attributes().AsRaw())
	// Request failures are left out: an optional path the imitation lacks is asked again after
	// a back-off, so their count depends on timing.
	metricstest.Golden(t, md, "testdata/golden/cloud_gcp.txt", "node.cloud_info")
}

func TestCloudSourceOutsideACloudAddsNothing(t *testing.T) {
	cfg := cloudmeta.DefaultConfig()
	cfg.DMIRoot = t.TempDir() // a machine without DMI, like the project's test VMs
	src := newTestCloudSource(t, cfg)
	require.NoError(t, src.start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, src.shutdown(context.Background())) }()

	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	mb.RecordNodeUptimeDataPoint(pcommon.NewTimestampFromTime(time.Now()), 1) // something to emit
	src.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
	rb := mb.NewResourceBuilder()
	src.describeNode(rb)
	md := mb.Emit(metadata.WithResource(rb.Emit()))
	require.Equal(t, 1, md.ResourceMetrics().Len())
	assert.Empty(t, md.ResourceMetrics().At(0).Resource().Attributes().AsRaw())
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := 0; i < ms.Len(); i++ {
		assert.NotEqual(t, "node.cloud_info", ms.At(i).Name())
	}
}

func TestCloudSourceShutdownWithoutStart(t *testing.T) {
	src := newTestCloudSource(t, cloudmeta.DefaultConfig())
	require.NoError(t, src.shutdown(context.Background()))
}
