// Command cxworkload is the workload of the end-to-end tests, built on the host as a static
// binary and run inside test containers (docker and CRI) that mount it:
//
//	cxworkload serve ADDR                   an HTTP server; one log line per request
//	cxworkload client URL [REFUSED [DROPPED]] requests URL every 200 ms, over a kept-alive
//	                                        connection (a new one every 5 s) and every fifth time
//	                                        over a connection of its own; dials
//	                                        the REFUSED address (closed) and the DROPPED one
//	                                        (SYNs dropped) now and then; one log line per attempt
//	cxworkload containerid                  prints the container.id the OpenTelemetry Go SDK's
//	                                        container detector finds, then waits
//
// It lives in testdata so that only the tests build it.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cxworkload serve ADDR | client URL [REFUSED [DROPPED]] | containerid")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2])
	case "client":
		client(os.Args[2:])
	case "containerid":
		containerID()
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func serve(addr string) {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("served %s %s for %s\n", r.Method, r.URL.Path, r.RemoteAddr)
		_, _ = io.WriteString(w, "hello from cxworkload\n")
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR serving:", err)
		os.Exit(1)
	}
}

func client(args []string) {
	url := args[0]
	kept := &http.Client{Timeout: 2 * time.Second}
	for i := 1; ; i++ {
		c := kept
		if i%5 == 0 {
			c = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		}
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			fmt.Printf("ERROR request %d to %s failed: %v\n", i, url, err)
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fmt.Printf("request %d to %s: %d in %d ms\n", i, url, resp.StatusCode, time.Since(start).Milliseconds())
		}
		if i%25 == 0 {
			// A new kept-alive connection now and then: one the agent sees open (its live
			// counters and RTT), however long before the agent the client started.
			kept.CloseIdleConnections()
		}
		if len(args) > 1 && i%10 == 0 {
			dial(args[1], time.Second)
		}
		if len(args) > 2 && i%25 == 1 {
			go dial(args[2], 3500*time.Millisecond) // SYN retransmits at about 1 s and 3 s
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dial(addr string, timeout time.Duration) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		fmt.Printf("WARN connect to %s failed: %v\n", addr, err)
		return
	}
	conn.Close()
}

func containerID() {
	res, err := resource.New(context.Background(), resource.WithContainerID())
	if err != nil {
		fmt.Fprintln(os.Stderr, "ERROR detecting the container:", err)
		os.Exit(1)
	}
	id := ""
	for _, kv := range res.Attributes() {
		if kv.Key == "container.id" {
			id = kv.Value.AsString()
		}
	}
	fmt.Printf("otel-sdk container.id=%s\n", id)
	for {
		time.Sleep(time.Hour)
	}
}
