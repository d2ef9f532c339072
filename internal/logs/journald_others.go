//go:build !(cgo && linux)

package logs

import (
	"context"
	"errors"

	"go.uber.org/zap"
)

// errJournaldNotBuilt is what an agent built without cgo reports instead of silently having no
// journald source.
var errJournaldNotBuilt = errors.New("journald source not built in (needs cgo and libsystemd; build with CGO_ENABLED=1)")

type journaldSource struct {
	sourceLoop
	cfg      *Config
	lookup   ContainerLookup
	filter   nameFilter
	sink     Sink
	stats    *Stats
	store    CheckpointStore
	logger   *zap.Logger
	fromHead bool
	files    []string
}

func (s *journaldSource) open(context.Context) error { return errJournaldNotBuilt }

func (s *journaldSource) run(context.Context) {}
