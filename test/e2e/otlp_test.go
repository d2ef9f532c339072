package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// TestOTLPPushToBackend runs the shipped config/otlp.yaml as a user would (only environment
// variables and a small overlay that keeps the test off any real cloud metadata service) and
// pushes to a second otelcol-codexray acting as the backend: its otlp receiver feeds a
// prometheus exporter the test scrapes (metrics) and a detailed debug exporter whose output
// the test reads (log-pattern records). What the test demands grows with the sources wired
// into the receiver: every source in receiver/codexrayreceiver/source_*.go must report
// running, and each known source must deliver its metrics for a docker container the test runs.
func TestOTLPPushToBackend(t *testing.T) {
	testutil.RequireDocker(t)
	bin := distBinary(t)
	sources := sourcesInTree(t)

	backend := startOTLPBackend(t, bin, true, "container.id", "codexray.container.id", "container.runtime.name", "host.name")

	w := startWorkload(t, sources)
	agent := startLoggedProcess(t, []string{
		"CODEXRAY_OTLP_ENDPOINT=" + backend.otlp,
		"CODEXRAY_OTLP_INSECURE=true",
		"CODEXRAY_COLLECTION_INTERVAL=2s",
		"CODEXRAY_HEALTH_ENDPOINT=" + addr(freePort(t)),
	}, bin, "--config", filepath.Join(repoRoot(t), "config", "otlp.yaml"), "--config", testOverlay(t))
	w.startOOMKill(t, agent, backend.prom)

	ctx := context.Background()
	var last []sample
	waitFor(ctx, t, "node and per-source metrics at the OTLP backend", 120*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		backend.requireRunning(t)
		var err error
		if last, err = scrape(backend.prom); err != nil {
			return false, err
		}
		err = checkAgentMetrics(last, sources, w, semconvLabels)
		return err == nil, err
	})
	if err := checkAgentMetrics(last, sources, w, semconvLabels); err != nil {
		t.Fatal(err)
	}
	// host_metrics travels the same pipeline.
	if len(findSamples(last, "system_memory_usage_bytes", nil)) == 0 {
		t.Error("host_metrics' system_memory_usage_bytes did not reach the backend")
	}
	node := findSamples(last, "node_info", nil)
	if len(node) != 1 || node[0].Labels["kernel_version"] != kernelRelease(t) || node[0].Labels["host_name"] == "" || node[0].Labels["host_name"] != node[0].Labels["hostname"] {
		t.Errorf("node_info at the backend: %+v; want one series with this kernel and the host.name resource attribute", node)
	}

	if !slices.Contains(sources, "logs") {
		t.Logf("no logs source in the receiver yet: log-pattern records not checked")
		return
	}
	waitFor(ctx, t, "a log-pattern record of the workload container at the backend", 60*time.Second, func() (bool, error) {
		backend.requireRunning(t)
		out, err := os.ReadFile(backend.logPath)
		if err != nil {
			return false, err
		}
		recs := logRecordsByResource(string(out))
		for _, r := range recs {
			if r.attrs["container.id"] == w.id && r.attrs["container.runtime.name"] == "docker" && r.records > 0 &&
				strings.Contains(r.text, "codexray-e2e request") {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d resource log blocks, none with container.id %s and a record of the workload's lines", len(recs), w.id)
	})
}

// testOverlay is merged over a shipped config: the cloud source looks for its provider in an
// empty DMI directory (so no test ever dials a metadata address), and patterns flush fast.
func testOverlay(t testing.TB) string {
	t.Helper()
	return writeFile(t, "overlay.yaml", fmt.Sprintf(`
receivers:
  codexray:
    cloud:
      dmi_root: %s
    logs:
      patterns_flush_interval: 2s
`, t.TempDir()))
}

// sourceNameRE finds `func (s *xSource) name() string { return "x" }` in the receiver.
var sourceNameRE = regexp.MustCompile(`\) name\(\) string\s*\{\s*return "([^"]+)"`)

// sourcesInTree lists the sources wired into the receiver in this working tree; the built
// distribution must report each of them.
func sourcesInTree(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "receiver", "codexrayreceiver", "source_*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range sourceNameRE.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatal("no source found in receiver/codexrayreceiver/source_*.go")
	}
	slices.Sort(names)
	return names
}

// hasSource reports whether any of the names is a wired source (the tracer's name may be
// any of a few).
func hasSource(sources []string, names ...string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return slices.Contains(sources, n) })
}

var tracerNames = []string{"ebpf", "tracer", "tcp"}

