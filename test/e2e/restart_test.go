package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// Nothing is lost or counted twice when the agent itself restarts. A container writes
// restartLines one-pattern lines over about 30 s; the agent (with file_storage) is stopped
// twice while it writes, with SIGTERM and with SIGKILL, each at a random moment, and started
// again at once. A backend that sums what it scrapes (a counter falling counts as a reset, as
// PromQL's increase does) must see exactly restartLines lines, and no reset: the counters
// continue across the restarts under their start times. The same holds for TCP connects made
// by a client in another container, with each run of the agent seeing some of them.
//
// The figures were 200,000 lines over 40 s; 150,000 over 30 s keeps `make test` short
// and the assertion exact. After the SIGKILL, the lines read since the last checkpoint (at
// most one collection_interval of them) are read again from the saved positions and counted
// once: the sum is exact for both signals (the README's "State across restarts").
const (
	restartLines   = 150000
	restartSeconds = 30
)

func TestRestartLosesNothing(t *testing.T) {
	testutil.RequireDocker(t)
	bin := distBinary(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 13))
	t.Logf("random stop points from seed %d", seed)

	storageDir := t.TempDir()
	promPort := freePort(t)
	config := dockerLogsAgent(t, `
    collection_interval: 1s
    storage: file_storage
    taskstats: {enabled: false}`, fmt.Sprintf(`
extensions:
  file_storage:
    directory: %s
exporters:
  prometheus:
    endpoint: %s
    resource_constant_labels:
      included: [codexray.container.id]
service:
  extensions: [file_storage]
  telemetry: {metrics: {level: none}}
  pipelines:
    metrics:
      receivers: [codexray]
      exporters: [prometheus]
`, storageDir, addr(promPort)))

	// The TCP client and its server share one container: busybox httpd and wget, one
	// connect per wget. In the host's network namespace: loopback destinations count only
	// there, as in coroot-node-agent.
	server := addr(freePort(t))
	client := dockerRun(t, "--network", "host", testutil.DockerImage, "sh", "-c",
		"mkdir -p /www && echo ok >/www/index.html && exec httpd -f -p "+server+" -h /www")
	connect := func(n int) {
		t.Helper()
		out, err := exec.Command("docker", "exec", client, "sh", "-c",
			fmt.Sprintf("for i in $(seq %d); do wget -q -O /dev/null http://%s/ || exit 1; done", n, server)).CombinedOutput()
		if err != nil {
			t.Fatalf("%d connects: %v\n%s", n, err, out)
		}
	}

	b := &backendView{t: t, addr: addr(promPort)}
	agent := startLoggedProcess(t, nil, bin, "--config", config)
	b.awaitAgent(agent)
	const logSeries, tcpSeries = "container_log_messages_total", "container_net_tcp_successful_connects_total"
	tcpLabels := map[string]string{"codexray_container_id": "/docker/" + client, "destination": server}
	var logLabels map[string]string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s as scraped: %v", tcpSeries, b.history(tcpSeries, tcpLabels))
			t.Logf("%s as scraped: %v", logSeries, b.history(logSeries, logLabels))
		}
	})

	writer := dockerRun(t, "--network", "none", testutil.DockerImage, "sh", "-c", fmt.Sprintf(
		`per=%d; for s in $(seq 0 %d); do seq $((s*per)) $((s*per+per-1)) | sed 's/^/INFO request /; s/$/ served/'; sleep 1; done`,
		restartLines/restartSeconds, restartSeconds-1))
	logLabels = map[string]string{"codexray_container_id": "/docker/" + writer}
	started := time.Now()

	// SIGTERM at a random moment of the first third, right after 300 connects: the last
	// collection covers those not collected yet.
	b.runUntil(agent, started.Add(time.Duration(8000+rng.IntN(6000))*time.Millisecond), logSeries, logLabels)
	connect(300)
	stop(t, agent, syscall.SIGTERM)
	agent = startLoggedProcess(t, nil, bin, "--config", config)
	b.awaitAgent(agent)

	// A SIGKILL loses what the agent observed of TCP after its last checkpoint: the connects
	// are made, then one collection is waited for, then the kill comes at a random moment.
	connect(200)
	b.awaitValue(agent, tcpSeries, tcpLabels, 500)
	b.runUntil(agent, started.Add(time.Duration(18000+rng.IntN(7000))*time.Millisecond), logSeries, logLabels)
	stop(t, agent, syscall.SIGKILL)
	agent = startLoggedProcess(t, nil, bin, "--config", config)
	b.awaitAgent(agent)
	connect(100)

	if out, err := exec.Command("docker", "wait", writer).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("writer: %v %s", err, out)
	}
	t.Logf("writer done after %s", time.Since(started).Round(time.Millisecond))
	b.awaitValue(agent, logSeries, logLabels, restartLines)
	b.awaitValue(agent, tcpSeries, tcpLabels, 600)
	time.Sleep(2 * time.Second) // two more collections: nothing is counted late
	for _, s := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{{logSeries, logLabels, restartLines}, {tcpSeries, tcpLabels, 600}} {
		got, resets := b.total(s.name, s.labels)
		t.Logf("%s: the backend sums %.0f (want %.0f), %d resets, over %d scrapes", s.name, got, s.want, resets, len(b.scrapes))
		if got != s.want || resets != 0 {
			t.Errorf("%s: the backend sums %.0f with %d resets, want %.0f without any", s.name, got, resets, s.want)
		}
	}
}

// dockerLogsAgent writes an agent config whose codexray receiver reads docker logs only (no
// CRI, journald or plain files) and looks for no cloud, with the receiver options given (lines
// indented for the receiver's map) and the rest of the config after the receivers.
func dockerLogsAgent(t testing.TB, options, rest string) string {
	t.Helper()
	return writeFile(t, "agent.yaml", fmt.Sprintf(`
receivers:
  codexray:
    cloud: {dmi_root: %s}
    logs: {cri: {enabled: false}, journald: {enabled: false}, files: {enabled: false}}%s
%s`, t.TempDir(), options, rest))
}

