package metadata

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

func TestMetricsBuilderPerResourceWithStartOverride(t *testing.T) {
	start := pcommon.NewTimestampFromTime(time.Unix(100, 0))
	firstSeen := pcommon.NewTimestampFromTime(time.Unix(150, 0))
	now := pcommon.NewTimestampFromTime(time.Unix(200, 0))
	cfg := DefaultMetricsBuilderConfig()
	cfg.Metrics.ContainerNetLatency.Enabled = false
	mb := NewMetricsBuilder(cfg, receivertest.NewNopSettings(Type), WithStartTime(start))

	mb.RecordContainerNetTCPSuccessfulConnectsDataPoint(now, 3, "10.0.0.1:80", "10.0.0.2:8080")
	mb.RecordContainerNetLatencyDataPoint(now, 0.5, "10.0.0.1") // disabled: dropped
	mb.RecordContainerResourcesMemoryRssDataPoint(now, 4096)
	rb := mb.NewResourceBuilder()
	rb.SetContainerID("/docker/abc")
	rb.SetK8sPodName("") // empty values are not set
	mb.EmitForResource(WithResource(rb.Emit()), WithStartTimeOverride(firstSeen))
	mb.EmitForResource() // nothing recorded: no empty resource
	mb.RecordNodeUptimeDataPoint(now, 12.5)
	md := mb.Emit()

	require.Equal(t, 2, md.ResourceMetrics().Len())
	c := md.ResourceMetrics().At(0)
	assert.Equal(t, map[string]any{"container.id": "/docker/abc"}, c.Resource().Attributes().AsRaw())
	ms := c.ScopeMetrics().At(0).Metrics()
	assert.Equal(t, ScopeName, c.ScopeMetrics().At(0).Scope().Name())
	require.Equal(t, 2, ms.Len())
	byName := map[string]pmetric.Metric{}
	for i := 0; i < ms.Len(); i++ {
		byName[ms.At(i).Name()] = ms.At(i)
	}
	conn := byName["container.net.tcp.successful_connects"]
	assert.True(t, conn.Sum().IsMonotonic())
	dp := conn.Sum().DataPoints().At(0)
	assert.Equal(t, int64(3), dp.IntValue())
	assert.Equal(t, firstSeen, dp.StartTimestamp())
	assert.Equal(t, now, dp.Timestamp())
	assert.Equal(t, map[string]any{"destination": "10.0.0.1:80", "actual_destination": "10.0.0.2:8080"}, dp.Attributes().AsRaw())
	assert.Equal(t, "By", byName["container.resources.memory.rss"].Unit())
	assert.Equal(t, int64(4096), byName["container.resources.memory.rss"].Gauge().DataPoints().At(0).IntValue())

	node := md.ResourceMetrics().At(1).ScopeMetrics().At(0).Metrics()
	require.Equal(t, 1, node.Len())
	assert.Equal(t, 12.5, node.At(0).Gauge().DataPoints().At(0).DoubleValue())

	assert.Equal(t, 0, mb.Emit().ResourceMetrics().Len(), "Emit resets the buffer")
}

func TestLogsBuilderEvent(t *testing.T) {
	lb := NewLogsBuilder(DefaultLogsBuilderConfig(), receivertest.NewNopSettings(Type))
	ts := pcommon.NewTimestampFromTime(time.Unix(300, 0))
	lb.RecordCodexrayLogPatternEvent(ts, plog.SeverityNumberWarn, "disk almost full", "abcd", "disk almost <*>", "warning", "journald", 7)
	rb := lb.NewResourceBuilder()
	rb.SetContainerID("/system.slice/x.service")
	logs := lb.Emit(WithLogsResource(rb.Emit()))
	require.Equal(t, 1, logs.LogRecordCount())
	lr := logs.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	assert.Equal(t, "codexray.log.pattern", lr.EventName())
	assert.Equal(t, "disk almost full", lr.Body().Str())
	assert.Equal(t, plog.SeverityNumberWarn, lr.SeverityNumber())
	assert.Equal(t, map[string]any{"pattern_hash": "abcd", "template": "disk almost <*>", "level": "warning", "source": "journald", "count": int64(7)}, lr.Attributes().AsRaw())

	off := DefaultLogsBuilderConfig()
	off.Events.CodexrayLogPattern.Enabled = false
	lb = NewLogsBuilder(off, receivertest.NewNopSettings(Type))
	lb.RecordCodexrayLogPatternEvent(ts, plog.SeverityNumberInfo, "x", "h", "t", "info", "docker", 1)
	assert.Equal(t, 0, lb.Emit().LogRecordCount())
}

func TestRecordWithStart(t *testing.T) {
	builderStart := pcommon.NewTimestampFromTime(time.Unix(100, 0))
	seriesStart := pcommon.NewTimestampFromTime(time.Unix(150, 0))
	now := pcommon.NewTimestampFromTime(time.Unix(200, 0))
	mb := NewMetricsBuilder(DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(Type), WithStartTime(builderStart))
	mb.RecordContainerNetTCPFailedConnectsDataPointWithStart(seriesStart, now, 2, "10.0.0.1:80")
	mb.RecordContainerNetTCPFailedConnectsDataPoint(now, 5, "10.0.0.2:80")
	dps := mb.Emit().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints()
	require.Equal(t, 2, dps.Len())
	assert.Equal(t, seriesStart, dps.At(0).StartTimestamp())
	assert.Equal(t, builderStart, dps.At(1).StartTimestamp())
}