// labelScheme says how a scraped exposition names containers.
type labelScheme int

const (
	// corootLabels: config/default.yaml, coroot-node-agent's container_id (/docker/<name>).
	corootLabels labelScheme = iota
	// semconvLabels: an OTLP backend exporting container.id (the runtime's id) and
	// container.runtime.name as labels.
	semconvLabels
)

// checkAgentMetrics is what the end-to-end tests demand of the agent's metrics, wherever
// they were scraped: node_info, every source running, and each known source's metrics for
// the workload container, named as the scheme names it.
func checkAgentMetrics(s []sample, sources []string, w *workload, scheme labelScheme) error {
	var errs []error
	if len(findSamples(s, "node_info", nil)) != 1 {
		errs = append(errs, errors.New("no node_info"))
	}
	for _, src := range sources {
		st := findSamples(s, "codexray_source_status", map[string]string{"source": src})
		if len(st) == 0 {
			errs = append(errs, fmt.Errorf("source %q has no codexray_source_status: is the distribution older than the tree (make build)?", src))
			continue
		}
		for _, x := range st {
			// degraded: running without part of its input (e.g. kernel.task_delayacct=0 here).
			if x.Value == 1 && x.Labels["state"] != "running" && x.Labels["state"] != "degraded" {
				errs = append(errs, fmt.Errorf("source %q is %s", src, x.Labels["state"]))
			}
		}
	}
	c, oom := map[string]string{"container_id": "/docker/" + w.name}, map[string]string{"container_id": "/docker/" + w.oomName}
	if scheme == semconvLabels {
		c, oom = map[string]string{"container_id": w.id}, map[string]string{"container_id": w.oomID}
	}
	positive := func(name string, labels map[string]string) {
		got := findSamples(s, name, labels)
		var sum float64
		for _, x := range got {
			sum += x.Value
		}
		if len(got) == 0 || sum <= 0 {
			errs = append(errs, fmt.Errorf("%s%v: %d series, sum %g; want > 0", name, labels, len(got), sum))
		}
	}
	present := func(name string, labels map[string]string) {
		if len(findSamples(s, name, labels)) == 0 {
			errs = append(errs, fmt.Errorf("%s%v: no series", name, labels))
		}
	}
	if hasSource(sources, "containers") {
		present("container_info", c)
		positive("container_resources_cpu_usage_seconds_total", c)
		if scheme == semconvLabels {
			// container_runtime_name comes from the container's resource (container.runtime.name).
			present("container_info", map[string]string{"container_id": w.id, "container_runtime_name": "docker"})
		}
	}
	if hasSource(sources, "taskstats") {
		present("container_resources_cpu_delay_seconds_total", c)
		present("container_resources_disk_delay_seconds_total", c)
	}
	if hasSource(sources, "logs") {
		positive("container_log_messages_total", c)
	}
	if hasSource(sources, tracerNames...) {
		positive("container_net_tcp_successful_connects_total", map[string]string{"container_id": c["container_id"], "destination": addr(w.port)})
		present("container_net_tcp_listen_info", c)
		if w.oomID != "" {
			positive("container_oom_kills_total", oom)
		}
	}
	return errors.Join(errs...)
}

// workload is a docker container the test runs: it logs, burns a little CPU and connects
// over TCP to a listener of the test on 127.0.0.1 (host network).
type workload struct {
	id, name       string // the container's runtime id (container.id) and name
	port           int
	oomID, oomName string // the same of the OOM-killed container, once started
	// oomWanted: only a tracer reports OOM kills; without one the kill is not provoked.
	oomWanted bool
}

func startWorkload(t testing.TB, sources []string) *workload {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	port := l.Addr().(*net.TCPAddr).Port

	// The container also listens (busybox httpd on a port below the ephemeral range), so its
	// own listen address is reported: the test's listener is in no container.
	script := fmt.Sprintf(`mkdir -p /tmp/www && httpd -f -p 127.0.0.1:%d -h /tmp/www &
i=0; while :; do i=$((i+1)); echo "codexray-e2e request $i served in $((i %% 7)) ms";
echo ping | nc -w 1 127.0.0.1 %d >/dev/null 2>&1; j=0; while [ $j -lt 3000 ]; do j=$((j+1)); done; sleep 0.2; done`, freeServicePort(t), port)
	name := fmt.Sprintf("cx-e2e-%d-%d", os.Getpid(), workloadSeq.Add(1))
	id := dockerRun(t, "--name", name, "--network", "host", testutil.DockerImage, "sh", "-c", script)
	return &workload{id: id, name: name, port: port, oomWanted: hasSource(sources, tracerNames...)}
}

