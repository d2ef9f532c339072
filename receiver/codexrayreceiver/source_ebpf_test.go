package codexrayreceiver

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/internal/tracer"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

func newTestMetricsBuilder() *metadata.MetricsBuilder {
	return metadata.NewMetricsBuilder(metadata.DefaultMetricsBuilderConfig(), receivertest.NewNopSettings(metadata.Type))
}

func TestEBPFSourceLifecycle(t *testing.T) {
	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	t.Run("disabled", func(t *testing.T) {
		c := *rcfg
		c.EBPF.Enabled = false
		assert.False(t, newEBPFSource(sourceEnv{cfg: &c, settings: receivertest.NewNopSettings(metadata.Type)}).enabled())
	})
	t.Run("shutdown without start, record before start", func(t *testing.T) {
		src := newEBPFSource(sourceEnv{cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type), registry: &containers.Registry{}}).(*ebpfSource)
		require.Equal(t, "ebpf", src.name())
		mb := newTestMetricsBuilder()
		src.recordContainer(mb, pcommon.NewTimestampFromTime(time.Now()), &containers.Container{ID: "/docker/x"})
		src.recordNode(mb, pcommon.NewTimestampFromTime(time.Now()))
		assert.Equal(t, 0, mb.Emit().MetricCount())
		require.NoError(t, src.shutdown(context.Background()))
		require.NoError(t, src.shutdown(context.Background()))
	})
}

func TestRecordTCP(t *testing.T) {
	st := tracer.ContainerStats{
		Destinations: []tracer.DestinationStats{
			{
				Destination: "10.96.0.10:80", ActualDestination: "10.244.0.7:80", SuccessfulConnects: 3,
				ConnectionTime: 1500 * time.Millisecond, ActiveConnections: 1, Retransmits: 2, BytesSent: 100, BytesReceived: 200,
			},
			// failed connects are counted on the destination's own pair only
			{Destination: "10.96.0.10:80", ActualDestination: "10.96.0.10:80", FailedConnects: 4},
		},
		Listens: []tracer.ListenStats{
			{Address: "10.244.0.7:8080", Open: true, InboundConnections: 7},
			{Address: "10.244.0.7:9090", InboundConnections: 1}, // accepted on, no longer listening
			{Address: "192.0.2.2:18080", Proxy: tracer.ProxyDockerd, Open: true},
			{Address: "127.0.0.1:0"},
		},
		Latency:  []tracer.LatencyStats{{DestinationIP: "10.244.0.7", RTT: 250 * time.Microsecond}},
		OOMKills: 2,
	}
	mb := newTestMetricsBuilder()
	recordTCP(mb, pcommon.NewTimestampFromTime(time.Now()), &st)
	md := mb.Emit()
	pair := "actual_destination=10.244.0.7:80,destination=10.96.0.10:80"
	tests := []struct {
		metric string
		want   map[string]float64
	}{
		{"container.net.tcp.successful_connects", map[string]float64{pair: 3}},
		{"container.net.tcp.connection_time", map[string]float64{pair: 1.5}},
		{"container.net.tcp.active_connections", map[string]float64{pair: 1}},
		{"container.net.tcp.retransmits", map[string]float64{pair: 2}},
		{"container.net.tcp.bytes_sent", map[string]float64{pair: 100}},
		{"container.net.tcp.bytes_received", map[string]float64{pair: 200}},
		{"container.net.tcp.failed_connects", map[string]float64{"destination=10.96.0.10:80": 4}},
		{"container.net.tcp.listen_info", map[string]float64{
			"listen_addr=10.244.0.7:8080,proxy=":        1,
			"listen_addr=192.0.2.2:18080,proxy=dockerd": 1,
		}},
		{"container.net.tcp.inbound_connects", map[string]float64{"listen_addr=10.244.0.7:8080": 7, "listen_addr=10.244.0.7:9090": 1}},
		{"container.net.latency", map[string]float64{"destination_ip=10.244.0.7": 0.00025}},
		{"container.oom_kills", map[string]float64{"": 2}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, metricstest.Named(md, tt.metric), tt.metric)
	}
}

// selfRegistry attributes the test's own cgroup to one container and records process events.
type selfRegistry struct {
	cgroupID uint64
	mu       sync.Mutex
	started  map[uint32]bool
	exited   map[uint32]bool
}

var selfTestContainer = &containers.Container{ID: "/codexray-test/self"}

