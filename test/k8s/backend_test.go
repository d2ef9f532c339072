package k8s

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
)

// TestBackendKeepsWhatItIsSent sends metrics and logs over a real gRPC connection and reads
// them back flattened.
func TestBackendKeepsWhatItIsSent(t *testing.T) {
	b, err := StartBackend()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	// gzip, as the collector's OTLP exporter sends by default.
	conn, err := grpc.NewClient(b.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ts := time.Unix(1700000000, 0)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("k8s.pod.name", "web-1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	g := ms.AppendEmpty()
	g.SetName("container.resources.memory.limit")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetIntValue(67108864)
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	s := ms.AppendEmpty()
	s.SetName("container.net.tcp.successful_connects")
	sdp := s.SetEmptySum().DataPoints().AppendEmpty()
	sdp.SetDoubleValue(2.5)
	sdp.Attributes().PutStr("destination", "10.96.77.10:80")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatal(err)
	}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("k8s.pod.name", "logger")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.Body().SetStr("ERROR boom")
	lr.Attributes().PutStr("level", "error")
	if _, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(ld)); err != nil {
		t.Fatal(err)
	}

	all := b.Points(func(*Point) bool { return true })
	if len(all) != 2 {
		t.Fatalf("got %d points, want 2: %+v", len(all), all)
	}
	lim := b.Points(func(p *Point) bool { return p.Metric == "container.resources.memory.limit" })
	if len(lim) != 1 || lim[0].Value != 67108864 || lim[0].Resource["k8s.pod.name"] != "web-1" || !lim[0].Time.Equal(ts) {
		t.Errorf("gauge point %+v", lim)
	}
	con := b.Points(func(p *Point) bool { return p.Attrs["destination"] == "10.96.77.10:80" })
	if len(con) != 1 || con[0].Value != 2.5 {
		t.Errorf("sum point %+v", con)
	}
	logs := b.Logs(func(r *LogRecord) bool { return r.Attrs["level"] == "error" })
	if len(logs) != 1 || logs[0].Body != "ERROR boom" || logs[0].Resource["k8s.pod.name"] != "logger" {
		t.Errorf("log records %+v", logs)
	}
}
