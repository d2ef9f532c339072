package containers

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// runtimePause is how long a runtime socket that failed (timeout, garbage, refused) is not
// asked again. Lookups happen on the paths of eBPF events: a hung runtime may cost one
// timeout per pause, never one per event.
var runtimePause = 30 * time.Second

// runtimeClient is one runtime socket.
type runtimeClient interface {
	inspect(ctx context.Context, id string) (metadata, error)
	close()
}

type runtimeEndpoint struct {
	socket string
	client runtimeClient
	// guarded by runtimes.mu
	pausedUntil time.Time
	down        bool // logged as unavailable; logged again when it answers
}

// runtimes asks the configured container runtimes for metadata, each call bounded by a
// timeout and each failing socket paused, so the registry never blocks on a runtime.
type runtimes struct {
	timeout time.Duration
	logger  *zap.Logger
	docker  *runtimeEndpoint
	cri     []*runtimeEndpoint

	mu sync.Mutex
}

func newRuntimes(cfg Config, logger *zap.Logger) *runtimes {
	rt := &runtimes{timeout: cfg.RuntimeTimeout, logger: logger}
	if cfg.DockerSocket != "" {
		rt.docker = &runtimeEndpoint{socket: cfg.DockerSocket, client: newDockerClient(cfg.DockerSocket, cfg.RuntimeTimeout)}
	}
	for _, s := range cfg.CRISockets {
		c, err := newCRIClient(s)
		if err != nil {
			logger.Warn("CRI runtime metadata disabled for this socket", zap.String("socket", s), zap.Error(err))
			continue
		}
		rt.cri = append(rt.cri, &runtimeEndpoint{socket: s, client: c})
	}
	return rt
}

// serves reports whether a runtime is configured that can describe containers of this kind.
func (rt *runtimes) serves(kind cgroups.Kind) bool {
	if rt == nil {
		return false
	}
	switch kind {
	case cgroups.KindDocker:
		return rt.docker != nil
	case cgroups.KindContainerd, cgroups.KindCRIO, cgroups.KindKubepods:
		return len(rt.cri) > 0
	}
	return false
}

// lookup asks the runtimes that can know a container of this kind. ok is false when none
// answered with metadata (absent, paused, failing, or not knowing the id); answered is true
// when asking again cannot help: a runtime said, or every runtime configured for the kind
// said, whether it knows the id (or none is configured).
func (rt *runtimes) lookup(ctx context.Context, kind cgroups.Kind, id string) (m metadata, ok, answered bool) {
	if rt == nil || id == "" {
		return metadata{}, false, true
	}
	var endpoints []*runtimeEndpoint
	switch kind {
	case cgroups.KindDocker:
		if rt.docker != nil {
			endpoints = []*runtimeEndpoint{rt.docker}
		}
	case cgroups.KindContainerd, cgroups.KindCRIO, cgroups.KindKubepods:
		endpoints = rt.cri
	}
	answered = true
	for _, ep := range endpoints {
		m, ok, said := rt.ask(ctx, ep, id)
		if ok {
			return m, true, true
		}
		answered = answered && said
	}
	return metadata{}, false, answered
}

// ask asks one runtime about id; answered: it said whether it knows the id.
func (rt *runtimes) ask(ctx context.Context, ep *runtimeEndpoint, id string) (m metadata, ok, answered bool) {
	ok, answered = rt.call(ctx, ep, func(ctx context.Context) error {
		var err error
		m, err = ep.client.inspect(ctx, id)
		return err
	})
	return m, ok, answered
}

// findCRI looks for a Kubernetes container among the CRI runtimes' containers, exited ones
// included (criClient.find). found: a runtime knows it, described by m, rid its runtime id;
// answered: every runtime asked said whether it knows it (none is configured, or a socket
// that does not exist, paused or failing, is not an answer).
func (rt *runtimes) findCRI(ctx context.Context, ref criRef) (rid string, m metadata, found, answered bool) {
	if rt == nil || len(rt.cri) == 0 {
		return "", metadata{}, false, false
	}
	answered = true
	for _, ep := range rt.cri {
		c, ok := ep.client.(*criClient)
		if !ok {
			continue
		}
		ok, said := rt.call(ctx, ep, func(ctx context.Context) error {
			var err error
			rid, m, err = c.find(ctx, ref)
			return err
		})
		if ok {
			return rid, m, true, true
		}
		answered = answered && said
	}
	return "", metadata{}, false, answered
}

// call makes one bounded call to a runtime (errNotFound: it answered and does not know the
// container); a failing runtime is paused, and its failure and recovery are logged once.
func (rt *runtimes) call(ctx context.Context, ep *runtimeEndpoint, do func(context.Context) error) (ok, answered bool) {
	now := time.Now()
	rt.mu.Lock()
	paused := now.Before(ep.pausedUntil)
	rt.mu.Unlock()
	if paused {
		return false, false
	}
	if _, err := os.Stat(ep.socket); err != nil {
		return false, false // runtime not installed here (yet): nothing to log
	}
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	err := do(ctx)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch {
	case err == nil || errors.Is(err, errNotFound):
		if ep.down {
			ep.down = false
			rt.logger.Info("container runtime answers again", zap.String("socket", ep.socket))
		}
		return err == nil, true
	default:
		ep.pausedUntil = time.Now().Add(runtimePause)
		if !ep.down {
			ep.down = true
			rt.logger.Warn("container runtime unavailable; containers it runs get no metadata until it answers",
				zap.String("socket", ep.socket), zap.Duration("retry_in", runtimePause), zap.Error(err))
		}
		return false, false
	}
}

func (rt *runtimes) close() {
	if rt == nil {
		return
	}
	if rt.docker != nil {
		rt.docker.client.close()
	}
	for _, c := range rt.cri {
		c.client.close()
	}
}
