package codexrayreceiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/tracer"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metricstest"
)

type oneContainerRegistry struct{ c *containers.Container }

func (r oneContainerRegistry) ContainerIDByCgroupID(id uint64) (containers.ID, bool) {
	return r.c.ID, id == 1
}
func (r oneContainerRegistry) ContainerIDByPID(uint32) (containers.ID, bool) { return "", false }

// balancingNAT sends a Service to whichever backend is current.
type balancingNAT struct {
	service, backend netip.AddrPort
}

func (n *balancingNAT) ActualDestination(_, dst netip.AddrPort) (netip.AddrPort, bool, error) {
	if dst == n.service {
		return n.backend, true, nil
	}
	return dst, false, nil
}

// TestTCPSumsNeverFallUnderOneStart: across destination_ttl and oom_kill_retention, every
// cumulative series either keeps growing or starts again under a later start time.
func TestTCPSumsNeverFallUnderOneStart(t *testing.T) {
	svc := netip.MustParseAddrPort("10.96.0.10:80")
	nat := &balancingNAT{service: svc, backend: netip.MustParseAddrPort("10.244.0.7:80")}
	clk := time.Now().Add(time.Second).Truncate(time.Second) // after the builder's start
	cfg := tracer.DefaultConfig()
	cfg.DestinationTTL = time.Minute
	cfg.OOMKillRetention = time.Minute
	c := &containers.Container{ID: "/docker/web"}
	tr := tracer.New(tracer.Options{
		Config: cfg, Resolver: oneContainerRegistry{c}, NAT: nat,
		EphemeralPorts: tracer.PortRange{Min: 32768, Max: 60999}, Now: func() time.Time { return clk },
	})
	ev := func(typ ebpf.EventType, sock uint64, src, dst string) *ebpf.Event {
		return &ebpf.Event{
			Type: typ, Sock: sock, CgroupID: 1, Duration: time.Millisecond,
			Source: netip.MustParseAddrPort(src), Destination: netip.MustParseAddrPort(dst),
		}
	}
	mb := newTestMetricsBuilder()
	var prev map[string]metricstest.Point
	collect := func(step string) map[string]metricstest.Point {
		t.Helper()
		require.NoError(t, tr.Refresh())
		now := pcommon.NewTimestampFromTime(clk)
		var st tracer.ContainerStats
		if tr.ContainerStats(c.ID, &st) {
			recordTCP(mb, now, &st)
		}
		cur := map[string]metricstest.Point{}
		for _, p := range metricstest.Points(mb.Emit()) {
			if p.Type == pmetric.MetricTypeSum {
				cur[p.Key()] = p
			}
		}
		for k, p := range cur {
			assert.LessOrEqual(t, p.Start, p.Time, "%s: %s starts after its time", step, k)
			if old, ok := prev[k]; ok && old.Start == p.Start {
				assert.GreaterOrEqual(t, p.Value, old.Value, "%s: %s fell from %v to %v under one start", step, k, old.Value, p.Value)
			}
		}
		prev = cur
		return cur
	}

	// Backend 1: connects and failures; an address that only accepts; two OOM kills.
	tr.Handle(ev(ebpf.EventConnect, 1, "10.0.0.5:40001", "10.96.0.10:80"))
	tr.Handle(ev(ebpf.EventClose, 1, "10.0.0.5:40001", "10.96.0.10:80"))
	for range 3 {
		tr.Handle(ev(ebpf.EventConnectFailed, 2, "10.0.0.5:40002", "10.96.0.10:80"))
	}
	for range 3 {
		tr.Handle(ev(ebpf.EventAccept, 3, "10.0.0.5:9000", "10.0.0.6:50000"))
	}
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 1, TargetPID: 7})
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 1, TargetPID: 8})
	first := collect("first")
	require.Equal(t, 3.0, first["container.net.tcp.failed_connects{destination=10.96.0.10:80}"].Value, "%v", first)

	// The Service moves to backend 2, which keeps a connection open past the TTL and sees
	// failures too.
	clk = clk.Add(30 * time.Second)
	nat.backend = netip.MustParseAddrPort("10.244.0.8:80")
	tr.Handle(ev(ebpf.EventConnect, 4, "10.0.0.5:40004", "10.96.0.10:80"))
	tr.Handle(ev(ebpf.EventConnectFailed, 5, "10.0.0.5:40005", "10.96.0.10:80"))
	collect("backend 2")

	// Backend 1's pair, the accept-only address and the OOM kills expire; then they come again.
	clk = clk.Add(90 * time.Second)
	collect("after expiry")
	clk = clk.Add(time.Second)
	tr.Handle(ev(ebpf.EventConnect, 6, "10.0.0.5:40006", "10.96.0.10:80"))
	tr.Handle(ev(ebpf.EventConnectFailed, 7, "10.0.0.5:40007", "10.96.0.10:80"))
	tr.Handle(ev(ebpf.EventAccept, 8, "10.0.0.5:9000", "10.0.0.6:50001"))
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 1, TargetPID: 9})
	again := collect("created again")
	for _, k := range []string{
		"container.net.tcp.failed_connects{destination=10.96.0.10:80}",
		"container.net.tcp.inbound_connects{listen_addr=10.0.0.5:9000}",
	} {
		p, ok := again[k]
		require.True(t, ok, "no %s in %v", k, again)
		assert.Equal(t, 1.0, p.Value, k)
		assert.Equal(t, pcommon.NewTimestampFromTime(clk), p.Start, "%s starts when it was created again", k)
	}
	// The pair that stayed open keeps its start and its count, and so the container's state
	// stays: its OOM kills go on counting under their first start.
	p := again["container.net.tcp.successful_connects{actual_destination=10.244.0.8:80,destination=10.96.0.10:80}"]
	assert.Equal(t, 2.0, p.Value)
	assert.Equal(t, first["container.oom_kills"].Start+pcommon.Timestamp(30*time.Second), p.Start)
	oom := again["container.oom_kills"]
	assert.Equal(t, []any{first["container.oom_kills"].Start, 3.0}, []any{oom.Start, oom.Value})

	// Once nothing holds the container's state, OOM kills count from zero under a new start.
	tr.Handle(ev(ebpf.EventClose, 4, "10.0.0.5:40004", "10.96.0.10:80"))
	tr.Handle(ev(ebpf.EventClose, 6, "10.0.0.5:40006", "10.96.0.10:80"))
	clk = clk.Add(2 * time.Minute)
	collect("all expired")
	clk = clk.Add(time.Second)
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 1, TargetPID: 10})
	last := collect("OOM kill after retention")
	oom = last["container.oom_kills"]
	assert.Equal(t, []any{pcommon.NewTimestampFromTime(clk), pcommon.NewTimestampFromTime(clk), 1.0}, []any{oom.Start, oom.Time, oom.Value})
}
