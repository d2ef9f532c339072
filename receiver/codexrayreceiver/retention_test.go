package codexrayreceiver

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7tracer"
	"github.com/codexray/codexray-node-agent/internal/logs"
	"github.com/codexray/codexray-node-agent/internal/taskstats"
	"github.com/codexray/codexray-node-agent/internal/tracer"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

// fakeListing is the registry as collection sees it: the containers the test lists (the
// registry lists a gone container until its retention is over), and what it is asked about.
type fakeListing struct {
	list  []*containers.Container
	asked map[containers.ID]string // DescribeGone questions: id -> log file
}

func (f *fakeListing) Containers() []*containers.Container { return slices.Clone(f.list) }
func (f *fakeListing) DescribeGone(id containers.ID, logFile string) {
	f.asked[id] = logFile
}

// cgroupIDResolver attributes the tracer's events by cgroup id.
type cgroupIDResolver map[uint64]containers.ID

func (r cgroupIDResolver) ContainerIDByCgroupID(id uint64) (containers.ID, bool) {
	c, ok := r[id]
	return c, ok
}
func (r cgroupIDResolver) ContainerIDByPID(uint32) (containers.ID, bool) { return "", false }

// retentionBed is a receiver whose sources are real state holders (the tracer, the L7 capture,
// log patterns) or a fake one (delay totals), fed by hand, collected at times the test chooses.
type retentionBed struct {
	t        *testing.T
	r        *codexrayReceiver
	listing  *fakeListing
	now      time.Time
	tracer   *tracer.Tracer
	l7       *l7tracer.Tracer
	delays   *fakeDelays
	patterns *logs.Patterns
	records  *logsCapture
	logs     *logsSource
}

const (
	cgWeb, cgJob, cgOOM, cgAPI = 1, 2, 3, 4
	jobLog                     = "/var/log/pods/batch_job-x_6a1e0f52-0000-4000-8000-000000000001/work/0.log"
)

var (
	retWeb = &containers.Container{ID: "/docker/web", Name: "web", Image: "nginx:1", Runtime: "docker"}
	retJob = &containers.Container{
		ID: "/k8s/batch/job-x/work", Name: "work", Image: "busybox:1", Runtime: "containerd",
		PodName: "job-x", Namespace: "batch", PodUID: "6a1e0f52-0000-4000-8000-000000000001", ContainerName: "work",
	}
	retOOM = &containers.Container{ID: "/docker/oomer", Name: "oomer", Image: "hog:1", Runtime: "docker"}
	retAPI = &containers.Container{ID: "/docker/api", Name: "api", Image: "api:1", Runtime: "docker"}
)

func newRetentionBed(t *testing.T) *retentionBed {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Containers.Retention = 20 * time.Second
	cfg.EBPF.OOMKillRetention = 10 * time.Minute
	set := receivertest.NewNopSettings(metadata.Type)
	b := &retentionBed{
		t: t, listing: &fakeListing{asked: map[containers.ID]string{}}, now: time.Now(),
		delays: &fakeDelays{delays: map[containers.ID]taskstats.ContainerDelays{}}, records: &logsCapture{},
	}
	r := newReceiver(cfg, set, nil)
	r.mb = metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, set, metadata.WithStartTime(pcommon.NewTimestampFromTime(b.now.Add(-time.Hour))))
	r.node = newNodeSource(cfg.Node, b.now, "", nil)
	r.listing = b.listing
	r.retention = newRetention(cfg.Containers.Retention)
	r.containerMetrics = newContainerMetrics(cfg.Cgroups, &containers.Registry{}, zap.NewNop())
	r.states[registryName] = stateRunning
	env := sourceEnv{
		cfg: cfg, settings: set, registry: &containers.Registry{}, node: r.node, emitLogs: b.records.emit,
		lastListed: r.retention.lastListed,
	}
	eb := newEBPFSource(env).(*ebpfSource)
	resolver := cgroupIDResolver{cgWeb: retWeb.ID, cgJob: retJob.ID, cgOOM: retOOM.ID, cgAPI: retAPI.ID}
	b.tracer = tracer.New(tracer.Options{Config: cfg.EBPF.Config, Now: func() time.Time { return b.now }, Resolver: resolver})
	eb.tracer = b.tracer
	b.l7 = l7tracer.New(l7tracer.Options{
		Config: cfg.EBPF.L7, Now: func() time.Time { return b.now }, Resolver: resolver, Connections: b.tracer,
	})
	eb.l7 = b.l7
	ts := newTaskstatsSource(env).(*taskstatsSource)
	ts.collector = b.delays
	b.logs = newLogsSource(env).(*logsSource)
	b.patterns = logs.NewPatterns(cfg.Logs.Patterns, logs.MultilineConfig{})
	b.logs.patterns = b.patterns
	r.sources = []source{eb, ts, b.logs}
	for _, s := range r.sources {
		r.states[s.name()] = stateRunning
	}
	b.r = r
	return b
}

