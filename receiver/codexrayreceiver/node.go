package codexrayreceiver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// nodeSource reports what the host says about itself: node_info, node_uptime_seconds and the
// node resource's host.* attributes. It reads only small files below the configured roots.
type nodeSource struct {
	cfg       NodeConfig
	hostname  string
	k8sNode   string
	kernel    string
	machineID string
}

func newNodeSource(cfg NodeConfig, _ time.Time) *nodeSource {
	n := &nodeSource{cfg: cfg}
	n.hostname = readTrimmed(filepath.Join(cfg.ProcRoot, "sys", "kernel", "hostname"))
	if n.hostname == "" {
		n.hostname, _ = os.Hostname()
	}
	// The DaemonSet manifest passes the node name through the downward API; the hostname of a
	// Kubernetes node is not always its node name (e.g. on EKS).
	n.k8sNode = os.Getenv(k8sNodeNameEnv)
	n.kernel = readTrimmed(filepath.Join(cfg.ProcRoot, "sys", "kernel", "osrelease"))
	for _, p := range cfg.MachineIDPaths {
		if id := readTrimmed(p); id != "" {
			n.machineID = id
			break
		}
	}
	return n
}

func (n *nodeSource) recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp) {
	mb.RecordNodeInfoDataPoint(now, 1, n.hostname, n.kernel)
	if up, err := readUptime(filepath.Join(n.cfg.ProcRoot, "uptime")); err == nil {
		mb.RecordNodeUptimeDataPoint(now, up)
	}
}

// k8sNodeNameEnv names the variable that carries the Kubernetes node name.
const k8sNodeNameEnv = "K8S_NODE_NAME"

func (n *nodeSource) describeNode(rb *metadata.ResourceBuilder) {
	n.describeContainerNode(rb)
	rb.SetHostID(n.machineID)
	rb.SetOSType("linux")
}

// describeContainerNode adds to a container's resource which node it runs on: container ids
// (a systemd unit's above all) repeat across nodes, and a backend receiving OTLP from a fleet
// would otherwise merge them.
func (n *nodeSource) describeContainerNode(rb *metadata.ResourceBuilder) {
	rb.SetHostName(n.hostname)
	rb.SetK8sNodeName(n.k8sNode)
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readUptime parses /proc/uptime: "<seconds since boot> <idle seconds>".
func readUptime(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseUptime(string(b))
}

func parseUptime(s string) (float64, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return 0, fmt.Errorf("parsing uptime: empty")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("parsing uptime %q: not a non-negative number", fields[0])
	}
	return v, nil
}
