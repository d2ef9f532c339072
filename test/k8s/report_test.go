//go:build e2ek8s

package k8s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/test/k8s/cluster"
)

const mib = 1 << 20

// expectation is what the agent must report about one container of a workload pod.
type expectation struct {
	pod       cluster.Pod
	container string
	// Limits from the pod spec: 0 when the spec sets none.
	memoryLimit float64
	cpuLimit    float64
	// longLived containers run for the whole scenario: their usage must be positive.
	longLived bool
}

func (e expectation) id() string {
	return "/k8s/" + workloadNS + "/" + e.pod.Metadata.Name + "/" + e.container
}

func (w *workloads) expectations() []expectation {
	var out []expectation
	for i := range w.web {
		p := &w.web[i]
		out = append(out, expectation{pod: *p, container: "httpd", memoryLimit: 64 * mib, cpuLimit: 0.2, longLived: true})
	}
	return append(out,
		expectation{pod: w.client, container: "client", memoryLimit: 32 * mib, cpuLimit: 0.1, longLived: true},
		expectation{pod: w.logger, container: "app", longLived: true},
		expectation{pod: w.oom, container: "hog", memoryLimit: 20 * mib},
		expectation{pod: w.job, container: "work"},
	)
}

// byContainer selects a container's points of one metric.
func byContainer(id, metric string) func(*Point) bool {
	return func(p *Point) bool { return p.Resource["codexray.container.id"] == id && p.Metric == metric }
}

func maxValue(pts []Point) float64 {
	m := 0.0
	for _, p := range pts {
		m = max(m, p.Value)
	}
	return m
}

// checkContainer is what every pod's container must have in the OTLP output: its identity
// as Kubernetes knows it, on the node, with CPU, memory, delay and (where set) its limits.
func checkContainer(b *Backend, e expectation) error {
	var errs []error
	id := e.id()
	info := b.Points(byContainer(id, "container.info"))
	if len(info) == 0 {
		return fmt.Errorf("%s: no container.info", id)
	}
	want := map[string]string{
		"k8s.namespace.name":     workloadNS,
		"k8s.pod.name":           e.pod.Metadata.Name,
		"k8s.pod.uid":            e.pod.Metadata.UID,
		"k8s.container.name":     e.container,
		"k8s.node.name":          cluster.NodeName,
		"container.runtime.name": "containerd",
		// The semantic conventions' name is without the tag (container.image.tags holds it).
		"container.image.name": strings.TrimSuffix(cluster.BusyboxImage, ":1"),
	}
	// Every point, the retained ones after the container ended included, carries them.
	for k, v := range want {
		bad := 0
		var got string
		for _, p := range info {
			if p.Resource[k] != v {
				bad, got = bad+1, p.Resource[k]
			}
		}
		if bad > 0 {
			errs = append(errs, fmt.Errorf("%s: resource %s = %q in %d of %d container.info points, want %q", id, k, got, bad, len(info), v))
		}
	}
	for _, metric := range []string{"container.resources.cpu.usage", "container.resources.memory.rss", "container.resources.cpu.delay"} {
		pts := b.Points(byContainer(id, metric))
		switch {
		case len(pts) == 0:
			errs = append(errs, fmt.Errorf("%s: no %s", id, metric))
		case e.longLived && metric != "container.resources.cpu.delay" && maxValue(pts) <= 0:
			errs = append(errs, fmt.Errorf("%s: %s stays %g", id, metric, maxValue(pts)))
		}
	}
	limits := []struct {
		metric string
		want   float64
	}{{"container.resources.memory.limit", e.memoryLimit}, {"container.resources.cpu.limit_cores", e.cpuLimit}}
	for _, l := range limits {
		if l.want == 0 {
			continue
		}
		pts := b.Points(byContainer(id, l.metric))
		if len(pts) == 0 || pts[len(pts)-1].Value != l.want {
			errs = append(errs, fmt.Errorf("%s: %s = %v, want %g (the pod spec's limit)", id, l.metric, values(pts), l.want))
		}
	}
	return errors.Join(errs...)
}

func values(pts []Point) []float64 {
	var out []float64
	for _, p := range pts {
		if !slices.Contains(out, p.Value) {
			out = append(out, p.Value)
		}
	}
	return out
}

