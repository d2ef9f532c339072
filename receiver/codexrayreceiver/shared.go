package codexrayreceiver

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
)

// One codexray receiver sits in a metrics and a logs pipeline at once, but it must own one
// tracer, one registry and one set of log readers. The collector creates a component per
// pipeline; these functions hand every pipeline the same *codexrayReceiver for the same
// *Config. (The collector's own sharedcomponent helper is internal to contrib.)
var receivers = &sharedReceivers{byConfig: map[*Config]*codexrayReceiver{}}

type sharedReceivers struct {
	mu       sync.Mutex
	byConfig map[*Config]*codexrayReceiver
}

func (s *sharedReceivers) getOrCreate(cfg *Config, set receiver.Settings) *codexrayReceiver {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.byConfig[cfg]; ok {
		return r
	}
	r := newReceiver(cfg, set, func() { s.remove(cfg) })
	s.byConfig[cfg] = r
	return r
}

func (s *sharedReceivers) remove(cfg *Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byConfig, cfg)
}

func createMetricsReceiver(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	r := receivers.getOrCreate(cfg.(*Config), set)
	r.setMetricsConsumer(next)
	return r, nil
}

func createLogsReceiver(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	r := receivers.getOrCreate(cfg.(*Config), set)
	r.setLogsConsumer(next)
	return r, nil
}
