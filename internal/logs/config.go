package logs

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/codexray/codexray-node-agent/internal/logpatterns"
)

// Config is the `logs` section of the codexray receiver configuration.
type Config struct {
	// Enabled turns every log source on or off. Default true.
	Enabled bool `mapstructure:"enabled"`

	// Docker reads dockerd json-file logs (<root>/<id>/<id>-json.log).
	Docker DockerConfig `mapstructure:"docker"`
	// CRI reads containerd/CRI-O pod logs (<root>/<ns>_<pod>_<uid>/<container>/<n>.log).
	CRI CRIConfig `mapstructure:"cri"`
	// Journald reads the systemd journal (needs an agent built with cgo).
	Journald JournaldConfig `mapstructure:"journald"`
	// Files reads plain log files written by host services.
	Files FilesConfig `mapstructure:"files"`

	// Include, when not empty, keeps only containers or units whose name or id matches one of
	// these globs ("*" spans '/', "{a,b}" alternatives), e.g. "nginx*", "*.service",
	// "/k8s/default/*".
	Include []string `mapstructure:"include"`
	// Exclude drops containers or units whose name or id matches one of these globs; it wins
	// over Include.
	Exclude []string `mapstructure:"exclude"`

	// OtherCgroups is the registry's containers.include_other_cgroups, set by the receiver:
	// whether the journal entries of a cgroup that is neither a runtime's container nor a
	// systemd service (a transient scope, a VM, a hand-made cgroup) belong to that cgroup as
	// their container. When false they are the node's, like the registry, which then does not
	// report such cgroups either.
	OtherCgroups bool `mapstructure:"-"`

	// MaxLineLength caps one message in bytes (after joining docker 16 KiB chunks and CRI P
	// lines); the rest is dropped and the message is counted as truncated. Default 65536.
	MaxLineLength int `mapstructure:"max_line_length"`
	// MaxOpenFiles caps the log files followed at once across all file sources; files beyond it
	// are skipped and counted. Default 1024.
	MaxOpenFiles int `mapstructure:"max_open_files"`
	// PollInterval is how often followed files are checked for new data, rotation and
	// truncation. Default 250ms.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// DiscoveryInterval is how often log directories and globs are rescanned for new files.
	// Default 5s.
	DiscoveryInterval time.Duration `mapstructure:"discovery_interval"`
	// RotationGrace is how long a file renamed away by rotation is still read, for writers that
	// reopen their log late. Default 2s.
	RotationGrace time.Duration `mapstructure:"rotation_grace"`
	// CheckpointInterval is no longer used: the receiver saves read positions with its other
	// state at every collection (Reader.Checkpoint). Accepted so older configurations load.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`

	// Patterns configures the pattern extractor of each (container, source) stream:
	// max_patterns (default 1000: the per-container pattern cap), max_message_length (8192),
	// sample_length (1024: the longest sample a pattern record carries).
	Patterns logpatterns.Config `mapstructure:"patterns"`
	// Multiline joins multi-line messages (Java, Python, Go, .NET stack traces) of file-based
	// sources before pattern extraction: enabled (default true), max_lines (500), max_bytes
	// (65536), timeout (1s: how long a message waits for a continuation line).
	Multiline MultilineConfig `mapstructure:"multiline"`
	// PatternsFlushInterval is how often one codexray.log.pattern record per active pattern is
	// emitted. Default 1m.
	PatternsFlushInterval time.Duration `mapstructure:"patterns_flush_interval"`
	// StreamExpiry forgets the counts and patterns of a (container, source) stream that has
	// logged nothing for this long. A stream that logs again counts from zero with a new start
	// timestamp (container_log_messages_total); what the limits dropped stays counted. Default 1h.
	StreamExpiry time.Duration `mapstructure:"stream_expiry"`

	// Storage is the older name of the receiver's top-level storage option: a storage
	// extension that keeps read positions (and the receiver's counters) across restarts.
	// Empty: no checkpoints; files that exist at start are read from their end, files that
	// appear later from their first line.
	Storage string `mapstructure:"storage"`
}

// MultilineConfig is the `logs.multiline` section.
type MultilineConfig struct {
	Enabled                  bool `mapstructure:"enabled"`
	logpatterns.JoinerConfig `mapstructure:",squash"`
}

// DockerConfig is the `logs.docker` section.
type DockerConfig struct {
	// Enabled turns the docker json-file source on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// ContainersDir is dockerd's containers directory. Default /var/lib/docker/containers.
	ContainersDir string `mapstructure:"containers_dir"`
}

// CRIConfig is the `logs.cri` section.
type CRIConfig struct {
	// Enabled turns the CRI source on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// PodsDir is the kubelet's pod log directory. Default /var/log/pods.
	PodsDir string `mapstructure:"pods_dir"`
}

// JournaldConfig is the `logs.journald` section.
type JournaldConfig struct {
	// Enabled turns the journald source on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Directory reads journal files from this directory instead of the system journal
	// (e.g. a host's /var/log/journal mounted into the agent's pod). Default: the local journal.
	Directory string `mapstructure:"directory"`
}

