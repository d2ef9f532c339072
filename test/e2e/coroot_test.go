package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/test/coroot"
)

// TestCorootAcceptance runs the distribution with the shipped Prometheus config
// (config/default.yaml, the one `make run` uses; an overlay only shortens the intervals, names
// the testbed's CRI socket and pod log directory, and sets cloud overrides so the cloud labels
// appear without a metadata service) and a real Prometheus scraping it, during a docker and CRI
// workload: an HTTP server (on a wildcard address, with a named volume and CPU and memory
// limits) and a client (over the host network, also failing to connect to a closed port and
// retransmitting SYNs to a dropped one), a Kubernetes-shaped pod of a Deployment running a
// client, an OOM-killed container, and a server of every other protocol codexray parses
// (Redis, Memcached, PostgreSQL, DNS, MySQL, MongoDB, Kafka, Cassandra, ClickHouse, ZooKeeper,
// RabbitMQ, NATS: l7servers_test.go) with a client of them all. It then runs Coroot's
// node-agent queries (test/coroot/queries.yaml) against that Prometheus: every provided query
// must return series, every series must carry the query's required labels and no label
// coroot-node-agent's series lack, and the workload must be named as coroot-node-agent names
// it; a connection to the server must carry, in the query's joins_listen label, a listen_addr
// of the server (how Coroot draws the service map). Queries the workload cannot show (the
// inbound ones of Kafka and ZooKeeper, whose servers the L7 capture does not detect) are run
// and listed as not checked, never as passing; a query codexray has no source for (GPU, the
// language runtimes, FoundationDB) fails the test if it returns series, since its status in
// queries.yaml would be stale.
func TestCorootAcceptance(t *testing.T) {
	testutil.RequireDocker(t)
	testutil.RequireContainerd(t)
	bin := distBinary(t)
	promBin, err := exec.LookPath("prometheus")
	testutil.SkipUnlessPrivileged(t, err == nil, "prometheus server not installed (scripts/install-deps.sh installs it): %v", err)
	_, err = exec.LookPath("iptables")
	testutil.SkipUnlessPrivileged(t, err == nil, "iptables not installed (scripts/install-deps.sh installs it): %v", err)
	queries, err := coroot.Queries()
	if err != nil {
		t.Fatal(err)
	}
	machineID := readMachineID(t)

	// The workload. Started before the agent, except the OOM kill: the agent must find
	// running containers at start as well as new ones. The L7 servers first: some take
	// seconds to start.
	started := time.Now()
	suffix := strconv.Itoa(os.Getpid())
	l7 := startL7Servers(t, suffix)
	serverPort, refusedPort, droppedPort := freeServicePort(t), freePort(t), freePort(t)
	dropSYNs(t, droppedPort)
	web, client, oom := "cxc-web-"+suffix, "cxc-client-"+suffix, "cxc-oom-"+suffix
	volume := "cxc-data-" + suffix
	t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", volume).Run() })
	dockerWorkload(t, web, []string{"-v", volume + ":/data", "--cpus", "0.5", "-m", "256m"},
		"serve", fmt.Sprintf("0.0.0.0:%d", serverPort))
	url := fmt.Sprintf("http://127.0.0.1:%d/", serverPort)
	dockerWorkload(t, client, nil, "client", url, addr(refusedPort), net.JoinHostPort(testutil.RuleIP, strconv.Itoa(droppedPort)))
	podLogs := t.TempDir()
	pod := startCRIPod(t, "cxc-api-7d9f8b6c5d-x2x4z", "cx-coroot", podLogs)
	pod.run(t, "client", "client", url)
	l7.startPeers(t)

	promPort, exporterPort := freePort(t), freePort(t)
	overlay := writeFile(t, "coroot-overlay.yaml", fmt.Sprintf(`
receivers:
  codexray:
    collection_interval: 2s
    containers:
      cri_sockets: [%s]
    logs:
      patterns_flush_interval: 2s
      cri:
        pods_dir: %s
    cloud:
      dmi_root: %s
      overrides: {region: test-region-1, availability_zone: test-region-1a, instance_type: t.test, instance_life_cycle: on-demand}
`, testutil.ContainerdSocket, podLogs, t.TempDir()))
	agent := startLoggedProcess(t, []string{
		"CODEXRAY_PROMETHEUS_ENDPOINT=" + addr(exporterPort),
		"CODEXRAY_HEALTH_ENDPOINT=" + addr(freePort(t)),
	}, bin, "--config", filepath.Join(repoRoot(t), "config", "default.yaml"), "--config", overlay)
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
	// The L7 client once its servers listen (RabbitMQ takes seconds), while the agent starts:
	// each of its commands opens connections of its own.
	l7.startClient(t)
	// The OOM kill once the tracer runs, or the kernel's event would find no one listening.
	waitFor(context.Background(), t, "the eBPF source running", 60*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		s, err := scrape(addr(exporterPort))
		return len(findSamples(s, "codexray_source_status", map[string]string{"source": "ebpf", "state": "running"})) == 1, err
	})
	dockerRun(t, "--name", oom, "--network", "none", "-m", "20m", "--memory-swap", "20m", testutil.DockerImage,
		"sh", "-c", "sleep 1; tail /dev/zero")

	prom := addr(promPort)
	expect := corootExpectations{
		machineID: machineID,
		web:       "/docker/" + web, client: "/docker/" + client, oom: "/docker/" + oom,
		podClient: "/k8s/cx-coroot/" + pod.name + "/client", podApp: "/k8s/cx-coroot/cxc-api",
		volume: volume, server: fmt.Sprintf("127.0.0.1:%d", serverPort), l7: l7,
	}
	var results []queryResult
	t.Logf("the workload and the agent started in %s", time.Since(started).Round(100*time.Millisecond))
	// The last query to pass, and when: what this test's time goes to.
	var last error
	passing := time.Now()
	for deadline := time.Now().Add(180 * time.Second); ; time.Sleep(time.Second) {
		agent.requireRunning(t)
		results = runCorootQueries(prom, queries, expect)
		for i := range results {
			if results[i].err != nil {
				last, passing = fmt.Errorf("%s: %w", results[i].q.Name, results[i].err), time.Now()
			}
		}
		if failures(results) == nil || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("the last query to fail passed %s after the start; it failed with: %v", passing.Sub(started).Round(100*time.Millisecond), last)
	reportCoroot(t, results)
	if err := failures(results); err != nil {
		t.Fatalf("Coroot queries failing after 180 s:\n%v", err)
	}
}

