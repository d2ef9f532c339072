package codexrayreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/internal/tracer"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// fakeDockerd answers GET /containers/<id>/json like dockerd, from a table the test changes as
// its containers stop, and counts the questions about each.
type fakeDockerd struct {
	mu      sync.Mutex
	inspect map[string]map[string]any // runtime id -> the inspect document
	asked   map[string]int
}

func serveFakeDockerd(t *testing.T) (*fakeDockerd, string) {
	t.Helper()
	d := &fakeDockerd{inspect: map[string]map[string]any{}, asked: map[string]int{}}
	dir, err := os.MkdirTemp("", "cx") // short: unix socket paths are limited to 108 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", socket)
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/containers/"), "/json")
		d.mu.Lock()
		d.asked[id]++
		doc, ok := d.inspect[id]
		d.mu.Unlock()
		if !ok {
			http.Error(w, `{"message":"No such container"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(doc)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return d, socket
}

func (d *fakeDockerd) set(id, name, image string, running bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inspect[id] = map[string]any{
		"Name": "/" + name, "Config": map[string]any{"Image": image}, "State": map[string]any{"Running": running},
	}
}

// stopped makes dockerd say the container exited (it keeps it until it is removed).
func (d *fakeDockerd) stopped(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inspect[id]["State"] = map[string]any{"Running": false}
}

func (d *fakeDockerd) questions(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[id]
}

// kernellessEBPF is the eBPF source without its kernel side, so the test runs unprivileged:
// start builds the tracer and restores the saved TCP state as the source's start does, builds
// the L7 capture with the source's own newL7 (which restores the saved request series), and the
// test feeds both what the kernel would. Everything else (records, saved state, retention) is
// the source's own.
type kernellessEBPF struct{ *ebpfSource }

func (s kernellessEBPF) start(context.Context, component.Host) error {
	t := tracer.New(tracer.Options{Config: s.cfg, Resolver: s.registry, Logger: s.logger})
	if s.state != nil {
		t.Restore(decodeRecords[tracer.SavedContainer](s.state, stateTCP, s.logger))
	}
	s.stop = make(chan struct{}) // closed by shutdown; no process worker runs
	s.mu.Lock()
	s.tracer = t
	if s.l7cfg.Enabled {
		s.l7 = s.newL7(t)
	}
	s.mu.Unlock()
	return nil
}

// request feeds the L7 capture one HTTP exchange of a process: outbound on a socket connect
// made, or inbound.
func (s kernellessEBPF) request(pid uint32, sock uint64, inbound bool) {
	s.mu.Lock()
	lt := s.l7
	s.mu.Unlock()
	feedHTTP(lt, time.Now(), l7.Segment{Sock: sock, PID: pid}, inbound)
}

func (s kernellessEBPF) connect(pid uint32, sock uint64) {
	s.mu.Lock()
	t := s.tracer
	s.mu.Unlock()
	src, dst := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.1:5432")
	t.Handle(&ebpf.Event{Type: ebpf.EventConnect, Sock: sock, PID: pid, Duration: time.Millisecond, Source: src, Destination: dst})
	t.Handle(&ebpf.Event{Type: ebpf.EventClose, Sock: sock, PID: pid, Source: src, Destination: dst})
}

// histogramPoint is a cumulative histogram data point as a restart must continue it.
type histogramPoint struct {
	start       pcommon.Timestamp
	count       uint64
	sum         float64
	bucketCount string
}

// histograms returns a container's histogram points of the sink's last collection, by metric
// name and attributes.
func histograms(sink *consumertest.MetricsSink, container string) map[string]histogramPoint {
	all := sink.AllMetrics()
	if len(all) == 0 {
		return nil
	}
	out := map[string]histogramPoint{}
	rms := all[len(all)-1].ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		if id, _ := rms.At(i).Resource().Attributes().Get("codexray.container.id"); id.Str() != container {
			continue
		}
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			for k := 0; k < sms.At(j).Metrics().Len(); k++ {
				m := sms.At(j).Metrics().At(k)
				if m.Type() != pmetric.MetricTypeHistogram {
					continue
				}
				for l := 0; l < m.Histogram().DataPoints().Len(); l++ {
					dp := m.Histogram().DataPoints().At(l)
					out[fmt.Sprint(m.Name(), dp.Attributes().AsRaw())] = histogramPoint{
						start: dp.StartTimestamp(), count: dp.Count(), sum: dp.Sum(), bucketCount: fmt.Sprint(dp.BucketCounts().AsRaw()),
					}
				}
			}
		}
	}
	return out
}

// collection is one collection the sink received: its time and the points by codexray.container.id.
type collection struct {
	at     time.Time
	points map[string][]metricstest.Point
}

func collections(sink *consumertest.MetricsSink) []collection {
	var out []collection
	for _, md := range sink.AllMetrics() {
		c := collection{points: map[string][]metricstest.Point{}}
		for _, p := range metricstest.Points(md) {
			id, _ := p.Resource.Get("codexray.container.id")
			c.points[id.Str()] = append(c.points[id.Str()], p)
			c.at = p.Time.AsTime()
		}
		out = append(out, c)
	}
	return out
}

// sourceCounters are a container's cumulative sums that sources count and a restart continues
// (the registry's container.restarts is left out), by Key.
func sourceCounters(pts []metricstest.Point) map[string]metricstest.Point {
	out := map[string]metricstest.Point{}
	for _, p := range pts {
		if p.Type == pmetric.MetricTypeSum && p.Name != "container.restarts" {
			out[p.Key()] = p
		}
	}
	return out
}

func containerAttrs(pts []metricstest.Point) map[string]string {
	out := map[string]string{}
	if len(pts) == 0 {
		return out
	}
	pts[0].Resource.Range(func(k string, v pcommon.Value) bool {
		if strings.HasPrefix(k, "container.") || strings.HasPrefix(k, "k8s.") {
			out[k] = v.AsString()
		}
		return true
	})
	return out
}

func dockerLogLine(text string) string {
	b, _ := json.Marshal(map[string]string{"log": text + "\n", "stream": "stdout", "time": time.Now().UTC().Format(time.RFC3339Nano)})
	return string(b)
}

// README, "When a container is gone", Agent restarts: with storage, a container still within
// its retention when the agent stops is described again by the registry after the restart and
// reported for the retention counted from the restart, with its identity and its counts under
// their old starts; the state of a container whose retention was over is not saved, so it is
// never reported again (nor asked about). Through the receiver: the real registry over a
// fixture cgroup tree and procfs with a fake dockerd, the real logs source reading dockerd's
// json-file logs, the eBPF source without its kernel side, restarted on the same storage.
func TestAgentRestartReportsContainersWithinRetention(t *testing.T) {
	const (
		retention = 3 * time.Second
		downtime  = 2 * time.Second // longer than a collection, shorter than the retention
		idA       = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
		idB       = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
		pidA      = 301
		pidB      = 302
	)
	ctrA, ctrB := "/docker/"+idA, "/docker/"+idB
	testdata, err := filepath.Abs("../../testdata")
	require.NoError(t, err)
	cgroupRoot := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
	proc := hostOnlyProcfs(t)
	logDir := t.TempDir()
	dockerd, socket := serveFakeDockerd(t)
	for pid, id := range map[int]string{pidA: idA, pidB: idB} {
		dir := "/system.slice/docker-" + id + ".scope"
		require.NoError(t, os.MkdirAll(filepath.Join(cgroupRoot, dir), 0o755))
		require.NoError(t, os.MkdirAll(filepath.Join(proc, fmt.Sprint(pid)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(proc, fmt.Sprint(pid), "cgroup"), []byte("0::"+dir+"\n"), 0o644))
	}
	dockerd.set(idA, "billing", "shop/billing:3", true)
	dockerd.set(idB, "migrate", "shop/migrate:1", true)
	exits := func(pid int, id string) {
		require.NoError(t, os.RemoveAll(filepath.Join(proc, fmt.Sprint(pid))))
		require.NoError(t, os.RemoveAll(filepath.Join(cgroupRoot, "system.slice", "docker-"+id+".scope")))
		dockerd.stopped(id)
	}
	writeLog := func(id string, lines ...string) {
		path := filepath.Join(logDir, id, id+"-json.log")
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		for i := range lines {
			lines[i] = dockerLogLine(lines[i])
		}
		appendTo(t, path, lines...)
	}

	client := newMemClient()
	run := func() (*codexrayReceiver, *consumertest.MetricsSink, *kernellessEBPF) {
		cfg := createDefaultConfig().(*Config)
		onlyNode(t, cfg)
		cfg.Cgroups.Root, cfg.Cgroups.ProcRoot = cgroupRoot, proc
		cfg.Containers.DockerSocket = socket
		cfg.Containers.Retention = retention
		cfg.Containers.ScanInterval = 100 * time.Millisecond
		cfg.CollectionInterval = 100 * time.Millisecond
		cfg.Storage = "file_storage"
		cfg.EBPF.Enabled = true
		cfg.Logs.Enabled = true
		lc := &cfg.Logs
		lc.Docker.Enabled, lc.Docker.ContainersDir = true, logDir
		lc.CRI.Enabled, lc.Journald.Enabled = false, false
		lc.PollInterval, lc.DiscoveryInterval = 10*time.Millisecond, 20*time.Millisecond
		require.NoError(t, lc.Validate())
		sink := new(consumertest.MetricsSink)
		r := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), nil)
		r.setMetricsConsumer(sink)
		eb := &kernellessEBPF{}
		r.newSources = func(env sourceEnv) []source {
			eb.ebpfSource = newEBPFSource(env).(*ebpfSource)
			return []source{eb, newLogsSource(env)}
		}
		require.NoError(t, r.Start(context.Background(), hostWith(client)))
		return r, sink, eb
	}
	// saved are the records of a container's state (the read position of its log file is the
	// file's, kept while the file is there).
	saved := func(id string) []string {
		var keys []string
		for k := range kvStrings(client) {
			if strings.HasPrefix(k, "state/") && strings.Contains(k, id) {
				keys = append(keys, k)
			}
		}
		return keys
	}
	last := func(sink *consumertest.MetricsSink) collection {
		all := collections(sink)
		if len(all) == 0 {
			return collection{}
		}
		return all[len(all)-1]
	}

	// First run: both containers run, log and connect.
	first, sink1, eb1 := run()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			require.NoError(t, first.Shutdown(context.Background()))
		}
	})
	time.Sleep(100 * time.Millisecond) // past the launch discovery: the log files are new
	writeLog(idA, "INFO charge 1 accepted", "INFO charge 2 accepted", "ERROR charge 3 declined")
	writeLog(idB, "INFO migration 7 applied")
	require.Eventually(t, func() bool {
		_, okA := first.registry.ContainerByID(containers.ID(ctrA))
		_, okB := first.registry.ContainerByID(containers.ID(ctrB))
		return okA && okB
	}, 5*time.Second, 10*time.Millisecond)
	eb1.connect(pidA, 1)
	eb1.connect(pidA, 2)
	eb1.connect(pidB, 3)
	eb1.request(pidA, 1, false) // to the destination A connected to
	eb1.request(pidA, 2, false)
	eb1.request(pidA, 10, true)
	eb1.request(pidB, 11, true)
	const (
		httpOut = "container.http.requests{actual_destination=10.0.0.1:5432,destination=10.0.0.1:5432,status=200}"
		httpIn  = "container.http.inbound_requests{status=200}"
	)
	require.Eventually(t, func() bool {
		c := last(sink1)
		a, b := sourceCounters(c.points[ctrA]), sourceCounters(c.points[ctrB])
		return len(a) >= 2 && len(b) >= 2 && a[httpOut].Value == 2 && a[httpIn].Value == 1 && b[httpIn].Value == 1
	}, 5*time.Second, 10*time.Millisecond, "both containers reported with their log, TCP and HTTP counts")
	attrsA := containerAttrs(last(sink1).points[ctrA])
	for k, v := range map[string]string{
		"container.id": idA, "container.name": "billing", "container.image.name": "shop/billing", "container.runtime.name": "docker",
	} {
		assert.Equal(t, v, attrsA[k], k)
	}

	// B stops and its retention ends while the agent runs: its state leaves the saved state.
	exits(pidB, idB)
	require.Eventually(t, func() bool {
		c, ok := first.registry.ContainerByID(containers.ID(ctrB))
		return ok && !c.GoneAt().IsZero()
	}, 5*time.Second, 10*time.Millisecond)
	require.NotEmpty(t, saved(idB), "B's state is saved while it is within its retention")
	require.Contains(t, saved(idB), stateL7+ctrB, "B's request series are saved while it is within its retention")
	require.Eventually(t, func() bool {
		_, reported := last(sink1).points[ctrB]
		return !reported && len(saved(idB)) == 0
	}, retention+5*time.Second, 50*time.Millisecond, "B's retention is over: not reported, not saved")

	// A logs once more and stops; the agent stops within A's retention.
	writeLog(idA, "INFO charge 4 accepted")
	require.Eventually(t, func() bool {
		n := 0.0
		for _, p := range last(sink1).points[ctrA] {
			if p.Name == "container.log.messages" {
				n += p.Value
			}
		}
		return n == 4
	}, 5*time.Second, 10*time.Millisecond, "A's four lines counted")
	exits(pidA, idA)
	require.Eventually(t, func() bool {
		c, ok := first.registry.ContainerByID(containers.ID(ctrA))
		return ok && !c.GoneAt().IsZero()
	}, 5*time.Second, 10*time.Millisecond)
	goneA := time.Now()
	require.NoError(t, first.Shutdown(context.Background()))
	stopped = true
	final := last(sink1)
	finalA := sourceCounters(final.points[ctrA])
	require.NotEmpty(t, finalA, "A is within its retention at the stop")
	assert.NotContains(t, final.points, ctrB)
	assert.Contains(t, saved(idA), stateL7+ctrA)
	assert.Empty(t, saved(idB))
	askedB := dockerd.questions(idB)
	histA := histograms(sink1, ctrA)
	require.Len(t, histA, 2, "A's HTTP histograms, outbound and inbound")

	// The agent is down; then it restarts on the same storage. A runs no more, B neither; their
	// log files are still there, as dockerd keeps them until the containers are removed.
	time.Sleep(downtime)
	restarted := time.Now()
	second, sink2, _ := run()
	defer func() { require.NoError(t, second.Shutdown(context.Background())) }()

	// A is described again and reported with its identity and its counts, continued.
	require.Eventually(t, func() bool { return len(last(sink2).points[ctrA]) > 0 }, 5*time.Second, 10*time.Millisecond)
	again := last(sink2)
	assert.Equal(t, containerAttrs(final.points[ctrA]), containerAttrs(again.points[ctrA]), "A's identity after the restart")
	againA := sourceCounters(again.points[ctrA])
	for key, before := range finalA {
		after, ok := againA[key]
		if !assert.True(t, ok, "%s of A is reported after the restart", key) {
			continue
		}
		assert.Equal(t, before.Start, after.Start, "%s continues under its start", key)
		assert.GreaterOrEqual(t, after.Value, before.Value, "%s went below what was reported before the restart", key)
	}
	assert.Equal(t, 2.0, againA["container.net.tcp.successful_connects{actual_destination=10.0.0.1:5432,destination=10.0.0.1:5432}"].Value, "%v", againA)
	assert.Equal(t, 2.0, againA[httpOut].Value, "%v", againA)
	assert.Equal(t, 1.0, againA[httpIn].Value, "%v", againA)
	assert.Equal(t, histA, histograms(sink2, ctrA), "A's request histograms continue under their starts, with their buckets")

	// For the retention counted from the restart, then no more: its series stop, its saved
	// state goes.
	require.Eventually(t, func() bool {
		c := last(sink2)
		return c.at.After(restarted.Add(retention+2*time.Second)) && len(saved(idA)) == 0
	}, retention+5*time.Second, 50*time.Millisecond, "A's state is not deleted after its retention")
	var lastA time.Time
	for _, c := range collections(sink2) {
		if _, ok := c.points[ctrA]; ok {
			lastA = c.at
		}
		assert.NotContains(t, c.points, ctrB, "B's retention was over before the stop")
	}
	assert.True(t, lastA.After(goneA.Add(retention)), "A's retention counts from the restart, not from its exit: last reported %v, exit %v",
		lastA.Format(time.StampMilli), goneA.Format(time.StampMilli))
	// Collections are 100 ms apart; a second of slack each way for a loaded machine.
	assert.False(t, lastA.Before(restarted.Add(retention-time.Second)), "A reported until %v, restart %v",
		lastA.Format(time.StampMilli), restarted.Format(time.StampMilli))
	assert.True(t, lastA.Before(restarted.Add(retention+2*time.Second)), "A reported until %v, restart %v",
		lastA.Format(time.StampMilli), restarted.Format(time.StampMilli))
	assert.NotContains(t, last(sink2).points, ctrA)
	assert.Equal(t, askedB, dockerd.questions(idB), "dockerd is not asked about B after the restart")
}
