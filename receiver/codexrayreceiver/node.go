package codexrayreceiver

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/nodestats"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// nodeName is the `source` of the node part's codexray_source_errors.
const nodeName = "node"

// nodeSource is the receiver's node part: what the host says about itself — node_info,
// node_agent_info, node_uptime_seconds and coroot-node-agent's node resources (CPU by mode,
// cores, memory, whole disks, physical-like interfaces) read by internal/nodestats — and the
// description of the node that every resource the receiver emits carries. It is not a source:
// it always runs, like the registry. recordNode is called by the collection only (the reader
// keeps buffers); the describe methods are safe from any goroutine (log records are described
// by the logs source's flush).
type nodeSource struct {
	cfg      NodeConfig
	logger   *zap.Logger
	hostname string
	k8sNode  string
	kernel   string
	version  string
	identity nodestats.Identity
	reader   *nodestats.Reader
	// boot is when the node booted: the start of its counters (CPU, disks, interfaces count
	// from boot), the receiver's start when the uptime cannot be read.
	boot pcommon.Timestamp

	// Collection only.
	unreadable int64     // node parts that could not be read, summed over collections
	lastWarned time.Time // partial readings are logged at most once a minute

	mu sync.RWMutex
	// Sources that add to the node's description (the cloud source), set once they started.
	describers          []nodeDescriber
	containerDescribers []containerNodeDescriber
}

func newNodeSource(cfg NodeConfig, start time.Time, version string, logger *zap.Logger) *nodeSource {
	if logger == nil {
		logger = zap.NewNop()
	}
	statsCfg := nodestats.Config{ProcRoot: cfg.ProcRoot, SysRoot: cfg.SysRoot, MachineIDPaths: cfg.MachineIDPaths}
	n := &nodeSource{
		cfg:      cfg,
		logger:   logger,
		version:  nodestats.AgentVersion(version),
		identity: nodestats.ReadIdentity(statsCfg),
		reader:   nodestats.New(statsCfg, nil),
		boot:     pcommon.NewTimestampFromTime(start),
	}
	n.hostname = readTrimmed(filepath.Join(cfg.ProcRoot, "sys", "kernel", "hostname"))
	if n.hostname == "" {
		n.hostname, _ = os.Hostname()
	}
	// The DaemonSet manifest passes the node name through the downward API; the hostname of a
	// Kubernetes node is not always its node name (e.g. on EKS).
	n.k8sNode = os.Getenv(k8sNodeNameEnv)
	n.kernel = readTrimmed(filepath.Join(cfg.ProcRoot, "sys", "kernel", "osrelease"))
	if s, err := n.reader.Collect(); s.HasUptime {
		n.boot = pcommon.NewTimestampFromTime(start.Add(-time.Duration(s.UptimeSeconds * float64(time.Second))))
	} else if err != nil {
		logger.Warn("node uptime unreadable; node counters start at the receiver's start", zap.Error(err))
	}
	return n
}

// attach adds the node descriptions of the sources that started.
func (n *nodeSource) attach(sources []source) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range sources {
		if d, ok := s.(nodeDescriber); ok {
			n.describers = append(n.describers, d)
		}
		if d, ok := s.(containerNodeDescriber); ok {
			n.containerDescribers = append(n.containerDescribers, d)
		}
	}
}

