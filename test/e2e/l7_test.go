package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// TestL7MetricsThroughPrometheusExporter runs the built distribution, a docker container that
// makes HTTP requests to a server of the test (host network), and scrapes the collector's real
// prometheus exporter: the container's requests come out under coroot-node-agent's names —
// container_http_requests_total{destination,actual_destination,status} and the
// container_http_requests_duration_seconds_total histogram (_bucket with coroot's le bounds,
// _sum, _count) — and every request the container made is counted with its status.
func TestL7MetricsThroughPrometheusExporter(t *testing.T) {
	testutil.RequireDocker(t)
	bin := distBinary(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	dst := ln.Addr().String()

	exporterPort := freePort(t)
	config := writeFile(t, "otelcol.yaml", fmt.Sprintf(`
receivers:
  codexray:
    collection_interval: 1s
exporters:
  prometheus:
    endpoint: %s
    resource_constant_labels:
      included: [codexray.container.id]
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [codexray]
      exporters: [prometheus]
`, addr(exporterPort)))
	agent := startLoggedProcess(t, nil, bin, "--config", config)
	ctx := context.Background()
	// The L7 capture is attached once its self-metrics are exported: only then may the
	// container make the requests the test counts.
	waitFor(ctx, t, "the L7 capture's self-metrics", 60*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		samples, err := scrape(addr(exporterPort))
		if err != nil {
			return false, nil //nolint:nilerr // the exporter is not up yet: keep waiting
		}
		for _, s := range samples {
			if s.Name == "codexray_l7_segments_read_total" {
				return true, nil
			}
		}
		return false, nil
	})

	// 6 requests answered 200 and 3 answered 503, one connection each (busybox wget).
	script := fmt.Sprintf(`for i in 1 2 3; do wget -q -O- http://%[1]s/ok; wget -q -O- http://%[1]s/ok; wget -q -O- http://%[1]s/fail; done; sleep 3600`, dst)
	id := "/docker/" + dockerRun(t, "--network", "host", testutil.DockerImage, "sh", "-c", script)

	want := map[string]float64{"200": 6, "503": 3}
	var got map[string]float64
	var samples []sample
	waitFor(ctx, t, "container_http_requests_total of the container", 60*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		samples, err = scrape(addr(exporterPort))
		if err != nil {
			return false, err
		}
		got = map[string]float64{}
		for _, s := range samples {
			if s.Name == "container_http_requests_total" && s.Labels["codexray_container_id"] == id && s.Labels["destination"] == dst {
				got[s.Labels["status"]] += s.Value
			}
		}
		return fmt.Sprint(got) == fmt.Sprint(want), nil
	})
	// The histogram: coroot's series names and bucket bounds, every request observed.
	les := map[string]float64{}
	var count, sum float64
	for _, s := range samples {
		if s.Labels["codexray_container_id"] != id || s.Labels["destination"] != dst {
			continue
		}
		switch s.Name {
		case "container_http_requests_duration_seconds_total_bucket":
			les[s.Labels["le"]] = s.Value
		case "container_http_requests_duration_seconds_total_count":
			count = s.Value
		case "container_http_requests_duration_seconds_total_sum":
			sum = s.Value
		}
	}
	for _, le := range []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10} {
		if _, ok := les[strconv.FormatFloat(le, 'f', -1, 64)]; !ok {
			t.Errorf("no bucket le=%v: %v", le, les)
		}
	}
	if les["+Inf"] != 9 || count != 9 || sum <= 0 {
		t.Errorf("histogram: buckets %v, count %v, sum %v; want 9 observations", les, count, sum)
	}
}
