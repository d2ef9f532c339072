package l7

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// recordingConn records every Read and Write a server makes, as the kernel side sees the
// syscalls.
type recordingConn struct {
	net.Conn
	mu   *sync.Mutex
	conv *conv
}

func (r *recordingConn) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if n > 0 {
		r.mu.Lock()
		r.conv.now = uint64(time.Now().UnixNano())
		r.conv.syscall(Received, b[:n])
		r.mu.Unlock()
	}
	return n, err
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.conv.now = uint64(time.Now().UnixNano())
	r.conv.syscall(Sent, b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

type recordingListener struct {
	net.Listener
	mu   sync.Mutex
	conv *conv
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, mu: &l.mu, conv: l.conv}, nil
}

// TestGRPCGoServer checks the HTTP/2 parser on the bytes grpc-go really exchanges: a
// health server answering OK, NotFound, and Unimplemented for an unknown method, measured at
// the server (inbound), raw and as the kernel's digests.
func TestGRPCGoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := newConv(t, ProtocolHTTP2, RoleServer)
	c.capture = 1 << 20
	rl := &recordingListener{Listener: ln, conv: c}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(rl) }() // returns when the test stops it
	defer srv.Stop()

	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := healthpb.NewHealthClient(cc)
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("want NotFound, got %v", err)
	}
	err = cc.Invoke(ctx, "/no.Such/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("want Unimplemented, got %v", err)
	}
	for i := 0; i < 20; i++ { // the dynamic table now holds the repeated headers
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	cc.Close()
	srv.Stop()

	rl.mu.Lock()
	defer rl.mu.Unlock()
	want := []string{"grpc:OK", "grpc:NotFound", "grpc:Unimplemented"}
	for i := 0; i < 20; i++ {
		want = append(want, "grpc:OK")
	}
	check := func(name string, cv *conv) {
		out, st := cv.run()
		var got []string
		for _, g := range out {
			got = append(got, g.Status)
			if !g.Server {
				t.Errorf("%s: not inbound", name)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %v (%+v)", name, got, st)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: %v", name, got)
			}
		}
		if st.HPACKResets != 0 || st.LostSync != 0 || st.FalsePositives != 0 {
			t.Errorf("%s: %+v", name, st)
		}
	}
	check("raw", c)
	check("digest", &conv{t: t, proto: ProtocolHTTP2, role: RoleServer, segs: digestSegmentsHTTP2(c.segs, RoleServer)})
}
