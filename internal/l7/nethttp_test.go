package l7

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNetHTTPServer checks the HTTP/1 parser on the bytes Go's net/http exchanges over
// keep-alive: Content-Length and chunked responses (a handler that flushes), a request body,
// a 404 and a 500, measured at the server with the default capture size.
func TestNetHTTPServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := newConv(t, ProtocolHTTP, RoleServer)
	c.capture = 1024
	rl := &recordingListener{Listener: ln, conv: c}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "fine") })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			_, _ = io.WriteString(w, strings.Repeat("s", 3000))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(rl) }() // returns when the test closes it
	defer srv.Close()

	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for _, q := range []struct{ method, path, body string }{
		{"GET", "/ok", ""},
		{"GET", "/stream", ""},
		{"POST", "/fail", strings.Repeat("b", 5000)},
		{"GET", "/missing", ""},
		{"GET", "/ok", ""},
	} {
		req, _ := http.NewRequest(q.method, base+q.path, strings.NewReader(q.body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	client.CloseIdleConnections()
	srv.Close()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	out, st := c.run()
	var got []string
	for _, g := range out {
		got = append(got, g.Status)
	}
	// Go writes the streamed body as chunks of 2048 bytes and more than one per write: the
	// second chunk-size line of a write lies beyond the 1024-byte capture, so the response's
	// end is unknown (LostSync) until the next response starts a read.
	if strings.Join(got, " ") != "200 200 500 404 200" || st.LostSync != 1 || st.Unanswered != 0 {
		t.Errorf("got %v %+v", got, st)
	}
}
