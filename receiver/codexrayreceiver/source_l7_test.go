package codexrayreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// TestRecordL7: one container's L7 aggregates become coroot's metrics: counters per
// destination and status, histograms with coroot's buckets, inbound series with status only,
// DNS with its own labels, messages with method; every protocol that has metrics has a row.
func TestRecordL7(t *testing.T) {
	start := time.Unix(1700000000, 0)
	now := pcommon.NewTimestampFromTime(start.Add(time.Minute))
	var h requeststats.Histogram
	h.Counts[0], h.Counts[3], h.Counts[len(h.Counts)-1] = 2, 1, 1
	h.Sum, h.Count = 11.04, 4
	st := requeststats.ContainerStats{
		Requests: []requeststats.RequestCount{
			{Protocol: l7.ProtocolHTTP, Destination: "10.0.0.1:80", ActualDestination: "10.0.0.2:80", Status: l7.HTTPStatus(503), Count: 3, Start: start},
			{Protocol: l7.ProtocolHTTP, Inbound: true, Status: l7.GRPCStatus(5), Count: 2, Start: start},
			{Protocol: l7.ProtocolPostgres, Destination: "db:5432", ActualDestination: "10.0.0.3:5432", Status: l7.StatusFailed, Count: 1, Start: start},
			{Protocol: l7.ProtocolNATS, Destination: "10.0.0.4:4222", ActualDestination: "10.0.0.4:4222", Status: l7.StatusOK, Method: l7.MethodProduce, Count: 7, Start: start},
		},
		Durations: []requeststats.DurationHistogram{
			{Protocol: l7.ProtocolHTTP, Destination: "10.0.0.1:80", ActualDestination: "10.0.0.2:80", Histogram: h, Start: start},
			{Protocol: l7.ProtocolRedis, Inbound: true, Histogram: h, Start: start},
		},
		DNS: []requeststats.DNSCount{
			{RequestType: "TypeA", Domain: "example.com", Status: l7.DNSStatus(3), Count: 5, Start: start},
		},
		DNSDurations: []requeststats.DurationHistogram{{Protocol: l7.ProtocolDNS, Histogram: h, Start: start}},
	}
	mb := newTestMetricsBuilder()
	recordL7(mb, now, &st)
	md := mb.Emit()
	got := metricstest.Values(md)
	for key, v := range map[string]float64{
		`container.http.requests{actual_destination=10.0.0.2:80,destination=10.0.0.1:80,status=503}`:                   3,
		`container.http.inbound_requests{status=grpc:NotFound}`:                                                        2,
		`container.postgres.queries{actual_destination=10.0.0.3:5432,destination=db:5432,status=failed}`:               1,
		`container.nats.messages{actual_destination=10.0.0.4:4222,destination=10.0.0.4:4222,method=produce,status=ok}`: 7,
		`container.dns.requests{domain=example.com,request_type=TypeA,status=nxdomain}`:                                5,
	} {
		assert.Equal(t, v, got[key], key)
	}
	hist := metricstest.Metric(t, md, "container.http.requests.duration_seconds_total").Histogram()
	require.Equal(t, 1, hist.DataPoints().Len())
	dp := hist.DataPoints().At(0)
	assert.Equal(t, l7.HistogramBuckets[:], dp.ExplicitBounds().AsRaw())
	assert.Equal(t, h.Counts[:], dp.BucketCounts().AsRaw())
	assert.Equal(t, uint64(4), dp.Count())
	assert.InDelta(t, 11.04, dp.Sum(), 1e-9)
	assert.Equal(t, pcommon.NewTimestampFromTime(start), dp.StartTimestamp())
	v, _ := dp.Attributes().Get("destination")
	assert.Equal(t, "10.0.0.1:80", v.Str())
	assert.Equal(t, 1, metricstest.Metric(t, md, "container.redis.inbound_queries.duration_seconds_total").Histogram().DataPoints().Len())
	assert.Equal(t, 1, metricstest.Metric(t, md, "container.dns.requests.duration_seconds_total").Histogram().DataPoints().Len())

	// Every protocol with request metrics has its recorders.
	for p := l7.ProtocolHTTP; p.Valid(); p++ {
		switch p {
		case l7.ProtocolHTTP2, l7.ProtocolDNS, l7.ProtocolRabbitMQ, l7.ProtocolNATS:
			continue // counted as HTTP; own labels
		}
		if _, ok := l7Metrics[p]; !ok {
			t.Errorf("no recorders for %s", p)
		}
	}
}
