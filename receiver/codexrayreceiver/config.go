package codexrayreceiver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/cloudmeta"
	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logs"
	"github.com/codexray/codexray-node-agent/internal/taskstats"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// Config is the configuration of the codexray receiver. Every field has a documented default
// (see README.md in this directory), so `codexray: {}` is a complete configuration.
type Config struct {
	// CollectionInterval is how often metrics are collected and pushed. Default 15s.
	CollectionInterval time.Duration `mapstructure:"collection_interval"`

	// Node says where the host's files are, for the node's metrics and identity.
	Node NodeConfig `mapstructure:"node"`

	// Storage names a storage extension (e.g. file_storage) that keeps the receiver's state
	// across restarts: log read positions and every cumulative counter (state.go). Empty: no
	// state is kept (logs.storage, its older name, is used when this is empty).
	Storage string `mapstructure:"storage"`

	// One section per source; each has `enabled`.
	EBPF       EBPFConfig        `mapstructure:"ebpf"`
	Taskstats  taskstats.Config  `mapstructure:"taskstats"`
	Cgroups    cgroups.Config    `mapstructure:"cgroups"`
	Containers containers.Config `mapstructure:"containers"`
	Processes  ProcessesConfig   `mapstructure:"processes"`
	Logs       logs.Config       `mapstructure:"logs"`
	Cloud      cloudmeta.Config  `mapstructure:"cloud"`

	// Metrics and ResourceAttributes switch individual metrics and resource attributes.
	metadata.MetricsBuilderConfig `mapstructure:",squash"`
	// Events switches individual log events (codexray.log.pattern).
	Events metadata.EventsConfig `mapstructure:"events"`
}

// NodeConfig locates the host's own files. In a container the host's /proc is usually mounted
// elsewhere (e.g. /host/proc); hostPID pods can keep /proc.
type NodeConfig struct {
	// ProcRoot is the host's procfs. Default /proc. It is the one proc_root users set: every
	// section's proc_root (ebpf, taskstats, cgroups, processes, logs.files) left empty takes this value,
	// so in a pod `node: {proc_root: /host/proc}` points every source at the host's procfs.
	ProcRoot string `mapstructure:"proc_root"`
	// SysRoot is the host's sysfs, for interface states and the DMI product_uuid. Default /sys
	// (in a hostNetwork pod its own /sys shows the host's interfaces).
	SysRoot string `mapstructure:"sys_root"`
	// MachineIDPaths are tried in order for the machine id (host.id outside a cloud, coroot's
	// machine_id) after the host root's /etc/machine-id and /var/lib/dbus/machine-id (read
	// through <proc_root>/1/root). Default /etc/machine-id, /var/lib/dbus/machine-id.
	MachineIDPaths []string `mapstructure:"machine_id_paths"`
}

// minCollectionInterval keeps a typo such as `1ms` from turning the agent into a CPU burner.
const minCollectionInterval = time.Second

var (
	_ confmap.Validator   = (*Config)(nil)
	_ confmap.Unmarshaler = (*Config)(nil)
)

// Unmarshal decodes conf into c, rejecting removed options with the reason (a plain decode
// would only call them invalid keys).
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	if conf.IsSet("containers::enabled") {
		return errors.New("containers.enabled was removed: the container registry always runs, because every " +
			"source attributes what it observes through it; to ask no container runtime, set " +
			"containers.docker_socket: \"\" and containers.cri_sockets: [], and to drop the per-container " +
			"resource metrics, set cgroups.enabled: false")
	}
	if errs := checkOptionTypes(conf.ToStringMap(), reflect.TypeFor[Config](), ""); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return conf.Unmarshal(c)
}

// Validate checks the receiver-level settings; the collector also calls Validate on every
// source section.
func (c *Config) Validate() error {
	var errs []error
	if c.CollectionInterval < minCollectionInterval {
		errs = append(errs, fmt.Errorf("collection_interval must be at least %s, got %s", minCollectionInterval, c.CollectionInterval))
	}
	if c.Node.ProcRoot == "" {
		errs = append(errs, errors.New("node.proc_root must not be empty"))
	}
	if c.Node.SysRoot == "" {
		errs = append(errs, errors.New("node.sys_root must not be empty"))
	}
	errs = append(errs, c.checkPaths()...)
	if c.Storage != "" && c.Logs.Storage != "" && c.Storage != c.Logs.Storage {
		errs = append(errs, fmt.Errorf("storage %q and logs.storage %q name different extensions: set storage only (logs.storage is its older name)", c.Storage, c.Logs.Storage))
	}
	for _, o := range [...]struct{ name, value string }{{"storage", c.Storage}, {"logs.storage", c.Logs.Storage}} {
		if o.value == "" {
			continue
		}
		var id component.ID
		if err := id.UnmarshalText([]byte(o.value)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a component id: %w", o.name, o.value, err))
		}
	}
	return errors.Join(errs...)
}

