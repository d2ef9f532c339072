package codexrayreceiver

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/apptype"
	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/nodestats"
	"github.com/codexray/codexray-node-agent/internal/volumes"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

var (
	_ source            = (*processesSource)(nil)
	_ containerRecorder = (*processesSource)(nil)
	_ nodeRecorder      = (*processesSource)(nil)
)

// ProcessesConfig is the `processes` section: what a container's processes show in procfs.
type ProcessesConfig struct {
	// Enabled turns on container_application_type (the programs the container's processes
	// run) and container_resources_disk_{size,used,reserved}_bytes (the block-device file
	// systems mounted in their mount namespace). Default true.
	Enabled bool `mapstructure:"enabled"`
	// ProcRoot is the procfs to read; empty means node.proc_root.
	ProcRoot string `mapstructure:"proc_root"`
}

// processesSource reads what a container's processes show in procfs at each collection: the
// application types of their programs (internal/apptype, cached per process while it runs the
// same executable) and the volumes of their mount namespace (internal/volumes: mountinfo and
// statfs through /proc/<pid>/root, no kprobes). The processes of each container come from the
// registry once per collection (Registry.PIDsByContainer).
type processesSource struct {
	cfg      ProcessesConfig
	registry *containers.Registry
	logger   *zap.Logger
	appTypes bool // container.application_type is enabled
	volumes  bool // a container.resources.disk.{size,used,reserved} metric is enabled

	// Collection only (recordContainer and recordNode run in the collecting goroutine).
	mu         sync.Mutex
	detector   *apptype.Detector
	reader     *volumes.Reader
	collection pcommon.Timestamp // the collection the snapshot below is of
	pids       map[containers.ID][]uint32
	host       volumes.HostMounts
	disks      nodestats.BlockDevices
	types      []string
	// Counted and skipped, for codexray_source_errors{source="processes"}.
	unreadableProcesses, unreadableMounts, unreadableHost int64
	lastWarned                                            time.Time
}

func newProcessesSource(env sourceEnv) source {
	m := env.cfg.Metrics
	return &processesSource{
		cfg:      env.cfg.Processes,
		registry: env.registry,
		logger:   env.settings.Logger.With(zap.String("source", "processes")),
		appTypes: m.ContainerApplicationType.Enabled,
		volumes: m.ContainerResourcesDiskSize.Enabled || m.ContainerResourcesDiskUsed.Enabled ||
			m.ContainerResourcesDiskReserved.Enabled,
	}
}

func (s *processesSource) name() string  { return "processes" }
func (s *processesSource) enabled() bool { return s.cfg.Enabled }

func (s *processesSource) start(context.Context, component.Host) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.detector = apptype.NewDetector(s.cfg.ProcRoot)
	s.reader = volumes.New(s.cfg.ProcRoot)
	return nil
}

func (s *processesSource) shutdown(context.Context) error { return nil }

// snapshot reads, once per collection, which processes each container has and what the host's
// mount table and block devices are.
func (s *processesSource) snapshot(now pcommon.Timestamp) {
	if s.collection == now && s.pids != nil {
		return
	}
	s.collection = now
	s.pids = s.registry.PIDsByContainer()
	if s.appTypes {
		s.detector.Forget()
	}
	if !s.volumes {
		return
	}
	var err error
	if s.host, err = s.reader.HostMounts(); err != nil {
		s.unreadableHost++
		s.warn("the host's mount table could not be read; volume sources and names may be missing", err)
	}
	if s.disks, err = nodestats.ReadBlockDevices(s.cfg.ProcRoot); err != nil {
		s.unreadableHost++
		s.warn("block devices could not be listed; volume devices may be missing", err)
	}
}

func (s *processesSource) recordContainer(mb *metadata.MetricsBuilder, now pcommon.Timestamp, c *containers.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshot(now)
	pids := s.pids[c.ID]
	if len(pids) == 0 {
		return // gone, or only known to a source (a retained container)
	}
	if s.appTypes {
		var unreadable int
		s.types, unreadable = s.detector.Processes(pids, s.types[:0])
		s.unreadableProcesses += int64(unreadable)
		for _, t := range s.types {
			mb.RecordContainerApplicationTypeDataPoint(now, 1, t)
		}
	}
	if s.volumes {
		vs, err := s.reader.ContainerOf(pids, s.host, s.disks, nil)
		if err != nil {
			s.unreadableMounts++
			s.warn("a container's mounts could not be read (all of them, or some lines)", err)
		}
		for _, v := range vs {
			mb.RecordContainerResourcesDiskSizeDataPoint(now, int64(v.SizeBytes), v.MountPoint, v.Device, v.Volume)
			mb.RecordContainerResourcesDiskUsedDataPoint(now, int64(v.UsedBytes), v.MountPoint, v.Device, v.Volume)
			mb.RecordContainerResourcesDiskReservedDataPoint(now, int64(v.ReservedBytes), v.MountPoint, v.Device, v.Volume)
		}
	}
}

func (s *processesSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb.RecordCodexraySourceErrorsDataPoint(now, s.unreadableProcesses, "processes", "process_unreadable")
	mb.RecordCodexraySourceErrorsDataPoint(now, s.unreadableMounts, "processes", "mounts_unreadable")
	mb.RecordCodexraySourceErrorsDataPoint(now, s.unreadableHost, "processes", "host_mounts_unreadable")
}

// warn logs what could not be read, at most once a minute.
func (s *processesSource) warn(msg string, err error) {
	if time.Since(s.lastWarned) < time.Minute {
		return
	}
	s.lastWarned = time.Now()
	s.logger.Warn(msg+" (logged once a minute)", zap.Error(err))
}
