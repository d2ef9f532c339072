package cloudmeta

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestWatcherDetectsAndFetches(t *testing.T) {
	// Provider from a DMI fixture, endpoint from the imitation: the path a real node takes.
	for _, tc := range []struct {
		tree string
		p    Provider
	}{{"aws-nitro", AWS}, {"gcp", GCP}, {"azure", Azure}, {"hetzner", Hetzner}, {"digitalocean", DigitalOcean}, {"oracle", Oracle}, {"alibaba", Alibaba}, {"scaleway", Scaleway}} {
		t.Run(tc.tree, func(t *testing.T) {
			s := newIMDS(t, tc.p)
			cfg := testConfig(s)
			cfg.Provider = ""
			cfg.DMIRoot = filepath.Join("testdata", "dmi", tc.tree)
			w := startWatcher(t, cfg)
			waitFor(t, "metadata", func() bool { _, ok := w.Current(); return ok })
			md, _ := w.Current()
			if md != wantFixture[tc.p] {
				t.Errorf("Current = %+v, want %+v", md, wantFixture[tc.p])
			}
			st := w.Stats()
			if st.Attempts != 1 || st.FailedAttempts != 0 || st.LastError != "" || st.LastSuccess.IsZero() {
				t.Errorf("stats after one good fetch: %+v", st)
			}
		})
	}
}

func TestStartReturnsImmediately(t *testing.T) {
	// The service never answers within the timeout: Start must not wait for it.
	s := newIMDS(t, Scaleway).handle("/conf", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	cfg := testConfig(s)
	cfg.Timeout = 2 * time.Second
	w := NewWatcher(cfg, zap.NewNop())
	begin := time.Now()
	w.Start(t.Context())
	if d := time.Since(begin); d > 50*time.Millisecond {
		t.Fatalf("Start took %s", d)
	}
	if _, ok := w.Current(); ok {
		t.Fatal("Current reports metadata before any answer")
	}
	begin = time.Now()
	w.Shutdown()
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("Shutdown waited %s for an in-flight request; it must cancel it", d)
	}
}

func TestRetryWithBackoffThenSuccess(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var times []time.Time
	s := newIMDS(t, Scaleway)
	s.handle("/conf", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if calls.Add(1) <= 3 {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		body(`{"id":"srv-1","location":{"zone_id":"nl-ams-1"}}`)(w, r)
	})
	core, logs := observer.New(zap.DebugLevel)
	cfg := testConfig(s)
	w := NewWatcher(cfg, zap.New(core))
	w.Start(t.Context())
	t.Cleanup(w.Shutdown)
	waitFor(t, "success after retries", func() bool { _, ok := w.Current(); return ok })
	md, _ := w.Current()
	if md.InstanceID != "srv-1" || md.Region != "nl-ams" {
		t.Fatalf("Current = %+v", md)
	}
	w.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	// Waits were 20, 40, 80 ms (doubling, capped at retry_max_interval 80 ms).
	for i, least := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		if gap := times[i+1].Sub(times[i]); gap < least {
			t.Errorf("wait before attempt %d was %s, want at least %s", i+2, gap, least)
		}
	}
	st := w.Stats()
	if st.Attempts != 4 || st.FailedAttempts != 3 || st.LastError != "" {
		t.Errorf("stats: %+v", st)
	}
	// The first failure of a streak is a warning, the repeats are debug: no log flood.
	if n := logs.FilterLevelExact(zap.WarnLevel).Len(); n != 1 {
		t.Errorf("%d warnings for one failure streak, want 1", n)
	}
	if n := logs.FilterMessage("Cloud instance metadata known").Len(); n != 1 {
		t.Errorf("success logged %d times, want 1", n)
	}
}

func TestRefreshKeepsLastGoodValue(t *testing.T) {
	var calls atomic.Int32
	s := newIMDS(t, Scaleway)
	s.handle("/conf", func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			body(`{"id":"srv-1","commercial_type":"DEV1-S"}`)(w, r)
		case 2:
			http.Error(w, "down", http.StatusInternalServerError)
		default:
			body(`{"id":"srv-1","commercial_type":"DEV1-L"}`)(w, r) // resized
		}
	})
	cfg := testConfig(s)
	cfg.RefreshInterval = time.Second // the minimum Validate allows
	w := startWatcher(t, cfg)
	waitFor(t, "first fetch", func() bool { _, ok := w.Current(); return ok })
	waitFor(t, "failed refresh", func() bool { return w.Stats().FailedAttempts == 1 })
	if md, ok := w.Current(); !ok || md.InstanceType != "DEV1-S" {
		t.Fatalf("after a failed refresh Current = %+v, %v; want the last good value", md, ok)
	}
	waitFor(t, "refresh picking up the resize", func() bool { md, _ := w.Current(); return md.InstanceType == "DEV1-L" })
}