// corootExpectations are the names the workload must have in Coroot's eyes.
type corootExpectations struct {
	machineID                           string
	web, client, oom, podClient, podApp string
	volume                              string
	server                              string // the server's address as its clients dial it
	l7                                  *l7Servers
	// listens are the listen_addr values (container_net_tcp_listen_info) of the workload's
	// servers, by the address their clients dial.
	listens map[string][]string
}

// queryResult is one query's outcome.
type queryResult struct {
	q      coroot.Query
	series int
	err    error // nil: passed, or (a query not provided) its status holds
}

func failures(rs []queryResult) error {
	var errs []error
	for i := range rs {
		r := &rs[i]
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.q.Name, r.err))
		}
	}
	return errors.Join(errs...)
}

// identityLabels are the labels coroot-node-agent puts on every series (node and container
// identity, the cloud's az and region) and those Prometheus adds at scrape time.
var identityLabels = []string{"machine_id", "system_uuid", "container_id", "app_id", "az", "region", "job", "instance", "__name__"}

func runCorootQueries(prom string, queries []coroot.Query, want corootExpectations) []queryResult {
	want.listens = map[string][]string{}
	servers := []l7Server{{id: want.web, addr: want.server}}
	for _, srv := range want.l7.byProtocol() {
		if srv.servicePort {
			servers = append(servers, srv)
		}
	}
	for _, srv := range servers {
		listens, _ := promQuery(prom, fmt.Sprintf(`%s{container_id=%q}`, coroot.ListenInfo, srv.id))
		for _, l := range listens {
			want.listens[srv.addr] = append(want.listens[srv.addr], l.Metric["listen_addr"])
		}
	}
	out := make([]queryResult, 0, len(queries))
	for i := range queries {
		q := &queries[i]
		r := queryResult{q: *q}
		series, err := promQuery(prom, q.WithRange("30s"))
		r.series = len(series)
		switch {
		case q.Status == coroot.NotChecked:
			r.err = err
			out = append(out, r)
			continue
		case q.Status == coroot.NotYetProvided:
			if err == nil && len(series) > 0 {
				err = fmt.Errorf("%d series, e.g. %v, of a query queries.yaml says codexray has no source for (%s)", len(series), series[0].Metric, q.Why)
			}
			r.err = err
			out = append(out, r)
			continue
		case err != nil:
			r.err = err
		case len(series) == 0:
			r.err = errors.New("no series")
		default:
			r.err = checkSeries(q, series)
		}
		if r.err == nil {
			r.err = checkWorkload(q, series, want)
		}
		out = append(out, r)
	}
	return out
}

