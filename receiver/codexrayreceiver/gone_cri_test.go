package codexrayreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// A CRI container that lives a few milliseconds, which no scan of the registry ever sees
// running, is known only from its log file below the pods directory. Its log counts and pattern
// records carry its Kubernetes identity — namespace, pod, pod UID and container from the log
// path, image and runtime id from the CRI runtime, which still lists the exited container — and
// never a bare container.id; and its series stop once containers.retention is over.
func TestShortLivedCRIContainerHasItsIdentity(t *testing.T) {
	testutil.RequireContainerd(t)
	const retention = 4 * time.Second
	podsDir := t.TempDir()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = time.Second
	cfg.EBPF.Enabled, cfg.Taskstats.Enabled, cfg.Cloud.Enabled = false, false, false
	cfg.Containers.DockerSocket = ""
	cfg.Containers.CRISockets = []string{testutil.ContainerdSocket}
	cfg.Containers.ScanInterval = time.Hour // the first scan only: nothing sees the container run
	cfg.Containers.Retention = retention
	cfg.Logs.Docker.Enabled, cfg.Logs.Journald.Enabled, cfg.Logs.Files.Enabled = false, false, false
	cfg.Logs.CRI.PodsDir = podsDir
	cfg.Logs.DiscoveryInterval, cfg.Logs.PollInterval = 100*time.Millisecond, 20*time.Millisecond
	cfg.Logs.PatternsFlushInterval = time.Second
	cfg.Logs.Multiline.Enabled = false
	require.NoError(t, cfg.Validate())

	metricsSink, logsSink := new(consumertest.MetricsSink), new(consumertest.LogsSink)
	set := receivertest.NewNopSettings(metadata.Type)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, metricsSink)
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, logsSink)
	require.NoError(t, err)
	require.NoError(t, mr.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, mr.Shutdown(context.Background()))
		require.NoError(t, lr.Shutdown(context.Background()))
	})

	uid := fmt.Sprintf("c0de0018-0000-4000-8000-%012d", time.Now().UnixNano()%1e12)
	ns, podName := "retention", "job-short"
	dir := t.TempDir()
	write := func(name string, v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	podJSON := write("pod.json", map[string]any{
		"metadata":      map[string]any{"name": podName, "namespace": ns, "uid": uid},
		"log_directory": filepath.Join(podsDir, ns+"_"+podName+"_"+uid),
		"labels":        map[string]string{"codexray-test": "1"},
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	})
	ctrJSON := write("ctr.json", map[string]any{
		"metadata": map[string]any{"name": "work", "attempt": 0},
		"image":    map[string]any{"image": "docker.io/" + testutil.DockerImage},
		"command":  []string{"sh", "-c", `echo "INFO batch started"; echo "ERROR batch failed: disk full" >&2`},
		"log_path": "work/0.log",
		"labels":   map[string]string{"codexray-test": "1"},
		"linux":    map[string]any{},
	})
	podID := testutil.CrictlOutput(t, "runp", podJSON)
	t.Cleanup(func() {
		_ = testutil.Crictl("stopp", podID).Run()
		_ = testutil.Crictl("rmp", "-f", podID).Run()
	})
	ctrID := testutil.CrictlOutput(t, "create", podID, ctrJSON, podJSON)
	testutil.CrictlOutput(t, "start", ctrID)

	// It lives milliseconds.
	var inspect struct {
		Status struct {
			State      string `json:"state"`
			StartedAt  string `json:"startedAt"`
			FinishedAt string `json:"finishedAt"`
		} `json:"status"`
	}
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(testutil.CrictlOutput(t, "inspect", ctrID)), &inspect))
		return inspect.Status.State == "CONTAINER_EXITED"
	}, 10*time.Second, 20*time.Millisecond)
	started, err1 := time.Parse(time.RFC3339Nano, inspect.Status.StartedAt)
	finished, err2 := time.Parse(time.RFC3339Nano, inspect.Status.FinishedAt)
	require.NoError(t, err1)
	require.NoError(t, err2)
	lived := finished.Sub(started)
	t.Logf("the container lived %s", lived)
	assert.Less(t, lived, 100*time.Millisecond, "not a short-lived container")

	id := "/k8s/" + ns + "/" + podName + "/work"
	identity := map[string]string{
		"codexray.container.id": id, "container.id": ctrID, "k8s.namespace.name": ns, "k8s.pod.name": podName, "k8s.pod.uid": uid,
		"k8s.container.name": "work", "container.image.name": "docker.io/" + strings.TrimSuffix(testutil.DockerImage, ":1"),
		"container.runtime.name": "containerd",
	}
	// pointsOf returns every point of the container so far.
	pointsOf := func() []metricstest.Point {
		var out []metricstest.Point
		for _, md := range metricsSink.AllMetrics() {
			for _, p := range metricstest.Points(md) {
				if v, _ := p.Resource.Get("codexray.container.id"); v.Str() == id {
					out = append(out, p)
				}
			}
		}
		return out
	}
	var messages float64
	require.Eventually(t, func() bool {
		messages = 0
		for _, p := range pointsOf() {
			if p.Name == "container.log.messages" {
				messages = max(messages, p.Value)
			}
		}
		return messages >= 1
	}, 20*time.Second, 50*time.Millisecond, "the short-lived container's log messages never reported")
	for _, p := range pointsOf() {
		for k, want := range identity {
			v, _ := p.Resource.Get(k)
			assert.Equal(t, want, v.AsString(), "%s of %s", k, p.Name)
		}
	}
	c, ok := mr.(*codexrayReceiver).registry.ContainerByID(containers.ID(id))
	require.True(t, ok)
	assert.Equal(t, ctrID, c.RuntimeID)
	assert.Empty(t, c.CgroupPath, "a scan saw it run: not the case this test is about")
	assert.False(t, c.GoneAt().IsZero())

	// Its pattern records, under the same identity.
	require.Eventually(t, func() bool {
		for _, l := range logsSink.AllLogs() {
			for i := 0; i < l.ResourceLogs().Len(); i++ {
				res := l.ResourceLogs().At(i).Resource().Attributes()
				if v, _ := res.Get("codexray.container.id"); v.Str() != id {
					continue
				}
				for k, want := range identity {
					v, _ := res.Get(k)
					assert.Equal(t, want, v.AsString(), "record resource %s", k)
				}
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "no pattern record of the short-lived container")

	// The retention after the registry described it: its series stop.
	described := time.Now()
	time.Sleep(retention + 3*cfg.CollectionInterval)
	var last pcommon.Timestamp
	for _, p := range pointsOf() {
		last = max(last, p.Time)
	}
	assert.Less(t, last.AsTime(), described.Add(retention+2*cfg.CollectionInterval), "still reported after its retention")
	pointsBefore := len(pointsOf())
	time.Sleep(2 * cfg.CollectionInterval)
	assert.Equal(t, pointsBefore, len(pointsOf()), "reported again after its retention")
}
