package codexrayreceiver

import (
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/receiver"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/cloudmeta"
	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logs"
	"github.com/codexray/codexray-node-agent/internal/taskstats"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// NewFactory returns the factory of the codexray receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetricsReceiver, metadata.MetricsStability),
		receiver.WithLogs(createLogsReceiver, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		CollectionInterval: 15 * time.Second,
		Node: NodeConfig{
			ProcRoot:       "/proc",
			SysRoot:        "/sys",
			MachineIDPaths: []string{"/etc/machine-id", "/var/lib/dbus/machine-id"},
		},
		EBPF:                 defaultEBPFConfig(),
		Taskstats:            taskstats.DefaultConfig(),
		Cgroups:              cgroups.DefaultConfig(),
		Containers:           containers.DefaultConfig(),
		Processes:            ProcessesConfig{Enabled: true},
		Logs:                 logs.DefaultConfig(),
		Cloud:                cloudmeta.DefaultConfig(),
		MetricsBuilderConfig: metadata.DefaultMetricsBuilderConfig(),
		Events:               metadata.DefaultEventsConfig(),
	}
}