// checkSeries: every series carries the query's required labels (non-empty), one of
// identity_any, and no label coroot-node-agent's series lack (a resource attribute the
// exporter should not have turned into a label, an otel_scope_* label).
func checkSeries(q *coroot.Query, series []promSample) error {
	allowed := slices.Concat(identityLabels, coroot.KeptLabels, q.Labels, q.AgentLabels)
	for _, s := range series {
		for _, l := range q.RequiredLabels {
			if s.Metric[l] == "" {
				return fmt.Errorf("series %v lacks %s", s.Metric, l)
			}
		}
		if len(q.IdentityAny) > 0 && !slices.ContainsFunc(q.IdentityAny, func(l string) bool { return s.Metric[l] != "" }) {
			return fmt.Errorf("series %v has none of %v", s.Metric, q.IdentityAny)
		}
		for l := range s.Metric {
			if !slices.Contains(allowed, l) {
				return fmt.Errorf("series %v has label %s, which coroot-node-agent's series do not have", s.Metric, l)
			}
		}
	}
	return nil
}

// checkWorkload: the workload is named as coroot-node-agent names it, each query shows what
// the workload does, and the sandbox's own cgroups are no applications.
func checkWorkload(q *coroot.Query, series []promSample, want corootExpectations) error {
	has := func(labels map[string]string) bool {
		return slices.ContainsFunc(series, func(s promSample) bool {
			for k, v := range labels {
				if s.Metric[k] != v {
					return false
				}
			}
			return true
		})
	}
	need := func(labels map[string]string) error {
		if !has(labels) {
			return fmt.Errorf("no series with %v among %d", labels, len(series))
		}
		return nil
	}
	for _, s := range series {
		if id := s.Metric["container_id"]; strings.HasPrefix(id, "/process_api") || strings.HasPrefix(id, "/user.slice") {
			return fmt.Errorf("a cgroup of no container is reported as one: %v", s.Metric)
		}
		if m := s.Metric["machine_id"]; m != "" && m != want.machineID {
			return fmt.Errorf("machine_id %q, want the host's /etc/machine-id %q", m, want.machineID)
		}
		// The service map: Coroot finds the server of a connection by this label.
		if listens, ours := want.listens[s.Metric["destination"]]; q.JoinsListen != "" && ours && !slices.Contains(listens, s.Metric[q.JoinsListen]) {
			return fmt.Errorf("%s %q of a connection to %s is none of its server's listen_addr %v: Coroot would not find the server",
				q.JoinsListen, s.Metric[q.JoinsListen], s.Metric["destination"], listens)
		}
	}
	web, client := map[string]string{"container_id": want.web}, map[string]string{"container_id": want.client}
	switch q.Name {
	case "node_info":
		return need(map[string]string{"machine_id": want.machineID})
	case "node_cloud_info":
		return need(map[string]string{"region": "test-region-1", "availability_zone": "test-region-1a"})
	case "container_info":
		return errors.Join(need(web), need(client),
			need(map[string]string{"container_id": want.podClient, "app_id": want.podApp}))
	case "container_application_type":
		return need(map[string]string{"container_id": want.web, "application_type": "golang"})
	case "container_cpu_limit", "container_memory_limit", "container_memory_rss", "container_cpu_usage", "container_restarts":
		return need(web)
	case "container_oom_kills_total":
		return need(map[string]string{"container_id": want.oom})
	case "container_volume_size", "container_volume_used":
		return need(map[string]string{"container_id": want.web, "mount_point": "/data", "volume": want.volume})
	case "container_log_messages":
		return errors.Join(need(client), need(map[string]string{"container_id": want.podClient}))
	case "container_net_tcp_successful_connects", "container_net_tcp_connection_time_seconds":
		return errors.Join(need(map[string]string{"container_id": want.client, "destination": want.server}),
			need(map[string]string{"app_id": want.podApp, "destination": want.server}))
	case "container_net_tcp_bytes_sent", "container_net_tcp_bytes_received":
		// Summed per app_id with the cloud's labels, as Coroot reads traffic between zones.
		return need(map[string]string{"app_id": want.podApp, "destination": want.server, "az": "test-region-1a", "region": "test-region-1"})
	case "container_net_tcp_failed_connects":
		return need(client)
	case "container_net_tcp_retransmits":
		return need(client)
	case "ip_to_fqdn":
		return need(map[string]string{"ip": "10.1.2.3", "fqdn": "web.cx.test"})
	case "container_dns_requests_total", "container_dns_requests_latency":
		return need(map[string]string{"container_id": want.l7.client})
	case "l7_requests_by_dest", "l7_total_latency_by_dest":
		// Summed by server: MySQL's and MongoDB's.
		return errors.Join(need(map[string]string{"actual_destination": want.l7.mysql.addr}),
			need(map[string]string{"actual_destination": want.l7.mongo.addr}))
	case coroot.ListenInfo:
		// The server listens on 0.0.0.0: reported at the addresses of its network namespace
		// (the host's here, loopback included), as its clients dial it.
		return need(map[string]string{"container_id": want.web, "listen_addr": want.server})
	}
	// L7: the client's requests to each server (outbound, by destination) and the server's
	// own view (inbound).
	servers := want.l7.byProtocol()
	servers["http"] = l7Server{id: want.web, addr: want.server}
	for proto, srv := range servers {
		if !strings.HasPrefix(q.Name, "container_"+proto+"_") {
			continue
		}
		if strings.Contains(q.Name, "_inbound_") {
			return need(map[string]string{"container_id": srv.id})
		}
		client := want.l7.client
		if proto == "http" {
			client = want.client
		}
		out := map[string]string{"container_id": client, "destination": srv.addr}
		if proto == "rabbitmq" || proto == "nats" { // messages: published and delivered
			return errors.Join(need(with(out, "method", "produce")), need(with(out, "method", "consume")))
		}
		return need(out)
	}
	return nil
}