func (b *retentionBed) connect(cgroup uint64, sock uint64) {
	b.tracer.Handle(&ebpf.Event{
		Type: ebpf.EventConnect, Sock: sock, CgroupID: cgroup, Duration: time.Millisecond,
		Source: netip.MustParseAddrPort("10.0.0.5:40000"), Destination: netip.MustParseAddrPort("10.0.0.1:80"),
	})
	b.tracer.Handle(&ebpf.Event{
		Type: ebpf.EventClose, Sock: sock, CgroupID: cgroup,
		Source: netip.MustParseAddrPort("10.0.0.5:40000"), Destination: netip.MustParseAddrPort("10.0.0.1:80"),
	})
}

// request feeds one HTTP exchange of a container's to the L7 capture: outbound on a socket the
// tracer saw it connect, or inbound (it serves).
func (b *retentionBed) request(cgroup, sock uint64, inbound bool) {
	feedHTTP(b.l7, b.now, l7.Segment{Sock: sock, CgroupID: cgroup}, inbound)
}

// feedHTTP feeds lt one HTTP exchange of 1 ms at time at, on the connection (and of the
// process or cgroup) of seg: outbound, or inbound (the container serves).
func feedHTTP(lt *l7tracer.Tracer, at time.Time, seg l7.Segment, inbound bool) {
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	reqFlags, respFlags := l7.FlagNew, l7.FlagReceived
	if inbound {
		reqFlags, respFlags = l7.FlagNew|l7.FlagReceived|l7.FlagServer, l7.FlagServer
	}
	first, second := seg, seg
	first.Timestamp, first.Length, first.Protocol, first.Flags, first.Payload = uint64(at.UnixNano()), uint32(len(req)), l7.ProtocolHTTP, reqFlags, req
	second.Timestamp, second.Length, second.Protocol, second.Flags, second.Payload = uint64(at.UnixNano())+1e6, uint32(len(resp)), l7.ProtocolHTTP, respFlags, resp
	lt.Feed(&first)
	lt.Feed(&second)
}

func (b *retentionBed) log(id containers.ID, file, text string) {
	b.patterns.Message(&logs.Message{Container: id, Source: logs.SourceStdoutStderr, Stream: "stdout", Text: text, File: file})
}

// collect collects at the bed's clock, d after its last collection, and returns the points by
// container.id ("" for the node).
func (b *retentionBed) collect(d time.Duration) map[string][]metricstest.Point {
	b.now = b.now.Add(d)
	md := b.r.collect(context.Background(), b.now)
	out := map[string][]metricstest.Point{}
	for _, p := range metricstest.Points(md) {
		id, _ := p.Resource.Get("codexray.container.id")
		out[id.Str()] = append(out[id.Str()], p)
	}
	return out
}

// flushRecords flushes the pattern records and returns their count by container.id, with the
// k8s.pod.name each went out under.
func (b *retentionBed) flushRecords() map[string]string {
	b.logs.flush(b.t.Context(), b.now)
	return b.takeRecords()
}

