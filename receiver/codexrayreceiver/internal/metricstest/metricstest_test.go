package metricstest

import (
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func sample() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("container.id", "/docker/web")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	sum := ms.AppendEmpty()
	sum.SetName("container.net.tcp.retransmits")
	dp := sum.SetEmptySum().DataPoints().AppendEmpty()
	dp.SetIntValue(3)
	dp.SetStartTimestamp(pcommon.Timestamp(10))
	dp.SetTimestamp(pcommon.Timestamp(20))
	dp.Attributes().PutStr("destination", "10.0.0.1:80")
	dp.Attributes().PutStr("actual_destination", "10.0.0.2:80")
	g := ms.AppendEmpty()
	g.SetName("container.info")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	node := md.ResourceMetrics().AppendEmpty()
	node.Resource().Attributes().PutStr("host.name", "node-a")
	up := node.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	up.SetName("node.uptime")
	up.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(12.5)
	return md
}

func TestPointsAndLookups(t *testing.T) {
	md := sample()
	points := Points(md)
	if len(points) != 3 {
		t.Fatalf("%d points, want 3", len(points))
	}
	p := points[0]
	if p.Key() != "container.net.tcp.retransmits{actual_destination=10.0.0.2:80,destination=10.0.0.1:80}" ||
		p.Value != 3 || p.Start != 10 || p.Time != 20 || p.Type != pmetric.MetricTypeSum {
		t.Errorf("first point %+v", p)
	}
	want := map[string]float64{
		"container.net.tcp.retransmits{actual_destination=10.0.0.2:80,destination=10.0.0.1:80}": 3,
		"container.info": 1,
		"node.uptime":    12.5,
	}
	got := Values(md)
	if len(got) != len(want) {
		t.Fatalf("Values = %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Values[%s] = %v, want %v", k, got[k], v)
		}
	}
	if n := Named(md, "node.uptime"); len(n) != 1 || n[""] != 12.5 {
		t.Errorf("Named = %v", n)
	}
	if m := Metric(t, md, "container.info"); m.Type() != pmetric.MetricTypeGauge {
		t.Errorf("Metric returned %s", m.Name())
	}
	one, ok := Resource(md, "host.name", "node-a")
	if !ok || len(Points(one)) != 1 {
		t.Errorf("Resource(host.name=node-a) = %v, %v", ok, Points(one))
	}
	if _, ok := Resource(md, "host.name", "node-b"); ok {
		t.Error("Resource found a node that is not there")
	}
}

func TestGolden(t *testing.T) {
	want := "resource {container.id=/docker/web}\n" +
		"  container.info = 1\n" +
		"  container.net.tcp.retransmits{actual_destination=10.0.0.2:80,destination=10.0.0.1:80} = 3\n" +
		"resource {host.name=node-a}\n" +
		"  node.uptime = 12.5\n"
	if got := Render(sample()); got != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}
	if got := Render(sample(), "node.uptime"); got != "resource {container.id=/docker/web}\nresource {host.name=node-a}\n  node.uptime = 12.5\n" {
		t.Errorf("Render(node.uptime) =\n%s", got)
	}
	path := filepath.Join(t.TempDir(), "golden.txt")
	if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	Golden(t, sample(), path)
}