func with(labels map[string]string, k, v string) map[string]string {
	out := maps.Clone(labels)
	out[k] = v
	return out
}

func reportCoroot(t *testing.T, results []queryResult) {
	t.Helper()
	count := map[string]int{}
	var lines []string
	for i := range results {
		r := &results[i]
		var outcome string
		switch {
		case r.err != nil:
			outcome = "FAILED: " + r.err.Error()
		case r.q.Status == coroot.NotChecked:
			outcome = fmt.Sprintf("not checked (%d series; %s)", r.series, r.q.Why)
		case r.q.Status == coroot.NotYetProvided:
			outcome = "not yet provided (" + r.q.Why + ")"
		default:
			outcome = fmt.Sprintf("passed: %d series", r.series)
		}
		key, _, _ := strings.Cut(outcome, ":")
		key, _, _ = strings.Cut(key, " (")
		count[key]++
		lines = append(lines, fmt.Sprintf("  %-42s %s", r.q.Name, outcome))
	}
	sort.Strings(lines)
	t.Logf("Coroot's %d node-agent queries against otelcol-codexray (config/default.yaml):\n%s", len(results), strings.Join(lines, "\n"))
	t.Logf("summary: %v", count)
}

// dropSYNs makes the kernel drop TCP packets to testutil.RuleIP:port while the test runs,
// so connects to it retransmit their SYNs.
func dropSYNs(t testing.TB, port int) {
	t.Helper()
	rule := []string{"INPUT", "-p", "tcp", "-d", testutil.RuleIP, "--dport", strconv.Itoa(port), "-j", "DROP"}
	if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("iptables -I %v: %v\n%s", rule, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run() })
}

// readMachineID is the host's machine id as coroot-node-agent labels it: dashes removed.
func readMachineID(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
}