// checkReport is the whole OTLP-side expectation for the workloads before the rollout.
func checkReport(ctx context.Context, api *cluster.Client, b *Backend, w *workloads) error {
	var errs []error
	list := w.expectations()
	for i := range list {
		e := &list[i]
		if err := checkContainer(b, *e); err != nil {
			errs = append(errs, err)
		}
	}

	// The OOM kill and the kubelet's restart of the same container.
	oom := expectation{pod: w.oom, container: "hog"}.id()
	if v := maxValue(b.Points(byContainer(oom, "container.oom_kills"))); v < 1 {
		errs = append(errs, fmt.Errorf("%s: container.oom_kills = %g, want >= 1", oom, v))
	}
	var pod cluster.Pod
	if err := api.Get(ctx, "/api/v1/namespaces/"+workloadNS+"/pods/oom", &pod); err != nil {
		errs = append(errs, err)
	} else if restarts := maxValue(b.Points(byContainer(oom, "container.restarts"))); restarts < 1 || len(pod.Status.ContainerStatuses) != 1 ||
		restarts > float64(pod.Status.ContainerStatuses[0].RestartCount) {
		errs = append(errs, fmt.Errorf("%s: container.restarts = %g, want between 1 and the kubelet's restartCount %+v", oom, restarts, pod.Status.ContainerStatuses))
	}

	// Log patterns with their levels: counts per level, and one record per pattern.
	logger := expectation{pod: w.logger, container: "app"}.id()
	for _, level := range []string{"warning", "error", "info"} {
		pts := b.Points(func(p *Point) bool {
			return p.Resource["codexray.container.id"] == logger && p.Metric == "container.log.messages" && p.Attrs["level"] == level
		})
		if maxValue(pts) <= 0 {
			errs = append(errs, fmt.Errorf("%s: no container.log.messages with level %s", logger, level))
		}
		recs := b.Logs(func(r *LogRecord) bool {
			return r.Resource["codexray.container.id"] == logger && r.Attrs["level"] == level && r.Attrs["template"] != "" &&
				r.Resource["k8s.pod.name"] == "logger" && r.Resource["k8s.namespace.name"] == workloadNS
		})
		if len(recs) == 0 {
			errs = append(errs, fmt.Errorf("%s: no log-pattern record with level %s", logger, level))
		}
	}

	// TCP: to the Service's ClusterIP, NAT resolved to a web pod; and to a web pod directly.
	client := expectation{pod: w.client, container: "client"}.id()
	var webAddrs []string
	for i := range w.web {
		p := &w.web[i]
		webAddrs = append(webAddrs, net.JoinHostPort(p.Status.PodIP, "8080"))
	}
	svc := net.JoinHostPort(w.serviceIP, "80")
	connects := b.Points(byContainer(client, "container.net.tcp.successful_connects"))
	var viaService, direct float64
	for _, p := range connects {
		switch {
		case p.Attrs["destination"] == svc && anyOf(p.Attrs["actual_destination"], webAddrs):
			viaService = max(viaService, p.Value)
		case p.Attrs["destination"] == webAddrs[0] && p.Attrs["actual_destination"] == webAddrs[0]:
			direct = max(direct, p.Value)
		}
	}
	if viaService <= 0 || direct <= 0 {
		seen := map[string]bool{}
		for _, p := range connects {
			seen[p.Attrs["destination"]+" -> "+p.Attrs["actual_destination"]] = true
		}
		errs = append(errs, fmt.Errorf("%s: successful connects to %s resolved to one of %v: %g, to %s directly: %g; seen %v",
			client, svc, webAddrs, viaService, webAddrs[0], direct, seen))
	}

	// The node: its name from the downward API, and every source up in the pod.
	node := b.Points(func(p *Point) bool { return p.Metric == "node.info" && p.Resource["codexray.container.id"] == "" })
	if len(node) == 0 || node[len(node)-1].Resource["k8s.node.name"] != cluster.NodeName {
		errs = append(errs, fmt.Errorf("node.info with k8s.node.name %s: %d points", cluster.NodeName, len(node)))
	}
	for _, src := range []string{"ebpf", "taskstats", "containers", "logs"} {
		st := b.Points(func(p *Point) bool {
			return p.Metric == "codexray.source.status" && p.Attrs["source"] == src && p.Value == 1
		})
		if len(st) == 0 || !anyOf(st[len(st)-1].Attrs["state"], []string{"running", "degraded"}) {
			var state string
			if len(st) > 0 {
				state = st[len(st)-1].Attrs["state"]
			}
			errs = append(errs, fmt.Errorf("source %s in the pod: state %q, want running (or degraded)", src, state))
		}
	}
	return errors.Join(errs...)
}

