package tracer

import (
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/conntrack"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// run is the kernel attachment of a started tracer.
type run struct {
	probe *ebpf.Probe
	nat   *conntrack.Resolver // opened by Start, closed by Close
	done  sync.WaitGroup
}

// Start loads the BPF programs, opens conntrack when configured and starts the goroutine that
// reads events. A kernel that cannot run the tracer yields an error wrapping
// ebpf.ErrUnsupported or ebpf.ErrPermission; the tracer then stays empty and Close is still
// safe. A conntrack that cannot be opened is logged and actual_destination falls back to
// destination.
func (t *Tracer) Start() error {
	if t.run.Load() != nil {
		return errors.New("tracer already started")
	}
	probe, err := ebpf.Load(ebpf.LoadOptions{RingBufferSize: t.opts.Config.RingBufferSize})
	if err != nil {
		return fmt.Errorf("starting eBPF tracer: %w", err)
	}
	if len(probe.Missing) > 0 {
		t.opts.Logger.Warn("kernel lacks optional tracepoints: TCP byte counters and latency stay empty",
			zap.Strings("missing", probe.Missing))
	}
	r := &run{probe: probe}
	if t.opts.NAT == nil && t.opts.Config.Conntrack {
		nat, err := conntrack.Open()
		if err != nil {
			t.opts.Logger.Warn("conntrack unavailable: actual_destination will equal destination", zap.Error(err))
		} else {
			r.nat = nat
			t.opts.NAT = nat
		}
	}
	t.seedExisting(probe)
	t.run.Store(r)
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		t.read(probe)
	}()
	return nil
}

// seedExisting records the listeners and connections that were open before the programs were
// attached (see seed.go). It runs before the first event is read, so that connect events of
// connections established in between find their seeded entries.
func (t *Tracer) seedExisting(probe *ebpf.Probe) {
	t.mu.Lock()
	t.kernel = probe
	t.mu.Unlock()
	root := t.opts.Config.ProcRoot
	if root == "" {
		root = ebpf.DefaultConfig().ProcRoot
	}
	res, err := t.seed(root, probe)
	if err != nil {
		t.opts.Logger.Warn("cannot read the TCP sockets open before the agent started: their listen addresses and connections appear only once they change",
			zap.String("proc_root", root), zap.Error(err))
		return
	}
	st := t.Stats()
	t.opts.Logger.Info("recorded the TCP sockets open before the agent started",
		zap.Int("listens", res.Listens), zap.Int("connections", res.Connections),
		zap.Int("network_namespaces", res.Namespaces), zap.Int("processes", res.Processes),
		zap.Duration("duration", res.Duration), zap.Uint64("vanished_processes", st.SeedVanished),
		zap.Uint64("unreadable", st.SeedUnreadable), zap.Uint64("malformed_lines", st.SeedMalformed))
}

func (t *Tracer) read(p *ebpf.Probe) {
	var ev ebpf.Event
	for {
		err := p.ReadEvent(&ev)
		switch {
		case err == nil:
			t.Handle(&ev)
		case errors.Is(err, ebpf.ErrClosed):
			return
		default:
			// a malformed record: count it and keep reading
			t.decodeErrors.Add(1)
		}
	}
}

// Refresh pulls the live counters of open connections from the kernel, recomputes latency and
// expires idle state. The receiver calls it once per collection, before ContainerStats.
func (t *Tracer) Refresh() error {
	var err error
	if r := t.run.Load(); r != nil {
		err = r.probe.Connections(t.UpdateConnection)
	}
	now := t.now()
	t.mu.Lock()
	t.updateLatency(now)
	t.expire(now)
	t.mu.Unlock()
	return err
}

// Close detaches from the kernel and waits for the reader goroutine. Safe if Start failed or
// never ran, and safe to call twice.
func (t *Tracer) Close() error {
	r := t.run.Swap(nil)
	if r == nil {
		return nil
	}
	err := r.probe.Close()
	r.done.Wait()
	t.mu.Lock()
	t.kernel = nil
	t.mu.Unlock()
	if r.nat != nil {
		err = errors.Join(err, r.nat.Close())
		t.opts.NAT = nil
	}
	return err
}
