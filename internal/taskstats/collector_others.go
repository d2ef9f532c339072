//go:build !linux

package taskstats

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// ErrUnavailable wraps every reason the TASKSTATS family cannot be used.
var ErrUnavailable = errors.New("taskstats: unavailable")

// ErrGone is returned for a task that no longer exists.
var ErrGone = errors.New("taskstats: task is gone")

// Collector is the taskstats source; TASKSTATS exists only on Linux.
type Collector struct{}

// Status is what the receiver can report about the source.
type Status struct{}

// ContainerDelays are a container's cumulative delays in seconds.
type ContainerDelays struct {
	CPU, Disk, Swapin, MemoryReclaim, MemoryThrashing float64
	Since                                             time.Time
}

// NewCollector always fails off Linux.
func NewCollector(Config, Resolver, *zap.Logger) (*Collector, error) {
	return nil, fmt.Errorf("%w: netlink TASKSTATS is Linux-only (running on %s)", ErrUnavailable, runtime.GOOS)
}

func (c *Collector) Start()                  {}
func (c *Collector) Collect(time.Time) error { return ErrUnavailable }
func (c *Collector) ContainerDelays(containers.ID) (ContainerDelays, bool) {
	return ContainerDelays{}, false
}
func (c *Collector) Status() Status { return Status{} }
func (c *Collector) Close() error   { return nil }

func (c *Collector) Save() []SavedContainer        { return nil }
func (c *Collector) Restore([]SavedContainer)      {}
func (c *Collector) ContainerIDs() []containers.ID { return nil }
func (c *Collector) Forget([]containers.ID)        {}