// checkPrometheus scrapes the agent's Prometheus port on the node (host network: the pod
// IP is the node's) and finds each pod there as coroot-node-agent names it (container_id
// /k8s/<namespace>/<pod>/<container>, app_id of the Deployment's pods), on a node named by
// machine_id.
func checkPrometheus(w *workloads) error {
	samples, err := testutil.Scrape(net.JoinHostPort(cluster.NodeIP, "9464"))
	if err != nil {
		return err
	}
	var errs []error
	need := func(name string, labels map[string]string, least float64) {
		got := testutil.FindSamples(samples, name, labels)
		best := -1.0
		for _, s := range got {
			best = max(best, s.Value)
		}
		if len(got) == 0 || best < least {
			errs = append(errs, fmt.Errorf("%s%v: %d series, max %g; want >= %g", name, labels, len(got), best, least))
		}
	}
	list := w.expectations()
	for i := range list {
		e := &list[i]
		labels := map[string]string{"container_id": e.id()}
		if e.container == "httpd" { // a pod of the Deployment "web": Coroot groups them by app_id
			labels["app_id"] = "/k8s/" + workloadNS + "/web"
		}
		need("container_info", labels, 1)
		if e.memoryLimit > 0 {
			need("container_resources_memory_limit_bytes", labels, e.memoryLimit)
		}
	}
	oom := map[string]string{"container_id": "/k8s/" + workloadNS + "/" + w.oom.Metadata.Name + "/hog"}
	need("container_oom_kills_total", oom, 1)
	need("container_restarts_total", oom, 1)
	need("container_log_messages_total", map[string]string{"container_id": "/k8s/" + workloadNS + "/" + w.logger.Metadata.Name + "/app", "level": "error"}, 1)
	need("container_net_tcp_successful_connects_total", map[string]string{
		"container_id": "/k8s/" + workloadNS + "/" + w.client.Metadata.Name + "/client",
		"destination":  net.JoinHostPort(w.serviceIP, "80"),
	}, 1)
	node := testutil.FindSamples(samples, "node_info", nil)
	if len(node) != 1 || node[0].Labels["machine_id"] == "" {
		errs = append(errs, fmt.Errorf("node_info: %+v; want one series with machine_id", node))
	}
	return errors.Join(errs...)
}

