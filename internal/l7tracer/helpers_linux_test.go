package l7tracer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The Go servers and clients of the real-server tests run as this test binary in its own
// cgroup: re-executed with helperEnv naming the role (see runHelper) and its arguments.
const helperEnv = "CODEXRAY_L7_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		if err := runHelper(role, os.Args[len(os.Args)-1]); err != nil {
			fmt.Fprintln(os.Stderr, "helper", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	removePeers()
	os.Exit(code)
}

// injectedDelay is what the servers add to the requests the tests mark slow.
const injectedDelay = 60 * time.Millisecond

// handler answers /ok with 200, /missing with 404, /fail with 500 and /slow with 200 after
// injectedDelay.
func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		case "/fail":
			http.Error(w, "failed", http.StatusInternalServerError)
		case "/slow":
			time.Sleep(injectedDelay)
			_, _ = io.WriteString(w, "slow")
		default:
			_, _ = io.WriteString(w, "ok")
		}
	})
}

// runHelper runs one helper role; servers print their address and serve until killed,
// clients run their script (arg) against an address and exit.
func runHelper(role, arg string) error {
	switch role {
	case "http-server", "h2c-server", "grpc-server":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Println(ln.Addr().String())
		switch role {
		case "http-server":
			return http.Serve(ln, handler())
		case "h2c-server":
			var p http.Protocols
			p.SetUnencryptedHTTP2(true) // prior knowledge, no upgrade
			return (&http.Server{Handler: handler(), Protocols: &p}).Serve(ln)
		}
		return grpcServer().Serve(ln)
	case "http-client", "h2c-client":
		addr, paths, _ := strings.Cut(arg, " ")
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
		if role == "h2c-client" {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			client.Transport = &http.Transport{Protocols: &p}
		}
		for _, p := range strings.Fields(paths) {
			resp, err := client.Get("http://" + addr + p)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return nil
	case "http-pipeline":
		// Every request written at once on one connection, then the responses read.
		addr, paths, _ := strings.Cut(arg, " ")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		var reqs strings.Builder
		ps := strings.Fields(paths)
		for _, p := range ps {
			fmt.Fprintf(&reqs, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p)
		}
		if _, err := io.WriteString(c, reqs.String()); err != nil {
			return err
		}
		br := bufio.NewReader(c)
		for range ps {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return nil
	case "grpc-client":
		addr, methods, _ := strings.Cut(arg, " ")
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, m := range strings.Fields(methods) {
			ctx, cancel := context.WithCancel(context.Background())
			if m == "Hang" {
				// The call is cancelled before the server answers: the client resets the stream
				// (RST_STREAM, CANCEL). A cancel rather than a deadline: with a grpc-timeout
				// header the server could answer DeadlineExceeded first.
				time.AfterFunc(2*injectedDelay, cancel)
			}
			err := conn.Invoke(ctx, "/test.Svc/"+m, &emptypb.Empty{}, &emptypb.Empty{})
			cancel()
			if err != nil && status.Code(err) == codes.Unavailable {
				return err
			}
		}
		return nil
	case "dns-client", "dns-tcp-client":
		// A queries only (ip4) to the server's address, over UDP or TCP (Go's resolver
		// frames its messages for a stream connection).
		server, names, _ := strings.Cut(arg, " ")
		network := "udp"
		if role == "dns-tcp-client" {
			network = "tcp"
		}
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, server)
		}}
		for _, n := range strings.Fields(names) {
			_, _ = r.LookupIP(context.Background(), "ip4", n)
		}
		return nil
	case "raw-client":
		// Each |-separated message written alone, its answer read before the next one.
		addr, script, _ := strings.Cut(arg, " ")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for _, m := range strings.Split(script, "|") {
			if _, err := io.WriteString(c, m); err != nil {
				return err
			}
			if _, err := c.Read(buf); err != nil {
				return err
			}
		}
		return nil
	case "nats-client":
		// CONNECT in verbose mode (every command answered +OK), a subscription, the
		// |-separated messages published to it one at a time (each after the +OK of the
		// previous), then every MSG read back. A MSG may come before the +OK of its PUB.
		addr, script, _ := strings.Cut(arg, " ")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		var oks, delivered int
		await := func(wantOKs, wantMsgs int) error {
			for oks < wantOKs || delivered < wantMsgs {
				line, err := br.ReadString('\n')
				if err != nil {
					return fmt.Errorf("after %d +OK and %d MSG: %w", oks, delivered, err)
				}
				switch {
				case strings.HasPrefix(line, "-ERR"):
					return errors.New(strings.TrimSpace(line))
				case strings.HasPrefix(line, "+OK"):
					oks++
				case strings.HasPrefix(line, "MSG"):
					delivered++
					if _, err := br.ReadString('\n'); err != nil { // the payload
						return err
					}
				case strings.HasPrefix(line, "PING"):
					if _, err := io.WriteString(c, "PONG\r\n"); err != nil {
						return err
					}
				}
			}
			return nil
		}
		msgs := strings.Split(script, "|")
		if _, err := io.WriteString(c, "CONNECT {\"verbose\":true,\"pedantic\":false}\r\nSUB l7test 1\r\n"); err != nil {
			return err
		}
		if err := await(2, 0); err != nil {
			return err
		}
		for i, m := range msgs {
			if _, err := fmt.Fprintf(c, "PUB l7test %d\r\n%s\r\n", len(m), m); err != nil {
				return err
			}
			if err := await(3+i, 0); err != nil {
				return err
			}
		}
		return await(0, len(msgs))
	case "fixture-server":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		fmt.Println(ln.Addr().String())
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			err = runFixture(c, arg, true)
			_ = c.Close()
			if err != nil {
				return err
			}
		}
	case "fixture-client":
		addr, name, _ := strings.Cut(arg, " ")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return runFixture(c, name, false)
	case "pgx-client":
		// The extended query protocol: one round trip (Parse, Bind, Execute, Sync) per query.
		dsn, queries, _ := strings.Cut(arg, " ")
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		for _, q := range strings.Split(queries, ";") {
			if q = strings.TrimSpace(q); q == "" {
				continue
			}
			_, _ = conn.Exec(context.Background(), q, pgx.QueryExecModeExec)
		}
		return nil
	}
	return fmt.Errorf("unknown helper role %q", role)
}

// grpcServer serves any method of test.Svc: Missing answers NotFound, Slow waits
// injectedDelay, the others answer OK.
func grpcServer() *grpc.Server {
	return grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var in emptypb.Empty
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		method, _ := grpc.MethodFromServerStream(stream)
		switch method {
		case "/test.Svc/Missing":
			return status.Error(codes.NotFound, "no such thing")
		case "/test.Svc/Slow":
			time.Sleep(injectedDelay)
		case "/test.Svc/Hang":
			<-stream.Context().Done() // the client's RST_STREAM
			return stream.Context().Err()
		}
		return stream.SendMsg(&emptypb.Empty{})
	}))
}
