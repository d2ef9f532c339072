package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// TestPrometheusScrapesNodeInfo builds nothing: it runs the distribution built by `make build`
// with a test config, lets a real Prometheus server scrape it, and finds node_info with this
// machine's kernel release through Prometheus's query API.
func TestPrometheusScrapesNodeInfo(t *testing.T) {
	testutil.RequireRoot(t)
	bin := distBinary(t)
	promBin, err := exec.LookPath("prometheus")
	testutil.SkipUnlessPrivileged(t, err == nil, "prometheus server not installed (scripts/install-deps.sh installs it): %v", err)

	exporterPort, healthPort, promPort := freePort(t), freePort(t), freePort(t)
	config := writeFile(t, "otelcol.yaml", fmt.Sprintf(`
receivers:
  codexray:
    collection_interval: 1s
exporters:
  prometheus:
    endpoint: %s
    resource_constant_labels:
      included: [container.id, host.name]
extensions:
  health_check:
    endpoint: %s
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [codexray]
      exporters: [prometheus]
`, addr(exporterPort), addr(healthPort)))
	agent := startLoggedProcess(t, nil, bin, "--config", config)

	promConfig := writeFile(t, "prometheus.yml", fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: codexray
    static_configs:
      - targets: ['%s']
`, addr(exporterPort)))
	startLoggedProcess(t, nil, promBin, "--config.file="+promConfig, "--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+addr(promPort))

	ctx := context.Background()
	want := kernelRelease(t)
	var got []promSample
	waitFor(ctx, t, "node_info in Prometheus", 60*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		got, err = promQuery(addr(promPort), `node_info{job="codexray"}`)
		return len(got) > 0, err
	})
	if len(got) != 1 {
		t.Fatalf("want one node_info series, got %d: %+v", len(got), got)
	}
	if got[0].Metric["kernel_version"] != want {
		t.Errorf("kernel_version = %q, want %q (labels %v)", got[0].Metric["kernel_version"], want, got[0].Metric)
	}
	if got[0].Metric["hostname"] == "" {
		t.Errorf("hostname label is empty: %v", got[0].Metric)
	}
	uptime, err := promQuery(addr(promPort), `node_uptime_seconds{job="codexray"}`)
	if err != nil || len(uptime) != 1 {
		t.Errorf("node_uptime_seconds: %v, %+v", err, uptime)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// promQuery runs an instant query against Prometheus's HTTP API.
func promQuery(promAddr, query string) ([]promSample, error) {
	resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decoding Prometheus answer: %w", err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", body.Error)
	}
	return body.Data.Result, nil
}
