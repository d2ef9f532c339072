package codexrayreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// sourceEnv is what every source is built from.
type sourceEnv struct {
	cfg      *Config
	settings receiver.Settings
	// registry is never nil: the receiver starts it before any source (a registry that could
	// not start is empty and its lookups miss).
	registry *containers.Registry
	// node describes the node, for sources that build resources of their own (log records).
	node *nodeSource
	// emitLogs forwards log records to the logs pipeline; it drops them (returning nil) when
	// the receiver is in no logs pipeline.
	emitLogs func(ctx context.Context, logs plog.Logs) error
	// state holds the previous run's state and takes the checkpoints (state.go); nil without
	// a storage extension.
	state *stateStore
	// lastListed is a container as the registry last listed it (retention.go), for what a
	// source emits between collections; nil in tests that build a source alone.
	lastListed func(id containers.ID) (*containers.Container, bool)
}

// newSources builds the receiver's sources in start order (shutdown runs in reverse). This list
// is the one place that names them: a new source is one more line here. Every source may use
// the registry and the node description from env; both exist before the first source starts.
func newSources(env sourceEnv) []source {
	return []source{
		newEBPFSource(env), // its process events keep the registry current
		newTaskstatsSource(env),
		newProcessesSource(env),
		newLogsSource(env),
		newCloudSource(env),
	}
}

// source is one independent producer of data: the eBPF tracer, taskstats, the log readers, the
// cloud metadata watcher. Each starts on its own; one that cannot start does not stop the
// others. The optional interfaces below add what a source reports; each source asserts the
// ones it implements at compile time (var _ containerRecorder = (*ebpfSource)(nil)).
type source interface {
	// name is the value of the `source` attribute of codexray_source_status.
	name() string
	// enabled reports whether the configuration turns the source on.
	enabled() bool
	// start must return fast; background work runs in goroutines the source owns.
	start(ctx context.Context, host component.Host) error
	// shutdown stops every goroutine of the source; safe when start failed or never ran.
	shutdown(ctx context.Context) error
}

// containerRecorder is implemented by sources with per-container metrics. It is called once per
// container per collection, before the container's resource is emitted.
type containerRecorder interface {
	recordContainer(mb *metadata.MetricsBuilder, now pcommon.Timestamp, c *containers.Container)
}

// nodeRecorder is implemented by sources with node-level metrics (including self-metrics).
type nodeRecorder interface {
	recordNode(mb *metadata.MetricsBuilder, now pcommon.Timestamp)
}

// containerHolder is implemented by sources that keep per-container state from one collection
// to the next (counters): the state of a container ends with its retention (retention.go).
type containerHolder interface {
	// heldContainers lists the containers the source holds state for, each with the log file
	// it read the container's output from, when it knows one.
	heldContainers() []heldContainer
	// forgetContainers drops the state of containers gone for good.
	forgetContainers(ctx context.Context, ids []containers.ID)
}

// heldContainer is a container a source holds state for.
type heldContainer struct {
	id      containers.ID
	logFile string // "" when the source read no log file of it
}

// heldIDs are containers held by a source that reads no log file.
func heldIDs(ids []containers.ID) []heldContainer {
	out := make([]heldContainer, len(ids))
	for i, id := range ids {
		out[i] = heldContainer{id: id}
	}
	return out
}

// containerRetainer is implemented by a source with a metric that outlives the retention of a
// gone container (the eBPF source: an OOM-killed container's kill count). The receiver reports
// it alone, under the identity the registry last listed the container with (retention.go).
type containerRetainer interface {
	// retainedContainers lists the containers whose metric is still reported once gone.
	retainedContainers() []containers.ID
	// recordRetained records that metric, and nothing else, of one of them.
	recordRetained(mb *metadata.MetricsBuilder, now pcommon.Timestamp, id containers.ID)
}

// inputStopper is implemented by sources that must stop taking input before the receiver's
// final collection at shutdown: the log readers save checkpoints there, and the final
// collection then exports exactly the lines those checkpoints cover.
type inputStopper interface {
	stopInput(ctx context.Context)
}

// degradationReporter is implemented by sources that can run without part of their input
// (a kernel without some tracepoints, a log source that cannot open): a non-empty reason turns
// their codexray_source_status into "degraded", and the receiver logs each new reason once.
type degradationReporter interface {
	degradation() string
}

// nodeDescriber is implemented by sources that add attributes to the node resource. It is
// called from the collection and from the logs source's flush: it must be safe for both.
type nodeDescriber interface {
	describeNode(rb *metadata.ResourceBuilder)
}

// containerNodeDescriber is implemented by sources that add what they know of the node to
// every container resource (the cloud source: host.id, coroot's az and region). Like
// nodeDescriber, safe from any goroutine.
type containerNodeDescriber interface {
	describeContainerNode(rb *metadata.ResourceBuilder)
}

// startOf is the start timestamp of a cumulative series whose count began at created.
//
// The rule for every cumulative sum of this receiver: a count that begins again (state
// forgotten after a TTL or retention and created anew, a restarted container, a runtime's
// count reset) comes with a later start, never as a lower value under an old start. So each
// sum is recorded with the creation time of the state behind it: the tracer's
// DestinationStats.Start, ListenStats.Start and OOMKillsStart, taskstats' ContainerDelays.Since,
// logs' MessageCount.Start, the registry's RestartsSince; the counters read from a container
// instance's cgroup start with the instance (instanceCounters in receiver.go). State restored
// after the agent restarted (state.go) keeps its creation time: the count continues under the
// start it had. State created while a collection runs would start after its point, which no
// backend accepts: such a start is capped at now.
func startOf(created time.Time, now pcommon.Timestamp) pcommon.Timestamp {
	if created.IsZero() {
		return now
	}
	if start := pcommon.NewTimestampFromTime(created); start < now {
		return start
	}
	return now
}