func (n *nodeSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	mb.RecordNodeInfoDataPoint(now, 1, n.hostname, n.kernel)
	mb.RecordNodeAgentInfoDataPoint(now, 1, n.version)
	s, err := n.reader.Collect()
	if err != nil {
		n.unreadable += int64(countJoined(err))
		n.warnPartial(err)
	}
	mb.RecordCodexraySourceErrorsDataPoint(now, n.unreadable, nodeName, "unreadable")
	if s.HasUptime {
		mb.RecordNodeUptimeDataPoint(now, s.UptimeSeconds)
	}
	boot := n.boot
	if s.HasCPU {
		s.CPU.Each(func(mode string, seconds float64) {
			mb.RecordNodeResourcesCPUUsageDataPointWithStart(boot, now, seconds, mode)
		})
		mb.RecordNodeResourcesCPULogicalCoresDataPoint(now, int64(s.LogicalCores))
	}
	if s.HasMemory {
		mb.RecordNodeResourcesMemoryTotalDataPoint(now, int64(s.Memory.TotalBytes))
		mb.RecordNodeResourcesMemoryFreeDataPoint(now, int64(s.Memory.FreeBytes))
		mb.RecordNodeResourcesMemoryAvailableDataPoint(now, int64(s.Memory.AvailableBytes))
		mb.RecordNodeResourcesMemoryCachedDataPoint(now, int64(s.Memory.CachedBytes))
	}
	for _, d := range s.Disks {
		mb.RecordNodeResourcesDiskReadsDataPointWithStart(boot, now, int64(d.Reads), d.Name)
		mb.RecordNodeResourcesDiskWritesDataPointWithStart(boot, now, int64(d.Writes), d.Name)
		mb.RecordNodeResourcesDiskReadBytesDataPointWithStart(boot, now, int64(d.ReadBytes), d.Name)
		mb.RecordNodeResourcesDiskWrittenBytesDataPointWithStart(boot, now, int64(d.WrittenBytes), d.Name)
		mb.RecordNodeResourcesDiskReadTimeDataPointWithStart(boot, now, d.ReadTimeSeconds, d.Name)
		mb.RecordNodeResourcesDiskWriteTimeDataPointWithStart(boot, now, d.WriteTimeSeconds, d.Name)
		mb.RecordNodeResourcesDiskIOTimeDataPointWithStart(boot, now, d.IOTimeSeconds, d.Name)
	}
	for _, ifc := range s.Interfaces {
		mb.RecordNodeNetReceivedBytesDataPointWithStart(boot, now, int64(ifc.RxBytes), ifc.Name)
		mb.RecordNodeNetTransmittedBytesDataPointWithStart(boot, now, int64(ifc.TxBytes), ifc.Name)
		mb.RecordNodeNetReceivedPacketsDataPointWithStart(boot, now, int64(ifc.RxPackets), ifc.Name)
		mb.RecordNodeNetTransmittedPacketsDataPointWithStart(boot, now, int64(ifc.TxPackets), ifc.Name)
		up := int64(0)
		if ifc.Up {
			up = 1
		}
		mb.RecordNodeNetInterfaceUpDataPoint(now, up, ifc.Name)
		for _, ip := range ifc.Addresses {
			mb.RecordNodeNetInterfaceIPDataPoint(now, 1, ifc.Name, ip)
		}
	}
}

// countJoined is how many errors err joins (1 when it is a single error).
func countJoined(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap())
	}
	return 1
}

func (n *nodeSource) warnPartial(err error) {
	if time.Since(n.lastWarned) < time.Minute {
		return
	}
	n.lastWarned = time.Now()
	n.logger.Warn("some of the node's files could not be read; the rest is reported (logged once a minute)",
		zap.String("source", nodeName), zap.Error(err))
}

// k8sNodeNameEnv names the variable that carries the Kubernetes node name.
const k8sNodeNameEnv = "K8S_NODE_NAME"

// describeNode describes the node's own resource: what describeContainerNode adds to every
// resource, the OS, and what the sources add (the cloud's attributes, host.id as the instance
// id).
func (n *nodeSource) describeNode(rb *metadata.ResourceBuilder) {
	n.describeOnly(rb)
	rb.SetOSType("linux")
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, d := range n.describers {
		d.describeNode(rb)
	}
}

// describeContainerNode adds to a container's resource which node it runs on: container ids
// (a systemd unit's above all) repeat across nodes, and a backend receiving OTLP from a fleet
// would otherwise merge them; coroot's labels name the node by machine_id and system_uuid.
func (n *nodeSource) describeContainerNode(rb *metadata.ResourceBuilder) {
	n.describeOnly(rb)
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, d := range n.containerDescribers {
		d.describeContainerNode(rb)
	}
}

func (n *nodeSource) describeOnly(rb *metadata.ResourceBuilder) {
	rb.SetHostName(n.hostname)
	rb.SetK8sNodeName(n.k8sNode)
	// The semantic conventions' host.id outside a cloud is the machine id; the cloud source
	// replaces it with the instance id once its metadata service answered.
	rb.SetHostID(n.identity.MachineID)
	rb.SetCorootMachineID(n.identity.MachineID)
	rb.SetCorootSystemUUID(n.identity.SystemUUID)
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
