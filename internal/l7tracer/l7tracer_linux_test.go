package l7tracer

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/internal/tracer"
)

// thisProcess attributes this test process, and no other on the machine, to one container.
type thisProcess struct{}

const app containers.ID = "app"

func (thisProcess) ContainerIDByCgroupID(uint64) (containers.ID, bool) { return "", false }
func (thisProcess) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	return app, pid == uint32(os.Getpid())
}

// startTracers starts the TCP tracer and, when l7 is set, the L7 capture on top of it.
func startTracers(t *testing.T, res Resolver, l7on bool) (*tracer.Tracer, *Tracer) {
	t.Helper()
	testutil.RequireRoot(t)
	cfg := tracer.DefaultConfig()
	cfg.Conntrack = false
	tcp := tracer.New(tracer.Options{Config: cfg, Resolver: res})
	err := tcp.Start()
	testutil.SkipUnlessPrivileged(t, err == nil, "starting the TCP tracer: %v", err)
	t.Cleanup(func() { _ = tcp.Close() })
	<-tcp.Seeded()
	if !l7on {
		return tcp, nil
	}
	lt := New(Options{Config: DefaultConfig(), Resolver: res, Connections: tcp})
	err = lt.Start(tcp.Probe())
	testutil.SkipUnlessPrivileged(t, err == nil, "starting the L7 capture: %v", err)
	t.Cleanup(func() { _ = lt.Close() })
	return tcp, lt
}

// requestCounts returns count per "protocol direction destination status" of a container.
func requestCounts(st *requeststats.ContainerStats) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range st.Requests {
		dir := "out " + r.Destination
		if r.Inbound {
			dir = "in"
		}
		out[fmt.Sprintf("%s %s %s", r.Protocol, dir, r.Status.Label())] += r.Count
	}
	return out
}

// TestNetHTTPBothDirections: a Go net/http client and server over keep-alive: every request
// is counted once at the client (outbound, towards the server's address, with the TCP
// tracer's destination) and once at the server (inbound), by status.
func TestNetHTTPBothDirections(t *testing.T) {
	tcp, lt := startTracers(t, thisProcess{}, true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := 0; i < 7; i++ {
		path := "/"
		if i%3 == 2 {
			path = "/missing"
		}
		resp, err := client.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	tcp.Drain(5 * time.Second) // the connects first: outbound requests are recorded under them
	lt.Drain(5 * time.Second)
	dst := ln.Addr().String()
	want := map[string]uint64{
		"http out " + dst + " 200": 5, "http out " + dst + " 404": 2,
		"http in 200": 5, "http in 404": 2,
	}
	// Drained: the counts are complete at once, without waiting for the reader's next poll.
	var st requeststats.ContainerStats
	lt.ContainerStats(app, &st)
	if fmt.Sprint(requestCounts(&st)) != fmt.Sprint(want) {
		t.Fatalf("after Drain: %v, want %v", requestCounts(&st), want)
	}
	for _, h := range st.Durations {
		if h.Count != 7 || h.Sum <= 0 {
			t.Errorf("histogram %+v", h)
		}
	}
	if s := lt.Stats(); s.Kernel.Detected == 0 || s.Tracker.Requests < 14 {
		t.Errorf("stats %+v", s)
	}
}

// TestByteCountersWithAndWithoutL7: the TCP tracer's byte counters of a connection are exact
// whether the L7 capture runs or not.
func TestByteCountersWithAndWithoutL7(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("l7=%v", on), func(t *testing.T) {
			tcp, _ := startTracers(t, thisProcess{}, on)
			client, server := testutil.LoopbackTCP(t)
			req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
			resp := "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000)
			for i := 0; i < 3; i++ {
				if _, err := client.Write([]byte(req)); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(server, make([]byte, len(req))); err != nil {
					t.Fatal(err)
				}
				go func() { _, _ = server.Write([]byte(resp)) }()
				if _, err := io.ReadFull(client, make([]byte, len(resp))); err != nil {
					t.Fatal(err)
				}
			}
			dst := netip.MustParseAddrPort(client.RemoteAddr().String())
			var st tracer.ContainerStats
			for i := 0; i < 50; i++ {
				if err := tcp.Refresh(); err != nil {
					t.Fatal(err)
				}
				tcp.ContainerStats(app, &st)
				for _, d := range st.Destinations {
					if d.Destination == dst.String() && d.BytesSent == uint64(3*len(req)) && d.BytesReceived == uint64(3*len(resp)) {
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Fatalf("destination %s: %+v, want %d bytes sent, %d received", dst, st.Destinations, 3*len(req), 3*len(resp))
		})
	}
}

var _ = l7.ProtocolHTTP
