package codexrayreceiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logpatterns"
	"github.com/codexray/codexray-node-agent/internal/logs"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// logsCapture collects what the source pushes to the logs pipeline.
type logsCapture struct {
	mu   sync.Mutex
	logs []plog.Logs
}

func (c *logsCapture) emit(_ context.Context, l plog.Logs) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logs = append(c.logs, l)
	return nil
}

// filesOnly makes the logs section read only the *.log files of dir, fast.
func filesOnly(t *testing.T, lc *logs.Config, dir string) {
	t.Helper()
	lc.Docker.Enabled, lc.CRI.Enabled, lc.Journald.Enabled = false, false, false
	lc.Files.Include = []string{filepath.Join(dir, "*.log")}
	lc.Files.AttributeWriters = false
	lc.PollInterval, lc.DiscoveryInterval = 10*time.Millisecond, 20*time.Millisecond
	lc.PatternsFlushInterval = time.Hour // flushed by hand
	require.NoError(t, lc.Validate())
}

func newTestLogsSource(t *testing.T, dir string, capture *logsCapture) *logsSource {
	t.Helper()
	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	filesOnly(t, &rcfg.Logs, dir)
	env := sourceEnv{
		cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type), registry: &containers.Registry{},
		node: newNodeSource(rcfg.Node, time.Now(), "", nil),
	}
	if capture != nil {
		env.emitLogs = capture.emit
	}
	src := newLogsSource(env).(*logsSource)
	require.Equal(t, "logs", src.name())
	require.True(t, src.enabled())
	return src
}

// messageCounts returns "<file> <level>" → count for every container.log.messages point.
func messageCounts(md pmetric.Metrics) map[string]int64 {
	out := map[string]int64{}
	for _, p := range metricstest.Points(md) {
		if p.Name != "container.log.messages" {
			continue
		}
		src, _ := p.Attributes.Get("source")
		lvl, _ := p.Attributes.Get("level")
		out[filepath.Base(src.Str())+" "+lvl.Str()] += int64(p.Value)
	}
	return out
}

func nodeCounts(src *logsSource) map[string]int64 {
	mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
	src.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
	return messageCounts(mb.Emit())
}

func appendTo(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer f.Close()
	for _, l := range lines {
		_, err := f.WriteString(l + "\n")
		require.NoError(t, err)
	}
}

func TestLogsSourceLifecycle(t *testing.T) {
	t.Run("shutdown without start", func(t *testing.T) {
		src := newTestLogsSource(t, t.TempDir(), nil)
		require.NoError(t, src.shutdown(context.Background()))
		require.NoError(t, src.shutdown(context.Background()))
	})
	t.Run("record before start is a no-op", func(t *testing.T) {
		src := newTestLogsSource(t, t.TempDir(), nil)
		mb := metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
		src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), &containers.Container{ID: "/docker/x"})
		src.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
		assert.Equal(t, 0, mb.Emit().MetricCount())
	})
}

func TestLogsSourceCountsAndPatternRecords(t *testing.T) {
	dir := t.TempDir()
	capture := &logsCapture{}
	src := newTestLogsSource(t, dir, capture)
	require.NoError(t, src.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, src.shutdown(context.Background())) })
	time.Sleep(50 * time.Millisecond) // past the launch discovery: the file below is new

	path := filepath.Join(dir, "billing.log")
	for i := range 4 {
		appendTo(t, path, fmt.Sprintf("ERROR payment %d declined by gateway", i))
	}
	appendTo(t, path, "INFO settlement batch closed")
	want := map[string]int64{"billing.log error": 4, "billing.log info": 1}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, nodeCounts(src)) }, 5*time.Second, 20*time.Millisecond,
		"counts: %v", nodeCounts(src))

	src.flush(context.Background(), time.Now())
	capture.mu.Lock()
	require.Len(t, capture.logs, 1)
	records := capture.logs[0]
	capture.mu.Unlock()
	require.Equal(t, 2, records.LogRecordCount())
	var got []string
	lrs := records.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
	for i := 0; i < lrs.Len(); i++ {
		lr := lrs.At(i)
		a := lr.Attributes()
		tpl, _ := a.Get("template")
		lvl, _ := a.Get("level")
		cnt, _ := a.Get("count")
		srcAttr, _ := a.Get("source")
		hash, _ := a.Get("pattern_hash")
		assert.Equal(t, "codexray.log.pattern", lr.EventName())
		assert.Len(t, hash.Str(), 16)
		assert.Equal(t, path, srcAttr.Str())
		got = append(got, fmt.Sprintf("%s|%s|%d|%s|%s", lr.SeverityNumber(), lvl.Str(), cnt.Int(), tpl.Str(), lr.Body().Str()))
	}
	sort.Strings(got)
	assert.Equal(t, []string{
		// The level word is the line's header: the template is the message after it.
		"Error|error|4|payment <*> declined by gateway|ERROR payment 0 declined by gateway",
		"Info|info|1|settlement batch closed|INFO settlement batch closed",
	}, got)

	// Nothing new: the next flush emits no record.
	src.flush(context.Background(), time.Now())
	capture.mu.Lock()
	defer capture.mu.Unlock()
	assert.Equal(t, 0, capture.logs[len(capture.logs)-1].LogRecordCount())
}

// container.log.messages counts of a stream that logs.stream_expiry forgot start again from
// zero: the new series carries a later start, never the receiver's start under which the
// count was already higher.
func TestLogMessageCountsStartWithTheirStream(t *testing.T) {
	receiverStart := time.Now().Add(-time.Hour)
	newMB := func() *metadata.MetricsBuilder {
		return metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type),
			metadata.WithStartTime(pcommon.NewTimestampFromTime(receiverStart)))
	}
	// point returns the one container.log.messages point recorded for web.
	const web containers.ID = "/docker/web"
	point := func(patterns *logs.Patterns) metricstest.Point {
		mb := newMB()
		recordMessageCounts(mb, pcommon.NewTimestampFromTime(time.Now()), patterns, web)
		points := metricstest.Points(mb.Emit())
		require.Len(t, points, 1)
		require.Equal(t, "container.log.messages", points[0].Name)
		return points[0]
	}
	patterns := logs.NewPatterns(logpatterns.DefaultConfig(), logs.MultilineConfig{})
	msg := func() {
		patterns.Message(&logs.Message{Container: web, Source: logs.SourceStdoutStderr, Text: "INFO request served"})
	}
	created := time.Now()
	for range 5 {
		msg()
	}
	first := point(patterns)
	assert.Equal(t, 5.0, first.Value)
	assert.False(t, first.Start.AsTime().Before(created), "start %s is before the stream was created (%s)", first.Start.AsTime(), created)

	require.Equal(t, 1, patterns.Expire(time.Now().Add(time.Millisecond)))
	time.Sleep(2 * time.Millisecond)
	msg()
	second := point(patterns)
	assert.Equal(t, 1.0, second.Value)
	assert.Greater(t, second.Start, first.Start, "the count fell from 5 to 1: its start must move")
}