func TestPartialResultIsPublishedAndRetried(t *testing.T) {
	var calls atomic.Int32
	s := newIMDS(t, AWS).handle("/latest/meta-data/public-ipv4", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "throttled", http.StatusTooManyRequests)
			return
		}
		body("203.0.113.25")(w, r)
	})
	w := startWatcher(t, testConfig(s))
	waitFor(t, "complete metadata", func() bool { md, _ := w.Current(); return md.PublicIPv4 != "" })
	if md, _ := w.Current(); md != wantFixture[AWS] {
		t.Fatalf("Current = %+v", md)
	}
	if st := w.Stats(); st.Attempts != 2 || st.FailedAttempts != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestAmbiguousDMIProbe(t *testing.T) {
	t.Run("confirmed", func(t *testing.T) {
		s := newIMDS(t, Azure)
		cfg := testConfig(s)
		cfg.Provider, cfg.DMIRoot = "", filepath.Join("testdata", "dmi", "hyperv")
		w := startWatcher(t, cfg)
		waitFor(t, "azure confirmed", func() bool { _, ok := w.Current(); return ok })
		if md, _ := w.Current(); md != wantFixture[Azure] {
			t.Fatalf("Current = %+v", md)
		}
	})
	t.Run("not confirmed", func(t *testing.T) {
		// Plain Hyper-V: nothing answers the Azure request. One probe, then quiet until the
		// next refresh, not a retry storm.
		s := newIMDS(t, Azure).handle("/metadata/instance", http.NotFound)
		cfg := testConfig(s)
		cfg.Provider, cfg.DMIRoot = "", filepath.Join("testdata", "dmi", "hyperv")
		core, logs := observer.New(zap.DebugLevel)
		w := NewWatcher(cfg, zap.New(core))
		w.Start(t.Context())
		t.Cleanup(w.Shutdown)
		waitFor(t, "probe", func() bool { return w.Stats().Attempts == 1 })
		time.Sleep(5 * cfg.RetryMaxInterval)
		if n := w.Stats().Attempts; n != 1 {
			t.Errorf("%d attempts after an unconfirmed probe, want 1 until refresh_interval", n)
		}
		if _, ok := w.Current(); ok {
			t.Error("Current reports metadata for an unconfirmed provider")
		}
		if logs.FilterLevelExact(zap.WarnLevel).Len() != 0 {
			t.Error("an unconfirmed probe is not a warning: Hyper-V outside Azure is normal")
		}
	})
}

func TestOverrides(t *testing.T) {
	s := newIMDS(t, AWS)
	cfg := testConfig(s)
	cfg.Overrides = Overrides{Region: "eu-central-1", AccountID: "999999999999", PublicIPv4: "198.51.100.1"}
	w := startWatcher(t, cfg)
	waitFor(t, "fetch", func() bool { return w.Stats().Attempts > 0 })
	md, ok := w.Current()
	want := wantFixture[AWS]
	want.Region, want.AccountID, want.PublicIPv4 = "eu-central-1", "999999999999", "198.51.100.1"
	if !ok || md != want {
		t.Fatalf("Current = %+v, %v; want %+v", md, ok, want)
	}
}

func TestOverridesAloneOnNonCloudMachine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DMIRoot = filepath.Join("testdata", "dmi", "dell-server")
	cfg.Overrides = Overrides{Region: "dc-berlin", AvailabilityZone: "rack-7"}
	w := startWatcher(t, cfg)
	<-w.done
	md, ok := w.Current()
	if !ok || md != (Metadata{Region: "dc-berlin", AvailabilityZone: "rack-7"}) {
		t.Fatalf("Current = %+v, %v", md, ok)
	}
	if w.Stats().Requests != 0 {
		t.Fatal("requests made on a machine with no detected cloud")
	}
}