func (r *selfRegistry) ContainerIDByCgroupID(id uint64) (containers.ID, bool) {
	return selfTestContainer.ID, id == r.cgroupID
}

func (r *selfRegistry) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	return selfTestContainer.ID, pid == uint32(os.Getpid())
}

func (r *selfRegistry) OnProcessStart(pid uint32) (*containers.Container, bool) {
	r.mu.Lock()
	r.started[pid] = true
	r.mu.Unlock()
	return nil, false
}

func (r *selfRegistry) OnProcessExit(pid uint32) {
	r.mu.Lock()
	r.exited[pid] = true
	r.mu.Unlock()
}

func ownCgroupID(t *testing.T) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/cgroup")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			var st syscall.Stat_t
			require.NoError(t, syscall.Stat("/sys/fs/cgroup/unified"+rest, &st))
			return st.Ino
		}
	}
	t.Fatal("no cgroup v2 entry")
	return 0
}

func TestEBPFSourceRecordsLoopbackConnects(t *testing.T) {
	testutil.RequireRoot(t)
	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	reg := &selfRegistry{cgroupID: ownCgroupID(t), started: map[uint32]bool{}, exited: map[uint32]bool{}}
	src := newEBPFSource(sourceEnv{cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type)}).(*ebpfSource)
	src.registry = reg
	err := src.start(context.Background(), componenttest.NewNopHost())
	testutil.SkipUnlessPrivileged(t, err == nil, "starting the eBPF source: %v", err)
	defer func() { require.NoError(t, src.shutdown(context.Background())) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		c.Close()
	}
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	child := uint32(cmd.Process.Pid)

	key := "actual_destination=" + ln.Addr().String() + ",destination=" + ln.Addr().String()
	var md pmetric.Metrics
	require.Eventually(t, func() bool {
		mb := newTestMetricsBuilder()
		now := pcommon.NewTimestampFromTime(time.Now())
		src.recordContainer(mb, now, selfTestContainer)
		src.recordNode(mb, now)
		md = mb.Emit()
		return metricstest.Named(md, "container.net.tcp.successful_connects")[key] == 3
	}, 5*time.Second, 50*time.Millisecond, "successful connects never reached 3")
	assert.Greater(t, metricstest.Named(md, "codexray.ebpf.events.processed")[""], 0.0)
	require.Eventually(t, func() bool {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		return reg.started[child] && reg.exited[child]
	}, 5*time.Second, 50*time.Millisecond, "exec/exit of pid %d never reached the registry", child)
}