// stop signals the agent and waits for it to exit.
func stop(t *testing.T, p *loggedProcess, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent did not exit within 30 s of %s", sig)
	}
	t.Logf("agent stopped with %s", sig)
}

// backendView scrapes the agent's Prometheus exporter and keeps every scrape, as a backend's
// time series would.
type backendView struct {
	t       *testing.T
	addr    string
	scrapes [][]sample
}

func (b *backendView) scrape() ([]sample, error) {
	s, err := scrape(b.addr)
	if err == nil {
		b.scrapes = append(b.scrapes, s)
	}
	return s, err
}

// awaitAgent waits until the agent exports its first collection.
func (b *backendView) awaitAgent(agent *loggedProcess) {
	b.t.Helper()
	waitFor(context.Background(), b.t, "the agent's first collection", 60*time.Second, func() (bool, error) {
		agent.requireRunning(b.t)
		s, err := b.scrape()
		return err == nil && len(findSamples(s, "codexray_source_status", nil)) > 0, err
	})
}

// runUntil scrapes until the moment, failing if the series has not appeared by then.
func (b *backendView) runUntil(agent *loggedProcess, until time.Time, name string, labels map[string]string) {
	b.t.Helper()
	for time.Now().Before(until) {
		agent.requireRunning(b.t)
		_, _ = b.scrape()
		time.Sleep(200 * time.Millisecond)
	}
	if last, err := b.scrape(); err != nil || sum(findSamples(last, name, labels)) == 0 {
		b.t.Fatalf("%s %v not exported before the stop (%v)", name, labels, err)
	}
}

// awaitValue scrapes until the series sums to want.
func (b *backendView) awaitValue(agent *loggedProcess, name string, labels map[string]string, want float64) {
	b.t.Helper()
	waitFor(context.Background(), b.t, fmt.Sprintf("%s %v = %.0f", name, labels, want), 60*time.Second, func() (bool, error) {
		agent.requireRunning(b.t)
		s, err := b.scrape()
		if err != nil {
			return false, err
		}
		got := sum(findSamples(s, name, labels))
		return got == want, fmt.Errorf("at %.0f", got)
	})
}

// total is what a backend makes of the scrapes of one counter (summed over its series): the
// increase from 0, a lower value than the previous scrape counting as a reset, as PromQL's
// increase does. A scrape without the counter (the agent restarting) changes nothing.
func (b *backendView) total(name string, labels map[string]string) (total float64, resets int) {
	var last float64
	for _, s := range b.scrapes {
		found := findSamples(s, name, labels)
		if len(found) == 0 {
			continue
		}
		v := sum(found)
		if v < last {
			resets++
			total += v
		} else {
			total += v - last
		}
		last = v
	}
	return total, resets
}

// history lists the distinct values of one counter in scrape order ("-" while it is absent).
func (b *backendView) history(name string, labels map[string]string) []string {
	var out []string
	for _, s := range b.scrapes {
		v := "-"
		if found := findSamples(s, name, labels); len(found) > 0 {
			v = fmt.Sprintf("%.0f", sum(found))
		}
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

func sum(samples []sample) float64 {
	var n float64
	for _, s := range samples {
		n += s.Value
	}
	return n
}

// SIGTERM makes one last collection, and push exporters send it: the collector shuts its
// receivers down before its processors and exporters, so what the receiver pushes from its
// Shutdown still goes through the batch processor to the OTLP exporter. The agent collects
// once at start and then only every hour: the lines written after its start reach the
// backend only through that last collection. No storage: this holds without one.
func TestShutdownPushesTheLastCollection(t *testing.T) {
	testutil.RequireDocker(t)
	bin := distBinary(t)
	backend := startOTLPBackend(t, bin, false, "codexray.container.id")

	const lines = 500
	writer := dockerRun(t, "--network", "none", testutil.DockerImage, "sh", "-c",
		fmt.Sprintf("sleep 4; seq %d | sed 's/^/INFO job /; s/$/ done/'; sleep 600", lines))
	agent := startLoggedProcess(t, nil, bin, "--config", dockerLogsAgent(t, `
    collection_interval: 1h
    ebpf: {enabled: false}
    taskstats: {enabled: false}`, fmt.Sprintf(`
processors:
  batch: {}
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    metrics: {receivers: [codexray], processors: [batch], exporters: [otlp_grpc]}
`, backend.otlp)))
	b := &backendView{t: t, addr: backend.prom}
	b.awaitAgent(backend.loggedProcess) // the agent's first collection went through the backend
	labels := map[string]string{"codexray_container_id": "/docker/" + writer}
	out, err := exec.Command("docker", "logs", writer).CombinedOutput()
	for deadline := time.Now().Add(30 * time.Second); strings.Count(string(out), "\n") < lines; {
		if time.Now().After(deadline) || err != nil {
			t.Fatalf("the writer wrote %d lines: %v", strings.Count(string(out), "\n"), err)
		}
		time.Sleep(200 * time.Millisecond)
		out, err = exec.Command("docker", "logs", writer).CombinedOutput()
	}
	time.Sleep(time.Second) // read by the agent (it polls every 250ms)
	if s, err := b.scrape(); err != nil || sum(findSamples(s, "container_log_messages_total", labels)) != 0 {
		t.Fatalf("the lines reached the backend before the stop: the test proves nothing (%v)", err)
	}
	stop(t, agent, syscall.SIGTERM)
	b.awaitValue(backend.loggedProcess, "container_log_messages_total", labels, lines)
}