func TestLifecycle(t *testing.T) {
	t.Run("shutdown without start", func(t *testing.T) {
		w := NewWatcher(DefaultConfig(), nil)
		w.Shutdown()
		w.Shutdown()
		w.Start(t.Context()) // after Shutdown: must not start anything
		if _, ok := w.Current(); ok {
			t.Fatal("Current after Shutdown-without-Start")
		}
	})
	t.Run("start twice", func(t *testing.T) {
		var calls atomic.Int32
		s := newIMDS(t, Scaleway).handle("/conf", func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			body(`{"id":"x"}`)(w, r)
		})
		w := startWatcher(t, testConfig(s))
		w.Start(t.Context())
		waitFor(t, "fetch", func() bool { _, ok := w.Current(); return ok })
		w.Shutdown()
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d fetches after Start twice, want 1", n)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Enabled = false
		cfg.Overrides.Region = "ignored"
		w := startWatcher(t, cfg)
		if _, ok := w.Current(); ok {
			t.Fatal("a disabled watcher reports metadata")
		}
	})
	t.Run("start context cancelled does not stop the watcher", func(t *testing.T) {
		var calls atomic.Int32
		s := newIMDS(t, Scaleway).handle("/conf", func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				http.Error(w, "", http.StatusServiceUnavailable)
				return
			}
			body(`{"id":"x"}`)(w, r)
		})
		w := NewWatcher(testConfig(s), nil)
		startCtx, stop := context.WithCancel(context.Background())
		w.Start(startCtx)
		stop() // the collector's start context ends right after Start
		t.Cleanup(w.Shutdown)
		waitFor(t, "retry after the start context ended", func() bool { _, ok := w.Current(); return ok })
	})
}

func TestForcedProviderNeverTouchesDMI(t *testing.T) {
	s := newIMDS(t, Hetzner)
	cfg := testConfig(s)
	cfg.DMIRoot = filepath.Join("testdata", "dmi", "gcp") // would say GCP
	w := startWatcher(t, cfg)
	waitFor(t, "fetch", func() bool { _, ok := w.Current(); return ok })
	if md, _ := w.Current(); md.Provider != "Hetzner" {
		t.Fatalf("Provider = %q, want the forced Hetzner", md.Provider)
	}
	for _, r := range s.log() {
		if !strings.Contains(r, "/hetzner/") {
			t.Errorf("unexpected request %q", r)
		}
	}
}

func TestOverridesWaitForTheProviderAnswer(t *testing.T) {
	release := make(chan struct{})
	s := newIMDS(t, Scaleway).handle("/conf", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			body(`{"id":"srv-9","location":{"zone_id":"pl-waw-2"}}`)(w, r)
		case <-r.Context().Done():
		}
	})
	cfg := testConfig(s)
	cfg.Overrides.AccountID = "acme"
	w := startWatcher(t, cfg)
	waitFor(t, "request in flight", func() bool { return len(s.log()) == 1 })
	if md, ok := w.Current(); ok {
		t.Fatalf("Current = %+v before the provider answered; overrides alone would start a second series", md)
	}
	close(release)
	waitFor(t, "answer", func() bool { _, ok := w.Current(); return ok })
	md, _ := w.Current()
	want := Metadata{Provider: "Scaleway", AccountID: "acme", InstanceID: "srv-9", AvailabilityZone: "pl-waw-2", Region: "pl-waw"}
	if md != want {
		t.Fatalf("Current = %+v, want %+v", md, want)
	}
}

func TestOverridesAfterUnconfirmedProbe(t *testing.T) {
	s := newIMDS(t, AWS).handle(awsIdentityPath, http.NotFound)
	cfg := testConfig(s)
	cfg.Provider, cfg.DMIRoot = "", filepath.Join("testdata", "dmi", "xen-ec2-uuid")
	cfg.Overrides.Region = "onprem-1"
	w := startWatcher(t, cfg)
	waitFor(t, "probe", func() bool { _, ok := w.Current(); return ok })
	if md, _ := w.Current(); md != (Metadata{Region: "onprem-1"}) {
		t.Fatalf("Current = %+v", md)
	}
}

// A refresh of the same instance whose optional request fails keeps the field's known value:
// node_cloud_info must not become a second series with an empty label.
func TestPartialRefreshKeepsKnownFields(t *testing.T) {
	var calls atomic.Int32
	s := newIMDS(t, AWS).handle("/latest/meta-data/public-ipv4", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 2 { // the first refresh after a complete fetch
			http.Error(w, "throttled", http.StatusTooManyRequests)
			return
		}
		body("203.0.113.25")(w, r)
	})
	cfg := testConfig(s)
	cfg.RefreshInterval = time.Second
	w := startWatcher(t, cfg)
	waitFor(t, "complete metadata", func() bool { md, _ := w.Current(); return md.PublicIPv4 != "" })
	waitFor(t, "the partial refresh", func() bool { return w.Stats().FailedAttempts >= 1 })
	if md, _ := w.Current(); md != wantFixture[AWS] {
		t.Fatalf("after a partial refresh Current = %+v, want the complete value %+v", md, wantFixture[AWS])
	}
}