// rollout moves the Deployment to a new ReplicaSet and checks both ends of a container's
// life in the output: the new pods' series are complete within two collections of their
// start, and the old pods' series stop once the retention after their end has passed.
func rollout(ctx context.Context, t *testing.T, api *cluster.Client, b *Backend, w *workloads) {
	t.Helper()
	var oldIDs, oldNames []string
	for i := range w.web {
		p := &w.web[i]
		oldIDs = append(oldIDs, expectation{pod: *p, container: "httpd"}.id())
		oldNames = append(oldNames, p.Metadata.Name)
	}
	deleted := time.Now()
	err := api.MergePatch(ctx, "/apis/apps/v1/namespaces/"+workloadNS+"/deployments/web",
		map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]any{"revision": "2"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var fresh []cluster.Pod
	var gone time.Time
	eventually(ctx, t, "the rollout to a new ReplicaSet", 3*time.Minute, func() error {
		pods, err := api.Pods(ctx, workloadNS, "app=web")
		if err != nil {
			return err
		}
		fresh = fresh[:0]
		for i := range pods {
			p := &pods[i]
			if anyOf(p.Metadata.Name, oldNames) {
				return fmt.Errorf("old pod %s still there (%s)", p.Metadata.Name, p.Status.Phase)
			}
			if p.Ready() {
				fresh = append(fresh, *p)
			}
		}
		if len(fresh) != 2 {
			return fmt.Errorf("%d of %d new web pods Ready", len(fresh), len(pods))
		}
		gone = time.Now()
		return nil
	})
	t.Logf("rollout: old pods gone %s after the patch", gone.Sub(deleted).Round(time.Second))

	// New pods: every series there within two collections of the container's start.
	var fresher []expectation
	for i := range fresh {
		p := &fresh[i]
		fresher = append(fresher, expectation{pod: *p, container: "httpd", memoryLimit: 64 * mib, cpuLimit: 0.2, longLived: true})
	}
	expect(ctx, t, "the new web pods in the output", time.Minute, func() error {
		var errs []error
		for i := range fresher {
			e := &fresher[i]
			errs = append(errs, checkContainer(b, *e))
		}
		return errors.Join(errs...)
	})
	for i := range fresher {
		e := &fresher[i]
		started := e.pod.Status.ContainerStatuses[0].State.Running.StartedAt
		// StartedAt has a resolution of one second.
		bound := started.Add(2*collectionInterval + time.Second)
		for _, metric := range []string{
			"container.info", "container.resources.cpu.usage", "container.resources.memory.rss",
			"container.resources.memory.limit", "container.resources.cpu.limit_cores", "container.resources.cpu.delay",
		} {
			pts := b.Points(byContainer(e.id(), metric))
			if len(pts) == 0 {
				t.Errorf("%s: no %s", e.id(), metric)
				continue
			}
			first := pts[0].Time
			for _, p := range pts {
				if p.Time.Before(first) {
					first = p.Time
				}
			}
			if first.After(bound) {
				t.Errorf("%s: first %s point at %s, %s after the container started (%s): want within two collections (%s)",
					e.id(), metric, first.Format(time.RFC3339), first.Sub(started).Round(100*time.Millisecond), started.Format(time.RFC3339), 2*collectionInterval)
			}
		}
	}

	// Old pods: reported until their retention has passed, then no more; the same for the
	// Job's container, which ended before the rollout.
	var job cluster.Pod
	if err := api.Get(ctx, "/api/v1/namespaces/"+workloadNS+"/pods/"+w.job.Metadata.Name, &job); err != nil {
		t.Fatal(err)
	}
	jobEnd := job.Status.ContainerStatuses[0].State.Terminated
	if jobEnd == nil {
		t.Fatalf("the Job's container has not terminated: %v", job.Status.ContainerStatuses)
	}
	latest := gone.Add(retention + scanInterval + 2*collectionInterval)
	waitUntil := latest.Add(3 * collectionInterval)
	t.Logf("waiting until %s for the old pods' series to stop", waitUntil.Format(time.TimeOnly))
	select {
	case <-time.After(time.Until(waitUntil)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	for _, id := range oldIDs {
		seriesStop(t, b, id, deleted, gone)
	}
	jobID := expectation{pod: w.job, container: "work"}.id()
	seriesStop(t, b, jobID, jobEnd.FinishedAt.Add(-time.Second), jobEnd.FinishedAt.Add(time.Second))
	// The agent kept pushing meanwhile: the silence is the old pods', not the agent's.
	if node := b.Points(func(p *Point) bool { return p.Metric == "node.info" && p.Time.After(latest) }); len(node) == 0 {
		t.Errorf("no node.info after %s: the agent stopped pushing", latest.Format(time.RFC3339))
	}
}

// scanInterval is containers.scan_interval's default: the agent learns that a container is
// gone from its processes' exits (eBPF) or, at the latest, at its next scan.
const scanInterval = 10 * time.Second

// seriesStop checks the end of a container's series: it ended between endedFrom and endedBy;
// it is reported, under its Kubernetes identity, until its retention has passed (give or take
// a collection) and never after retention, a scan and two collections.
func seriesStop(t *testing.T, b *Backend, id string, endedFrom, endedBy time.Time) {
	t.Helper()
	pts := b.Points(func(p *Point) bool { return p.Resource["codexray.container.id"] == id })
	if len(pts) == 0 {
		t.Errorf("%s: no points at all", id)
		return
	}
	var last time.Time
	bare := map[string]bool{}
	for _, p := range pts {
		if p.Time.After(last) {
			last = p.Time
		}
		if p.Resource["k8s.pod.name"] == "" {
			bare[p.Metric] = true
		}
	}
	latest := endedBy.Add(retention + scanInterval + 2*collectionInterval)
	earliest := endedFrom.Add(retention - collectionInterval)
	switch {
	case last.After(latest):
		var metrics []string
		for _, p := range pts {
			if p.Time.After(latest) && !slices.Contains(metrics, p.Metric) {
				metrics = append(metrics, p.Metric)
			}
		}
		t.Errorf("%s: still reported at %s, %s after it ended (retention %s): %v", id, last.Format(time.RFC3339),
			last.Sub(endedBy).Round(time.Second), retention, metrics)
	case last.Before(earliest):
		t.Errorf("%s: last reported at %s, %s after it ended: before its retention (%s) was over", id,
			last.Format(time.RFC3339), last.Sub(endedFrom).Round(time.Second), retention)
	default:
		t.Logf("%s: last reported %s after it ended", id, last.Sub(endedBy).Round(time.Second))
	}
	if len(bare) > 0 {
		t.Errorf("%s: points without its Kubernetes identity (k8s.pod.name) for %v", id, keys(bare))
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