func (b *retentionBed) takeRecords() map[string]string {
	b.records.mu.Lock()
	defer b.records.mu.Unlock()
	out := map[string]string{}
	for _, l := range b.records.logs {
		for i := 0; i < l.ResourceLogs().Len(); i++ {
			res := l.ResourceLogs().At(i).Resource().Attributes()
			id, _ := res.Get("codexray.container.id")
			pod, _ := res.Get("k8s.pod.name")
			out[id.Str()] = pod.Str()
		}
	}
	b.records.logs = nil
	return out
}

func names(pts []metricstest.Point) []string {
	var out []string
	for _, p := range pts {
		if !slices.Contains(out, p.Name) {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

func value(pts []metricstest.Point, name string) (metricstest.Point, bool) {
	for _, p := range pts {
		if p.Name == name {
			return p, true
		}
	}
	return metricstest.Point{}, false
}

func resourceAttr(pts []metricstest.Point, key string) string {
	if len(pts) == 0 {
		return ""
	}
	v, _ := pts[0].Resource.Get(key)
	return v.AsString()
}

// A gone container's series stop once the registry no longer lists it (containers.retention):
// every source forgets what it held for it, whatever its own TTL, and nothing of it is
// reported again — except an OOM-killed container's kill count, alone, under the identity the
// registry last gave it, until oom_kill_retention. The last lines' pattern records go out under
// that identity too. A container that comes back after its retention counts from zero under a
// later start; one that comes back within it continues its counts under their start.
func TestGoneContainersSeriesStopAfterRetention(t *testing.T) {
	b := newRetentionBed(t)
	b.listing.list = []*containers.Container{retAPI, retJob, retOOM, retWeb}
	b.connect(cgWeb, 1)
	b.connect(cgJob, 2)
	b.connect(cgAPI, 3)
	b.request(cgWeb, 1, false)
	b.request(cgJob, 10, true)
	b.tracer.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: cgOOM, TargetPID: 7})
	b.delays.delays[retWeb.ID] = taskstats.ContainerDelays{CPU: 1, Since: b.now}
	b.delays.delays[retJob.ID] = taskstats.ContainerDelays{CPU: 2, Since: b.now}
	b.log(retWeb.ID, "/var/lib/docker/containers/web/web-json.log", "INFO request served")
	b.log(retJob.ID, jobLog, "INFO job started")

	first := b.collect(0)
	for _, c := range []*containers.Container{retWeb, retJob} {
		assert.Subset(t, names(first[string(c.ID)]), []string{
			"container.info", "container.log.messages", "container.net.tcp.successful_connects", "container.resources.cpu.delay",
		}, c.ID)
	}
	assert.Contains(t, names(first[string(retWeb.ID)]), "container.http.requests")
	assert.Contains(t, names(first[string(retJob.ID)]), "container.http.inbound_requests")
	assert.Equal(t, []string{"container.info", "container.oom_kills", "container.restarts"}, names(first[string(retOOM.ID)]))
	apiStart, ok := value(first[string(retAPI.ID)], "container.net.tcp.successful_connects")
	require.True(t, ok)
	assert.Equal(t, map[string]string{string(retWeb.ID): "", string(retJob.ID): "job-x"}, b.flushRecords())

	// The job logs its last line; the api container is gone and comes back within its
	// retention (the registry kept listing it).
	b.log(retJob.ID, jobLog, "INFO job done")
	b.connect(cgAPI, 4)
	within := b.collect(10 * time.Second)
	p, _ := value(within[string(retAPI.ID)], "container.net.tcp.successful_connects")
	assert.Equal(t, 2.0, p.Value, "back within the retention: its count continues")
	assert.Equal(t, apiStart.Start, p.Start, "under its start")

	// The retention of web, job and the OOM-killed container is over: the registry lists them
	// no more. Every source still held state for them (destination_ttl 10m, L7 series_ttl,
	// stream_expiry 1h, delay totals 5m).
	b.listing.list = []*containers.Container{retAPI}
	gone := b.collect(15 * time.Second)
	for _, id := range []containers.ID{retWeb.ID, retJob.ID} {
		assert.NotContains(t, gone, string(id), "%s reported after its retention", id)
	}
	assert.Equal(t, []string{"container.oom_kills"}, names(gone[string(retOOM.ID)]), "the OOM-killed container: its kill count only")
	assert.Equal(t, "oomer", resourceAttr(gone[string(retOOM.ID)], "container.name"))
	assert.Equal(t, "hog", resourceAttr(gone[string(retOOM.ID)], "container.image.name"), "the image name without its tag (container.image.tags)")
	tracked, _ := value(gone[""], "codexray.containers.tracked")
	assert.Equal(t, 2.0, tracked.Value, "api, and the OOM-killed container")
	held := b.tracer.ContainerIDs()
	slices.Sort(held)
	assert.Equal(t, []containers.ID{retAPI.ID, retOOM.ID}, held, "the tracer forgot web's and the job's destinations")
	assert.Empty(t, b.l7.ContainerIDs(), "the L7 capture forgot web's and the job's request series")
	assert.ElementsMatch(t, []containers.ID{retWeb.ID, retJob.ID}, b.delays.forgotten)
	assert.Empty(t, b.patterns.Containers(), "the log streams are forgotten")
	assert.Equal(t, map[string]string{string(retJob.ID): "job-x"}, b.takeRecords(),
		"the job's last line went out before its stream was forgotten, under its identity")
	assert.Empty(t, b.listing.asked, "no container the registry listed is asked about")

	// A late line of web's (a reader behind): its state is forgotten again, not described as
	// a container never seen.
	b.log(retWeb.ID, "/var/lib/docker/containers/web/web-json.log", "INFO late")
	late := b.collect(15 * time.Second)
	assert.NotContains(t, late, string(retWeb.ID))
	assert.Empty(t, b.listing.asked)
	assert.Empty(t, b.patterns.Containers())

	// oom_kill_retention after the kill, the kill count stops too.
	for range 2 {
		after := b.collect(4 * time.Minute)
		assert.Equal(t, []string{"container.oom_kills"}, names(after[string(retOOM.ID)]))
	}
	done := b.collect(2 * time.Minute)
	assert.NotContains(t, done, string(retOOM.ID))
	assert.NotContains(t, b.tracer.ContainerIDs(), retOOM.ID)

	// Web runs again under its ID: counts from zero under later starts.
	back := *retWeb
	back.FirstSeen = b.now
	b.listing.list = []*containers.Container{retAPI, &back}
	b.connect(cgWeb, 5)
	b.request(cgWeb, 5, false)
	b.log(retWeb.ID, "/var/lib/docker/containers/web/web-json.log", "INFO request served")
	again := b.collect(time.Minute)
	connects, ok := value(again[string(retWeb.ID)], "container.net.tcp.successful_connects")
	require.True(t, ok, "%v", names(again[string(retWeb.ID)]))
	assert.Equal(t, 1.0, connects.Value)
	firstConnects, _ := value(first[string(retWeb.ID)], "container.net.tcp.successful_connects")
	assert.Greater(t, connects.Start, firstConnects.Start)
	messages, _ := value(again[string(retWeb.ID)], "container.log.messages")
	firstMessages, _ := value(first[string(retWeb.ID)], "container.log.messages")
	assert.Equal(t, 1.0, messages.Value)
	assert.Greater(t, messages.Start, firstMessages.Start)
	requests, ok := value(again[string(retWeb.ID)], "container.http.requests")
	require.True(t, ok, "%v", names(again[string(retWeb.ID)]))
	firstRequests, _ := value(first[string(retWeb.ID)], "container.http.requests")
	assert.Equal(t, 1.0, requests.Value)
	assert.Greater(t, requests.Start, firstRequests.Start)
}

// A container the registry never listed (a one-shot whose log file was read): the registry is
// asked to describe it, with the log file; nothing of it is reported (records wait) until it is
// listed, then it is reported under that identity for the retention, then it stops. One the
// registry never describes is forgotten after the wait, unreported.
func TestContainersNeverListedWaitForTheRegistry(t *testing.T) {
	b := newRetentionBed(t)
	const never containers.ID = "/docker/0000000000000000000000000000000000000000000000000000000000000001"
	b.log(retJob.ID, jobLog, "INFO job done")
	b.log(never, "/var/lib/docker/containers/x/x-json.log", "INFO bye")

	first := b.collect(0)
	assert.Equal(t, []string{""}, keysOf(first), "nothing but the node")
	assert.Equal(t, map[containers.ID]string{retJob.ID: jobLog, never: "/var/lib/docker/containers/x/x-json.log"}, b.listing.asked)
	assert.Empty(t, b.flushRecords(), "records of a container without an identity wait")

	b.listing.list = []*containers.Container{retJob} // described: listed as gone
	listed := b.collect(10 * time.Second)
	assert.Equal(t, "job-x", resourceAttr(listed[string(retJob.ID)], "k8s.pod.name"))
	m, ok := value(listed[string(retJob.ID)], "container.log.messages")
	assert.True(t, ok && m.Value == 1, "%v", m)
	assert.Equal(t, map[string]string{string(retJob.ID): "job-x"}, b.flushRecords())

	b.listing.list = nil
	assert.Equal(t, []string{""}, keysOf(b.collect(20*time.Second)))
	for range 4 {
		assert.Equal(t, []string{""}, keysOf(b.collect(30*time.Second)))
	}
	assert.Empty(t, b.patterns.Containers(), "the never described one is forgotten after the wait")
	assert.Empty(t, b.flushRecords())
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// In a logs pipeline only, the series are not collected, yet the state of gone containers ends
// with the retention all the same.
func TestRetentionAppliesWithoutMetricsPipeline(t *testing.T) {
	b := newRetentionBed(t)
	b.listing.list = []*containers.Container{retWeb}
	b.log(retWeb.ID, "/var/lib/docker/containers/web/web-json.log", "INFO request served")
	b.r.tick(t.Context())
	b.listing.list = nil
	b.r.tick(t.Context())
	assert.Empty(t, b.patterns.Containers())
	assert.Equal(t, map[string]string{string(retWeb.ID): ""}, b.takeRecords())
}

// The saved state (storage) follows: once a gone container's retention is over its records
// are deleted at the next checkpoint, all but an OOM kill count within oom_kill_retention. A
// restarted agent therefore does not bring back the series of a container that stopped.
func TestSavedStateOfGoneContainersEndsWithRetention(t *testing.T) {
	b := newRetentionBed(t)
	client := newMemClient()
	st := &stateStore{client: client, logger: zap.NewNop(), staged: map[string][]byte{}, written: map[string]uint64{}, full: true}
	b.r.state = st
	b.logs.state = st
	b.logs.reader = logs.NewReader(b.r.cfg.Logs, nil, b.patterns, nil) // not started: no file to pause
	b.listing.list = []*containers.Container{retOOM, retWeb}
	b.connect(cgWeb, 1)
	b.tracer.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: cgOOM, TargetPID: 7})
	b.log(retWeb.ID, "/var/lib/docker/containers/web/web-json.log", "INFO request served")
	b.log(retOOM.ID, "/var/lib/docker/containers/oomer/oomer-json.log", "INFO allocating")

	saved := func() []string {
		var keys []string
		for k := range kvStrings(client) {
			if k != stateIndexKey {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		return keys
	}
	b.r.tick(t.Context())
	assert.Equal(t, []string{
		stateLogStreams + streamKey(retOOM.ID, logs.SourceStdoutStderr), stateLogStreams + streamKey(retWeb.ID, logs.SourceStdoutStderr),
		stateLogPatterns + streamKey(retOOM.ID, logs.SourceStdoutStderr), stateLogPatterns + streamKey(retWeb.ID, logs.SourceStdoutStderr),
		stateTCP + string(retOOM.ID), stateTCP + string(retWeb.ID),
	}, saved())

	b.listing.list = nil
	b.r.tick(t.Context())
	assert.Equal(t, []string{stateTCP + string(retOOM.ID)}, saved())
	assert.JSONEq(t, fmt.Sprintf(`{"id":%q,"created":%q,"oom_kills":1,"last_oom_kill":%q}`,
		retOOM.ID, b.now.Format(time.RFC3339Nano), b.now.Format(time.RFC3339Nano)),
		kvStrings(client)[stateTCP+string(retOOM.ID)])
}