// TestEBPFSourceReportsSocketsOpenBeforeStart: a listener and a connection that existed before
// the source started are reported at the first collection, the connection as active but never
// as a successful connect, and its close brings active_connections back to 0.
func TestEBPFSourceReportsSocketsOpenBeforeStart(t *testing.T) {
	testutil.RequireRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	srv := <-accepted
	defer srv.Close()

	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	reg := &selfRegistry{cgroupID: ownCgroupID(t), started: map[uint32]bool{}, exited: map[uint32]bool{}}
	src := newEBPFSource(sourceEnv{cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type)}).(*ebpfSource)
	src.registry = reg
	err = src.start(context.Background(), componenttest.NewNopHost())
	testutil.SkipUnlessPrivileged(t, err == nil, "starting the eBPF source: %v", err)
	defer func() { require.NoError(t, src.shutdown(context.Background())) }()

	collect := func() pmetric.Metrics {
		mb := newTestMetricsBuilder()
		now := pcommon.NewTimestampFromTime(time.Now())
		src.recordContainer(mb, now, selfTestContainer)
		src.recordNode(mb, now)
		return mb.Emit()
	}
	// start does not wait for the sockets open before it to be read: wait here.
	src.mu.Lock()
	seeded := src.tracer.Seeded()
	src.mu.Unlock()
	select {
	case <-seeded:
	case <-time.After(10 * time.Second):
		t.Fatal("the sockets open before start were never read")
	}
	addr := ln.Addr().String()
	key := "actual_destination=" + addr + ",destination=" + addr
	md := collect()
	// Ports in the ephemeral range are folded, as for listen events.
	listenAddr := addr
	if ports, err := tracer.ReadEphemeralPorts("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if p := ln.Addr().(*net.TCPAddr).Port; p >= int(ports.Min) && p <= int(ports.Max) {
			listenAddr = "127.0.0.1:0"
		}
	}
	assert.Equal(t, 1.0, metricstest.Named(md, "container.net.tcp.listen_info")["listen_addr="+listenAddr+",proxy="], "listen_info of the listener opened before start")
	assert.Equal(t, 1.0, metricstest.Named(md, "container.net.tcp.active_connections")[key], "active_connections of the connection opened before start")
	assert.Equal(t, 0.0, metricstest.Named(md, "container.net.tcp.successful_connects")[key], "a connection opened before start is no new connect")
	errs := metricstest.Named(md, "codexray.source.errors")
	for _, reason := range []string{"seed_vanished_process", "seed_unreadable", "seed_malformed_line", "close_lost", "netns_unreadable"} {
		_, ok := errs["reason="+reason+",source=ebpf"]
		assert.True(t, ok, "no codexray.source.errors for reason %s: %v", reason, errs)
	}
	for _, limit := range []string{"tcp_destinations", "ebpf_process_events", "netns_addresses"} {
		_, ok := metricstest.Named(md, "codexray.limits.dropped")["limit="+limit]
		assert.True(t, ok, "no codexray.limits.dropped for limit %s", limit)
	}

	conn.Close()
	srv.Close() // the client's socket closes for the kernel once the peer's FIN came back
	// A destination that only ever had a connection from before start and no connect since
	// has nothing left to report once it closed.
	require.Eventually(t, func() bool {
		_, reported := metricstest.Named(collect(), "container.net.tcp.active_connections")[key]
		src.mu.Lock()
		defer src.mu.Unlock()
		var st tracer.ContainerStats
		src.tracer.ContainerStats(selfTestContainer.ID, &st)
		for _, d := range st.Destinations {
			if d.Destination == addr {
				return d.ActiveConnections == 0 && !reported
			}
		}
		return false
	}, 5*time.Second, 50*time.Millisecond, "the connection's close never reached the tracer")
}

// TestEBPFSourceRetainsOOMKills: once the receiver forgets a gone container, the eBPF source
// keeps only its OOM kill count, retained and recorded alone, until oom_kill_retention.
func TestEBPFSourceRetainsOOMKills(t *testing.T) {
	now := time.Now()
	rcfg := NewFactory().CreateDefaultConfig().(*Config)
	rcfg.EBPF.OOMKillRetention = time.Minute
	src := newEBPFSource(sourceEnv{cfg: rcfg, settings: receivertest.NewNopSettings(metadata.Type)}).(*ebpfSource)
	reg := cgroupIDResolver{7: "/docker/web", 8: "/docker/db"}
	src.tracer = tracer.New(tracer.Options{Config: rcfg.EBPF.Config, Resolver: reg, Now: func() time.Time { return now }})
	src.tracer.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 7, TargetPID: 4242})
	src.tracer.Handle(&ebpf.Event{
		Type: ebpf.EventConnect, Sock: 1, CgroupID: 7,
		Source: netip.MustParseAddrPort("10.0.0.5:1"), Destination: netip.MustParseAddrPort("10.0.0.1:80"),
	})
	src.tracer.Handle(&ebpf.Event{
		Type: ebpf.EventConnect, Sock: 2, CgroupID: 8,
		Source: netip.MustParseAddrPort("10.0.0.5:2"), Destination: netip.MustParseAddrPort("10.0.0.1:80"),
	})
	held := func() []containers.ID {
		var ids []containers.ID
		for _, h := range src.heldContainers() {
			ids = append(ids, h.id)
		}
		slices.Sort(ids)
		return ids
	}
	assert.Equal(t, []containers.ID{"/docker/db", "/docker/web"}, held())
	assert.Equal(t, []containers.ID{"/docker/web"}, src.retainedContainers())

	src.forgetContainers(context.Background(), []containers.ID{"/docker/web", "/docker/db"})
	assert.Equal(t, []containers.ID{"/docker/web"}, held(), "the OOM kill count stays")
	mb := newTestMetricsBuilder()
	src.recordRetained(mb, pcommon.NewTimestampFromTime(now), "/docker/web")
	assert.Equal(t, map[string]float64{"container.oom_kills": 1}, metricstest.Values(mb.Emit()), "the kill count alone")

	now = now.Add(2 * time.Minute)
	assert.Empty(t, src.retainedContainers(), "past oom_kill_retention")
}