// workloadSeq numbers the workloads of one test binary, for unique container names.
var workloadSeq atomic.Int64

// startOOMKill runs a container that the kernel's OOM killer kills (20 MiB limit, unbounded
// allocation), when a tracer is there to see it: once the eBPF source reports running in the
// exposition at metricsAddr (a kill before the tracer attached is seen by no one).
func (w *workload) startOOMKill(t testing.TB, agent *loggedProcess, metricsAddr string) {
	t.Helper()
	if !w.oomWanted {
		return
	}
	waitFor(context.Background(), t, "the eBPF source running before the OOM kill", 90*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		s, err := scrape(metricsAddr)
		return len(findSamples(s, "codexray_source_status", map[string]string{"source": "ebpf", "state": "running"})) > 0, err
	})
	w.oomName = w.name + "-oom"
	w.oomID = dockerRun(t, "--name", w.oomName, "--network", "none", "-m", "20m", "--memory-swap", "20m", testutil.DockerImage,
		"sh", "-c", "sleep 2; tail /dev/zero")
}

// dockerRun starts a labelled, detached container and removes it at cleanup.
func dockerRun(t testing.TB, args ...string) string {
	t.Helper()
	return dockerRunAll(t, args)[0]
}

// dockerRunAll runs the containers (each one's docker run arguments) at once, removing them
// at cleanup, and returns their ids.
func dockerRunAll(t testing.TB, runs ...[]string) []string {
	t.Helper()
	ids, errs := make([]string, len(runs)), make([]error, len(runs))
	var wg sync.WaitGroup
	for i, args := range runs {
		wg.Go(func() {
			full := append([]string{"run", "-d", "--label", "codexray-test=1"}, args...)
			out, err := exec.Command("docker", full...).CombinedOutput()
			id := strings.TrimSpace(string(out))
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("docker %v: %w\n%s", full, err, out)
			case len(id) != 64:
				errs[i] = fmt.Errorf("docker run printed %q, want a 64-hex container id", id)
			default:
				ids[i] = id
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != "" {
			t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

// The Prometheus text-format scraper and parser live in internal/testutil (test/k8s uses
// them too).
type sample = testutil.Sample

var (
	scrape      = testutil.Scrape
	findSamples = testutil.FindSamples
)

// resourceLogs is one "ResourceLog #n" block of the debug exporter's detailed output.
type resourceLogs struct {
	attrs   map[string]string
	records int
	text    string
}

var debugAttrRE = regexp.MustCompile(`^\s*-> ([^:]+): Str\((.*)\)$`)

// logRecordsByResource splits the debug exporter's detailed output into resource blocks with
// their resource attributes and the number of log records in each.
func logRecordsByResource(out string) []resourceLogs {
	var blocks []resourceLogs
	for _, part := range strings.Split(out, "ResourceLog #")[1:] {
		r := resourceLogs{attrs: map[string]string{}, text: part}
		inResource := false
		for _, line := range strings.Split(part, "\n") {
			switch {
			case strings.HasPrefix(line, "Resource attributes:"):
				inResource = true
			case strings.HasPrefix(line, "ScopeLogs #"):
				inResource = false
			case strings.HasPrefix(line, "LogRecord #"):
				r.records++
			case inResource:
				if m := debugAttrRE.FindStringSubmatch(line); m != nil {
					r.attrs[m[1]] = m[2]
				}
			}
		}
		blocks = append(blocks, r)
	}
	return blocks
}

func TestLogRecordsByResource(t *testing.T) {
	out := `2026 info Logs {"resource logs": 2}
ResourceLog #0
Resource SchemaURL: 
Resource attributes:
     -> container.id: Str(/docker/abc)
     -> host.name: Str(vm)
ScopeLogs #0
LogRecord #0
Body: Str(hello 1)
Attributes:
     -> pattern_hash: Str(123)
LogRecord #1
ResourceLog #1
Resource attributes:
     -> host.name: Str(vm)
ScopeLogs #0
`
	got := logRecordsByResource(out)
	if len(got) != 2 || got[0].attrs["container.id"] != "/docker/abc" || got[0].records != 2 ||
		got[0].attrs["pattern_hash"] != "" || got[1].records != 0 || got[1].attrs["host.name"] != "vm" {
		t.Errorf("got %+v", got)
	}
}
