package cloudmeta

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// tokenMode is how an imitated AWS/Alibaba service treats session tokens.
type tokenMode int

const (
	tokenOptional tokenMode = iota // IMDSv2 available, v1 allowed (the AWS default)
	tokenRequired                  // IMDSv2 only: GETs without a token get 401
	tokenRefused                   // PUT /latest/api/token answered 403 (IMDSv2 unsupported)
	tokenSlow                      // the PUT answer never arrives in time (hop limit 1)
)

// imdsServer imitates one provider's metadata service from the recorded responses under
// testdata/imds/<provider>/, checking the headers that provider requires.
type imdsServer struct {
	*httptest.Server
	t        testing.TB
	provider Provider
	root     string
	tokens   tokenMode
	// handlers replace the recorded response for a URL path (query excluded).
	handlers map[string]http.HandlerFunc

	mu       sync.Mutex
	requests []string
}

const testToken = "AQAEAFakeSessionToken=="

func newIMDS(t testing.TB, p Provider) *imdsServer {
	t.Helper()
	s := &imdsServer{t: t, provider: p, root: filepath.Join("testdata", "imds", string(p)), handlers: map[string]http.HandlerFunc{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *imdsServer) handle(path string, h http.HandlerFunc) *imdsServer {
	s.handlers[path] = h
	return s
}

func (s *imdsServer) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *imdsServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	s.mu.Unlock()
	if h, ok := s.handlers[r.URL.Path]; ok {
		h(w, r)
		return
	}
	switch s.provider {
	case GCP:
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing Metadata-Flavor:Google header", http.StatusForbidden)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
	case Azure:
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, `{"error":"Bad request. Required metadata header not specified"}`, http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("api-version") == "" {
			http.Error(w, `{"error":"Bad request. api-version was not specified in the request"}`, http.StatusBadRequest)
			return
		}
	case Oracle:
		if r.Header.Get("Authorization") != "Bearer Oracle" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
	case AWS, Alibaba:
		ttlHeader, tokenHeader := awsTokenTTLHeader, awsTokenHeader
		if s.provider == Alibaba {
			ttlHeader, tokenHeader = alibabaTokenTTLHeader, alibabaTokenHeader
		}
		if r.URL.Path == awsTokenPath {
			switch {
			case r.Method != http.MethodPut:
				http.Error(w, "", http.StatusMethodNotAllowed)
			case s.tokens == tokenRefused:
				http.Error(w, "Forbidden", http.StatusForbidden)
			case s.tokens == tokenSlow:
				<-r.Context().Done() // answered only after the client gave up
			case r.Header.Get(ttlHeader) == "":
				http.Error(w, "Bad Request", http.StatusBadRequest)
			default:
				_, _ = w.Write([]byte(testToken))
			}
			return
		}
		got := r.Header.Get(tokenHeader)
		if (s.tokens == tokenRequired && got == "") || (got != "" && got != testToken) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
	}
	if r.Method != http.MethodGet {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	b, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(strings.TrimSuffix(r.URL.Path, "/"))))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(b)
}

// testFetcher returns a fetcher against s. The 1 s request timeout is the production default
// and leaves room for a loaded CI machine; tests about timeouts lower it.
func testFetcher(t testing.TB, s *imdsServer) *fetcher {
	t.Helper()
	client := newHTTPClient()
	t.Cleanup(client.CloseIdleConnections)
	return &fetcher{ctx: t.Context(), client: client, base: s.URL, timeout: time.Second, maxBytes: DefaultMaxResponseBytes, counters: &counters{}}
}

// testConfig is a Config pointed at s with short intervals.
func testConfig(s *imdsServer) Config {
	cfg := DefaultConfig()
	cfg.Provider = string(s.provider)
	cfg.Endpoint = s.URL
	cfg.Timeout = time.Second
	cfg.RetryInitialInterval = 20 * time.Millisecond
	cfg.RetryMaxInterval = 80 * time.Millisecond
	return cfg
}

// startWatcher starts a Watcher that is shut down when the test ends.
func startWatcher(t testing.TB, cfg Config) *Watcher {
	t.Helper()
	w := NewWatcher(cfg, zap.NewNop())
	w.Start(t.Context())
	t.Cleanup(w.Shutdown)
	return w
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
