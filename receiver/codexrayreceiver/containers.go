package codexrayreceiver

import (
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// containerMetrics records what each container of the registry is (container_info, restarts)
// and what it uses (cgroup cpu, memory, block IO and PSI counters, read at collection time),
// and the registry's own error counts. It is part of the receiver, not a source: the registry
// always runs, because every source attributes through it. Restarts start at the registry's
// RestartsSince, the cgroup counters with the instance (see startOf).
type containerMetrics struct {
	cgroupsCfg cgroups.Config
	registry   *containers.Registry
	logger     *zap.Logger

	mu         sync.Mutex
	lastWarned time.Time // partial cgroup readings are logged at most once a minute
}

// registryName is the `source` of the registry's codexray_source_status and source errors.
const registryName = "containers"

func newContainerMetrics(cgroupsCfg cgroups.Config, registry *containers.Registry, logger *zap.Logger) *containerMetrics {
	return &containerMetrics{cgroupsCfg: cgroupsCfg, registry: registry, logger: logger}
}

func (s *containerMetrics) recordContainer(mb *metadata.MetricsBuilder, now pcommon.Timestamp, c *containers.Container) {
	mb.RecordContainerInfoDataPoint(now, 1, c.Image)
	mb.RecordContainerRestartsDataPointWithStart(restartsStart(c, now), now, c.Restarts)
	if !s.cgroupsCfg.Enabled {
		return
	}
	st, err := c.Resources()
	if errors.Is(err, containers.ErrNoCgroupStats) {
		return
	}
	if err != nil {
		s.warnPartial(c, err)
	}
	if st.HasCPU {
		mb.RecordContainerResourcesCPUUsageDataPoint(now, st.CPU.UsageSeconds)
	}
	if st.HasThrottling { // unknown is not zero: absent until the cpu hierarchy is located
		mb.RecordContainerResourcesCPUThrottledDataPoint(now, st.CPU.ThrottledSeconds)
	}
	if st.CPU.LimitCores > 0 {
		mb.RecordContainerResourcesCPULimitCoresDataPoint(now, st.CPU.LimitCores)
	}
	if st.HasMemory {
		mb.RecordContainerResourcesMemoryRssDataPoint(now, int64(st.Memory.RSSBytes))
		mb.RecordContainerResourcesMemoryCacheDataPoint(now, int64(st.Memory.CacheBytes))
	}
	if st.Memory.LimitBytes > 0 {
		mb.RecordContainerResourcesMemoryLimitDataPoint(now, int64(st.Memory.LimitBytes))
	}
	for _, d := range st.IO {
		mb.RecordContainerResourcesDiskReadsDataPoint(now, int64(d.Reads), d.Device)
		mb.RecordContainerResourcesDiskWritesDataPoint(now, int64(d.Writes), d.Device)
		mb.RecordContainerResourcesDiskReadBytesDataPoint(now, int64(d.ReadBytes), d.Device)
		mb.RecordContainerResourcesDiskWrittenBytesDataPoint(now, int64(d.WrittenBytes), d.Device)
	}
	if st.HasPSI {
		mb.RecordContainerResourcesCPUPressureWaitingDataPoint(now, st.PSI.CPU.SomeSeconds, "some")
		mb.RecordContainerResourcesCPUPressureWaitingDataPoint(now, st.PSI.CPU.FullSeconds, "full")
		mb.RecordContainerResourcesMemoryPressureWaitingDataPoint(now, st.PSI.Memory.SomeSeconds, "some")
		mb.RecordContainerResourcesMemoryPressureWaitingDataPoint(now, st.PSI.Memory.FullSeconds, "full")
		mb.RecordContainerResourcesIOPressureWaitingDataPoint(now, st.PSI.IO.SomeSeconds, "some")
		mb.RecordContainerResourcesIOPressureWaitingDataPoint(now, st.PSI.IO.FullSeconds, "full")
	}
}

// restartsStart is the start timestamp of c's restart count: RestartsSince, or FirstSeen for a
// container the registry did not publish (one retained by another source), never after now.
func restartsStart(c *containers.Container, now pcommon.Timestamp) pcommon.Timestamp {
	since := c.RestartsSince
	if since.IsZero() {
		since = c.FirstSeen
	}
	return startOf(since, now)
}

// recordNode reports what the registry counted and skipped: /proc entries it could not read,
// and processes whose cgroup path is relative to a cgroup namespace the agent could not place
// on the host tree (an agent pod whose host cgroupfs mount does not match its namespace).
func (s *containerMetrics) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	st := s.registry.Stats()
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.ProcessErrors), registryName, "process_unreadable")
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.NamespaceSkipped), registryName, "cgroup_namespace_unresolved")
	// Containers still missing a cgroup hierarchy at their second collection (their runtime
	// had not created or joined it): their stats lacked that hierarchy's part meanwhile.
	mb.RecordCodexraySourceErrorsDataPoint(now, int64(st.CgroupIncomplete), registryName, "cgroup_incomplete")
}

func (s *containerMetrics) warnPartial(c *containers.Container, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.lastWarned) < time.Minute {
		return
	}
	s.lastWarned = time.Now()
	s.logger.Warn("some cgroup counters of a container could not be read (logged once a minute)",
		zap.String("container", string(c.ID)), zap.Error(err))
}
