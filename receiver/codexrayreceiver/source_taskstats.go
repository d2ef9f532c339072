package codexrayreceiver

import (
	"context"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/taskstats"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

var (
	_ source              = (*taskstatsSource)(nil)
	_ containerRecorder   = (*taskstatsSource)(nil)
	_ nodeRecorder        = (*taskstatsSource)(nil)
	_ degradationReporter = (*taskstatsSource)(nil)
	_ stateKeeper         = (*taskstatsSource)(nil)
	_ containerHolder     = (*taskstatsSource)(nil)
)

// taskstatsSource reports per-container delay accounting (CPU run-queue delay, disk delay and,
// when their metrics are enabled, swap-in, reclaim and thrashing delays) from netlink
// TASKSTATS. The processes are read once per collection, lazily on the first container of the
// tick; exits in between arrive through the kernel's exit notifications.
type taskstatsSource struct {
	cfg      taskstats.Config
	logger   *zap.Logger
	resolver taskstats.Resolver
	state    *stateStore // nil: no state kept

	mu          sync.Mutex
	collector   delayCollector
	lastCollect pcommon.Timestamp
}

// delayCollector is the part of *taskstats.Collector the source uses.
type delayCollector interface {
	Collect(now time.Time) error
	ContainerDelays(id containers.ID) (taskstats.ContainerDelays, bool)
	Status() taskstats.Status
	Save() []taskstats.SavedContainer
	ContainerIDs() []containers.ID
	Forget(ids []containers.ID)
	Close() error
}

func newTaskstatsSource(env sourceEnv) source {
	return &taskstatsSource{
		cfg:      env.cfg.Taskstats,
		logger:   env.settings.Logger.With(zap.String("source", "taskstats")),
		resolver: env.registry,
		state:    env.state,
	}
}

func (s *taskstatsSource) name() string  { return "taskstats" }
func (s *taskstatsSource) enabled() bool { return s.cfg.Enabled }

// start opens the TASKSTATS sockets; it fails (and the other sources carry on) when the kernel
// lacks TASKSTATS or the agent lacks CAP_NET_ADMIN or the host's namespaces.
func (s *taskstatsSource) start(context.Context, component.Host) error {
	c, err := taskstats.NewCollector(s.cfg, s.resolver, s.logger)
	if err != nil {
		return err
	}
	if s.state != nil {
		c.Restore(decodeRecords[taskstats.SavedContainer](s.state, stateDelays, s.logger))
	}
	c.Start()
	s.mu.Lock()
	s.collector = c
	s.mu.Unlock()
	return nil
}

func (s *taskstatsSource) shutdown(context.Context) error {
	s.mu.Lock()
	c := s.collector
	s.collector = nil
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// saveState saves every container's delay totals.
func (s *taskstatsSource) saveState(cp *checkpoint) {
	s.mu.Lock()
	c := s.collector
	s.mu.Unlock()
	if c == nil {
		return
	}
	saved := c.Save()
	for i := range saved {
		cp.put(stateDelays+string(saved[i].ID), &saved[i])
	}
}

// heldContainers lists the containers with delay totals.
func (s *taskstatsSource) heldContainers() []heldContainer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.collector == nil {
		return nil
	}
	return heldIDs(s.collector.ContainerIDs())
}

// forgetContainers drops the delay totals of containers gone for good.
func (s *taskstatsSource) forgetContainers(_ context.Context, ids []containers.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.collector != nil {
		s.collector.Forget(ids)
	}
}

// recordContainer records the container's cumulative delays (from d.Since, see startOf),
// collecting first when this is the first container of a new tick.
func (s *taskstatsSource) recordContainer(mb *metadata.MetricsBuilder, now pcommon.Timestamp, c *containers.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.collector == nil {
		return
	}
	if now != s.lastCollect {
		s.lastCollect = now
		if err := s.collector.Collect(now.AsTime()); err != nil {
			s.logger.Debug("taskstats collection incomplete", zap.Error(err))
		}
	}
	d, ok := s.collector.ContainerDelays(c.ID)
	if !ok {
		return
	}
	start := startOf(d.Since, now)
	mb.RecordContainerResourcesCPUDelayDataPointWithStart(start, now, d.CPU)
	mb.RecordContainerResourcesDiskDelayDataPointWithStart(start, now, d.Disk)
	// The extended delays (beyond coroot-node-agent) come with the same query; their metric
	// switches (off by default) are the only control, so there is one place to turn them on.
	mb.RecordContainerResourcesSwapinDelayDataPointWithStart(start, now, d.Swapin)
	mb.RecordContainerResourcesMemoryReclaimDelayDataPointWithStart(start, now, d.MemoryReclaim)
	mb.RecordContainerResourcesMemoryThrashingDelayDataPointWithStart(start, now, d.MemoryThrashing)
}

// degradation says what the kernel does not account: disk delay without
// kernel.task_delayacct, and delays of processes exiting between collections without the exit
// listener.
func (s *taskstatsSource) degradation() string {
	s.mu.Lock()
	c := s.collector
	s.mu.Unlock()
	if c == nil {
		return ""
	}
	st := c.Status()
	var reasons []string
	if !st.TaskDelayacct {
		reasons = append(reasons, "kernel.task_delayacct is 0: disk delay stays 0 (set taskstats.enable_task_delayacct)")
	}
	if st.ExitListenerErr != nil {
		reasons = append(reasons, "no exit notifications, delays of short-lived processes are lost: "+st.ExitListenerErr.Error())
	}
	return strings.Join(reasons, "; ")
}

// recordNode reports exit records lost to socket overruns: delays of processes that exited
// then are missing (or cut at their last reading).
func (s *taskstatsSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	s.mu.Lock()
	c := s.collector
	s.mu.Unlock()
	if c == nil {
		return
	}
	st := c.Status()
	mb.RecordCodexrayLimitsDroppedDataPoint(now, int64(st.ExitOverruns), "taskstats_exit_overruns")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.Counters.Implausible), "taskstats", "implausible_value")
}