// checkPaths reports directories the receiver reads that do not exist: the procfs and cgroup
// roots every source attributes through, and the directories an enabled source was pointed at.
// Directories of a runtime the node may not run (logs.docker.containers_dir, logs.cri.pods_dir)
// may be absent. Whether a directory that exists holds what it should (a procfs with
// processes) shows at start, as the sources' status.
func (c *Config) checkPaths() []error {
	logsOn := c.Logs.Enabled
	var errs []error
	for _, d := range [...]struct {
		option, path string
		read         bool
	}{
		{"node.proc_root", c.Node.ProcRoot, true},
		{"node.sys_root", c.Node.SysRoot, true},
		{"cgroups.root", c.Cgroups.Root, true}, // the registry always runs
		{"cgroups.proc_root", c.Cgroups.ProcRoot, true},
		{"ebpf.proc_root", c.EBPF.ProcRoot, c.EBPF.Enabled},
		{"taskstats.proc_root", c.Taskstats.ProcRoot, c.Taskstats.Enabled},
		{"processes.proc_root", c.Processes.ProcRoot, c.Processes.Enabled},
		{"logs.files.proc_root", c.Logs.Files.ProcRoot, logsOn && c.Logs.Files.Enabled && c.Logs.Files.AttributeWriters},
		{"logs.journald.directory", c.Logs.Journald.Directory, logsOn && c.Logs.Journald.Enabled},
	} {
		if !d.read || d.path == "" {
			continue
		}
		switch fi, err := os.Stat(d.path); {
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Errorf("%s: %q does not exist", d.option, d.path))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", d.option, err))
		case !fi.IsDir():
			errs = append(errs, fmt.Errorf("%s: %q is not a directory", d.option, d.path))
		}
	}
	return errs
}

// procfsWithProcesses checks, for a source that reads processes (the registry, ebpf,
// taskstats, processes), that its procfs lists processes. A directory that exists but lists none (an
// empty mount point where the host's /proc was meant to be) passes validation; the source
// then fails at start with this reason instead of running on nothing.
func (c *Config) procfsWithProcesses(source string) error {
	var own string
	switch source {
	case registryName:
		own = c.Cgroups.ProcRoot
		source = "cgroups"
	case "ebpf":
		own = c.EBPF.ProcRoot
	case "taskstats":
		own = c.Taskstats.ProcRoot
	case "processes":
		own = c.Processes.ProcRoot
	default:
		return nil
	}
	option, root := source+".proc_root", own
	if own == "" {
		option, root = "node.proc_root", c.Node.ProcRoot
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("%s %q: %w", option, root, err)
	}
	for _, e := range entries {
		if _, err := strconv.ParseUint(e.Name(), 10, 32); err == nil && e.IsDir() {
			return nil
		}
	}
	return fmt.Errorf("%s %q lists no processes: it is no procfs (in a pod, mount the host's /proc there)", option, root)
}

// storageExtension is the storage extension the state is kept in ("" none): storage, or
// logs.storage, its older name.
func (c *Config) storageExtension() string {
	if c.Storage != "" {
		return c.Storage
	}
	return c.Logs.Storage
}

// withProcRoots returns a copy of c in which every section's proc_root left empty is
// node.proc_root. Sources are built from it, so they all read the same procfs unless a section
// names another one explicitly. c itself is not changed.
func (c *Config) withProcRoots() *Config {
	r := *c
	for _, root := range [...]*string{&r.EBPF.ProcRoot, &r.Taskstats.ProcRoot, &r.Cgroups.ProcRoot, &r.Processes.ProcRoot, &r.Logs.Files.ProcRoot} {
		if *root == "" {
			*root = c.Node.ProcRoot
		}
	}
	return &r
}

func (c *Config) logsBuilderConfig() metadata.LogsBuilderConfig {
	return metadata.LogsBuilderConfig{Events: c.Events, ResourceAttributes: c.ResourceAttributes}
}