// FilesConfig is the `logs.files` section.
type FilesConfig struct {
	// Enabled turns the plain-file source on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Include lists globs of files to follow (filepath.Match syntax per path element). Default /var/log/*.log, /var/log/*/*.log,
	// /var/log/syslog, /var/log/messages.
	Include []string `mapstructure:"include"`
	// Exclude lists globs of files never followed, matched against the full path and against
	// the base name. Default: /var/log/pods/*, /var/log/containers/*, /var/log/journal/*,
	// rotated and compressed files (*.1 … *.99, *.gz, *.xz, *.bz2, *.zst, logrotate dateext
	// names *-YYYYMMDD and *-YYYYMMDD.log).
	Exclude []string `mapstructure:"exclude"`
	// AttributeWriters finds the process that holds each file open for writing (a /proc/*/fd
	// scan) and attributes the file to that process's container. Default true.
	AttributeWriters bool `mapstructure:"attribute_writers"`
	// ProcRoot is the procfs scanned for writers: the host's, e.g. /host/proc, when the agent
	// runs in a container without hostPID's /proc. Default "": the receiver's node.proc_root
	// (and "/proc" where this package is used on its own); set it only to read another procfs
	// than the other sources.
	ProcRoot string `mapstructure:"proc_root"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:            true,
		Docker:             DockerConfig{Enabled: true, ContainersDir: "/var/lib/docker/containers"},
		CRI:                CRIConfig{Enabled: true, PodsDir: "/var/log/pods"},
		Journald:           JournaldConfig{Enabled: true},
		Files:              FilesConfig{Enabled: true, Include: DefaultFileIncludes(), Exclude: DefaultFileExcludes(), AttributeWriters: true},
		MaxLineLength:      64 << 10,
		MaxOpenFiles:       1024,
		PollInterval:       250 * time.Millisecond,
		DiscoveryInterval:  5 * time.Second,
		RotationGrace:      2 * time.Second,
		CheckpointInterval: 2 * time.Second,

		Patterns:              logpatterns.DefaultConfig(),
		Multiline:             MultilineConfig{Enabled: true, JoinerConfig: logpatterns.DefaultJoinerConfig()},
		PatternsFlushInterval: time.Minute,
		StreamExpiry:          time.Hour,
	}
}

// DefaultFileIncludes are the plain log files of host services followed by default.
func DefaultFileIncludes() []string {
	return []string{"/var/log/*.log", "/var/log/*/*.log", "/var/log/syslog", "/var/log/messages"}
}

// DefaultFileExcludes keep container logs (read by their own sources), the binary journal and
// rotated or compressed generations out of the plain-file source.
func DefaultFileExcludes() []string {
	return []string{
		"/var/log/pods/*", "/var/log/pods/*/*", "/var/log/pods/*/*/*", "/var/log/containers/*",
		"/var/log/journal/*", "/var/log/journal/*/*",
		"*.[0-9]", "*.[0-9][0-9]", "*.gz", "*.xz", "*.bz2", "*.zst",
		// logrotate dateext: name-YYYYMMDD, and name-YYYYMMDD.log with `extension .log`.
		"*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]", "*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9].log",
	}
}

// Validate reports every invalid setting, each by its full option name.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.MaxLineLength < 256 {
		errs = append(errs, fmt.Errorf("logs.max_line_length must be at least 256 bytes, got %d", c.MaxLineLength))
	}
	if c.MaxOpenFiles < 1 {
		errs = append(errs, fmt.Errorf("logs.max_open_files must be positive, got %d", c.MaxOpenFiles))
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"poll_interval", c.PollInterval},
		{"discovery_interval", c.DiscoveryInterval},
		{"checkpoint_interval", c.CheckpointInterval},
		{"patterns_flush_interval", c.PatternsFlushInterval},
		{"stream_expiry", c.StreamExpiry},
	} {
		if d.value <= 0 {
			errs = append(errs, fmt.Errorf("logs.%s must be positive, got %s", d.name, d.value))
		}
	}
	if c.RotationGrace < 0 {
		errs = append(errs, fmt.Errorf("logs.rotation_grace must not be negative, got %s", c.RotationGrace))
	}
	// logs.patterns validates itself: the collector calls Validate on every section.
	if m := c.Multiline; m.Enabled && (m.MaxLines < 1 || m.MaxBytes < 1 || m.Timeout <= 0) {
		errs = append(errs, fmt.Errorf("logs.multiline: max_lines, max_bytes and timeout must be positive, got %d, %d, %s", m.MaxLines, m.MaxBytes, m.Timeout))
	}
	if c.Docker.Enabled && c.Docker.ContainersDir == "" {
		errs = append(errs, errors.New("logs.docker.containers_dir must be set when logs.docker is enabled"))
	}
	if c.CRI.Enabled && c.CRI.PodsDir == "" {
		errs = append(errs, errors.New("logs.cri.pods_dir must be set when logs.cri is enabled"))
	}
	if _, err := newNameFilter(c.Include, c.Exclude); err != nil {
		errs = append(errs, err)
	}
	for _, o := range [...]struct {
		name  string
		globs []string
	}{{"logs.files.include", c.Files.Include}, {"logs.files.exclude", c.Files.Exclude}} {
		for i, p := range o.globs {
			if _, err := filepath.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: bad pattern %q: %w", o.name, i, p, err))
			}
		}
	}
	return errors.Join(errs...)
}
