package cloudmeta

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Watcher keeps the node's cloud metadata current: it detects the provider, fetches in the
// background with per-request timeouts, retries failures with exponential back-off and
// refreshes after every success. All methods are safe for concurrent use.
type Watcher struct {
	cfg      Config
	logger   *zap.Logger
	client   *http.Client
	counters counters

	startOnce sync.Once
	stopOnce  sync.Once
	cancel    context.CancelFunc
	done      chan struct{}

	mu    sync.Mutex
	md    Metadata
	known bool
	// outside: no provider to ask (none detected, or a DMI hint the service did not
	// confirm); overrides alone then describe the node.
	outside  bool
	attempts uint64
	failed   uint64
	lastErr  string
	lastOK   time.Time
}

// Stats is the Watcher's self-observation, for self-metrics and debugging.
type Stats struct {
	// Attempts and FailedAttempts count whole fetches (one per provider round trip set).
	Attempts, FailedAttempts uint64
	// Requests and FailedRequests count single HTTP requests.
	Requests, FailedRequests uint64
	// OversizedResponses counts bodies refused for exceeding max_response_bytes.
	OversizedResponses uint64
	// LastError is the last failed fetch's error ("" after a success).
	LastError string
	// LastSuccess is when the last complete fetch ended (zero before the first).
	LastSuccess time.Time
}

// NewWatcher returns a Watcher for cfg (validated by the caller). It does nothing until Start.
func NewWatcher(cfg Config, logger *zap.Logger) *Watcher {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Watcher{cfg: cfg, logger: logger, client: newHTTPClient(), done: make(chan struct{})}
}

// Start begins detection and fetching in a goroutine and returns at once. ctx supplies values
// only: the work runs until Shutdown, not until ctx ends (a collector's start context is not
// meant to outlive Start). Calling Start again does nothing.
func (w *Watcher) Start(ctx context.Context) {
	w.startOnce.Do(func() {
		if !w.cfg.Enabled {
			close(w.done)
			return
		}
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w.mu.Lock()
		w.cancel = cancel
		w.mu.Unlock()
		go w.run(runCtx)
	})
}

// Shutdown stops the background goroutine and waits for it. Safe before Start, after a failed
// Start, and more than once.
func (w *Watcher) Shutdown() {
	w.stopOnce.Do(func() {
		// A Start racing with Shutdown must not begin work afterwards.
		w.startOnce.Do(func() { close(w.done) })
		w.mu.Lock()
		cancel := w.cancel
		w.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		<-w.done
		w.client.CloseIdleConnections()
	})
}

// Current returns what is known about the node, with overrides applied. ok is false until a
// fetch succeeded. On a node outside any cloud, the overrides alone are the answer (ok is
// false when there are none). While a provider's answer is still awaited, overrides are held
// back too: publishing them first and the full identity later would start two
// node_cloud_info series for one node.
func (w *Watcher) Current() (Metadata, bool) {
	w.mu.Lock()
	md, known, outside := w.md, w.known, w.outside
	w.mu.Unlock()
	switch {
	case !w.cfg.Enabled:
		return Metadata{}, false
	case known:
		return md.withOverrides(w.cfg.Overrides), true
	case outside && w.cfg.Overrides != (Overrides{}):
		return Metadata{}.withOverrides(w.cfg.Overrides), true
	}
	return Metadata{}, false
}

func (w *Watcher) setOutside(v bool) {
	w.mu.Lock()
	w.outside = v
	w.mu.Unlock()
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{
		Attempts:           w.attempts,
		FailedAttempts:     w.failed,
		Requests:           w.counters.requests.Load(),
		FailedRequests:     w.counters.failures.Load(),
		OversizedResponses: w.counters.oversized.Load(),
		LastError:          w.lastErr,
		LastSuccess:        w.lastOK,
	}
}

// resolve picks the provider: forced by config, or detected from DMI.
func (w *Watcher) resolve() detection {
	if w.cfg.Provider != "" {
		return detection{provider: Provider(w.cfg.Provider), evidence: "cloud.provider setting"}
	}
	return detectDMI(w.cfg.DMIRoot)
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	det := w.resolve()
	if det.provider == "" {
		w.setOutside(true)
		// The normal case on bare metal and private virtualisation: say so once, no error.
		w.logger.Info("No cloud provider identified from DMI; the node gets no cloud attributes",
			zap.String("dmi_root", w.cfg.DMIRoot), zap.String("hint", "set cloud.provider to force one"))
		return
	}
	info := providers[det.provider]
	base := strings.TrimSuffix(w.cfg.Endpoint, "/")
	if base == "" {
		base = info.endpoint
	}
	log := w.logger.With(zap.String("provider", string(det.provider)), zap.String("endpoint", base))
	log.Info("Fetching cloud instance metadata", zap.String("evidence", det.evidence), zap.Bool("probe", det.probe))

	f := &fetcher{ctx: ctx, client: w.client, base: base, timeout: w.cfg.Timeout, maxBytes: w.cfg.MaxResponseBytes, counters: &w.counters}
	backoff := w.cfg.RetryInitialInterval
	confirmed := !det.probe
	failStreak := 0
	var published Metadata
	for {
		md, err := info.fetch(f)
		if ctx.Err() != nil {
			return
		}
		got := md.InstanceID != ""
		if got {
			confirmed = true
		}
		w.record(md, got, err)

		var wait time.Duration
		switch {
		case err == nil:
			if md != published {
				log.Info("Cloud instance metadata known", zap.Any("metadata", md))
				published = md
			}
			failStreak, backoff, wait = 0, w.cfg.RetryInitialInterval, w.cfg.RefreshInterval
		case !confirmed:
			// DMI only hinted; no answer means this is not that cloud. Look again much later
			// rather than hammering an address nobody serves.
			w.setOutside(true)
			if failStreak == 0 {
				log.Info("Metadata service did not confirm the provider DMI hinted at; treating the node as outside any cloud",
					zap.String("evidence", det.evidence), zap.Error(err))
			}
			failStreak++
			wait = w.cfg.RefreshInterval
		default:
			if failStreak == 0 {
				log.Warn("Fetching cloud instance metadata failed; retrying with back-off",
					zap.Bool("partial", got), zap.Duration("retry_in", backoff), zap.Error(err))
			} else {
				log.Debug("Fetching cloud instance metadata failed again", zap.Int("failures", failStreak+1), zap.Duration("retry_in", backoff), zap.Error(err))
			}
			failStreak++
			wait = backoff
			backoff = min(backoff*2, w.cfg.RetryMaxInterval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// record publishes a fetch result: a result with an instance id replaces what is known (even
// when some optional field failed), anything else keeps the last good value. A partial result
// of the same instance keeps the previously known value of each field that failed this time:
// one failed request must not turn node_cloud_info into a new series with an empty label.
func (w *Watcher) record(md Metadata, got bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts++
	if got {
		if err != nil && w.known && w.md.Provider == md.Provider && w.md.InstanceID == md.InstanceID {
			md = md.fillFrom(w.md)
		}
		w.md, w.known = md, true
	}
	if err != nil {
		w.failed++
		w.lastErr = err.Error()
		return
	}
	w.lastErr = ""
	w.lastOK = time.Now()
}
