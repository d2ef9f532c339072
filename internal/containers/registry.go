package containers

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// Registry knows every container on the node: which processes and cgroups belong to each, its
// runtime metadata, and when it went away. The zero value is an empty registry whose lookups
// miss; Start makes it scan. It is safe for concurrent use; lookups that hit take a read lock
// only.
type Registry struct {
	mu      sync.RWMutex
	started bool
	cfg     Config
	fs      *cgroups.FS
	logger  *zap.Logger
	rt      *runtimes
	now     func() time.Time

	byID        map[ID]*entry
	byCgroup    map[string]*entry // container cgroup path (cgroups.Identity.Path)
	byCgroupID  map[uint64]*entry // cgroup v2 inode of any cgroup a member process was in
	byRuntimeID map[string]*entry
	pids        map[uint32]*entry // nil entry: the process is in no container
	// notContainer holds the v2 cgroup ids of processes in no container, so eBPF events from
	// the host's own processes do not trigger rescans. Rebuilt by every full scan.
	notContainer map[uint64]struct{}
	// ignored are container-shaped cgroups a runtime said are not containers (pod sandboxes).
	ignored map[string]struct{}

	// scanMu serialises scans, discoveries and metadata publication. It is never held across
	// a runtime call: a lookup that misses may wait for a /proc scan, never for a runtime.
	scanMu     sync.Mutex
	lastRescan time.Time // guarded by scanMu
	scanSeq    atomic.Uint64

	// Runtime metadata is fetched by its own goroutine from this queue (see metadata.go).
	metaWake  chan struct{}
	queueMu   sync.Mutex
	metaQueue []*entry
	metaMu    sync.Mutex // serialises passes over the queue

	// Short negative caches: a cgroup id or pid that missed after a scan is not looked for
	// again for missTTL, so a stream of events from it costs a map lookup each.
	cgroupMisses, pidMisses missCache

	// Containers sources asked about that the registry never saw (DescribeGone), waiting
	// for the metadata goroutine; guarded by queueMu. goneAsked remembers recent questions.
	goneQueue []goneQuestion
	goneAsked missCache

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pidBuf []uint32 // guarded by scanMu

	scans, rescans, processErrors, runtimeLookups, expired, namespaceSkipped, restarts, cgroupIncomplete atomic.Uint64
}

// entry is the registry's handle on one container: the published *Container is replaced
// when metadata changes; the state behind it is shared.
type entry struct {
	cur atomic.Pointer[Container]
	st  *state
	// pending: a Kubernetes-shaped container whose runtime metadata has not been fetched yet.
	// The answer may change its ID (/k8s/<ns>/<pod>/<container>), make it a new instance of a
	// known container, or show it is a pod sandbox, so lookups miss it until then rather than
	// return an ID it would not keep.
	pending atomic.Bool
	queued  atomic.Bool // in the metadata queue
	// described: a runtime answered about this container (with metadata or "no such
	// container"). Until then it is asked again at every full scan, also once it is gone.
	described atomic.Bool
	// guarded by Registry.mu: what to delete from the indexes when the container expires.
	cgroupKeys []string
	cgroupIDs  []uint64
	runtimeIDs []string
}

// ScanStats are the registry's self-metrics.
type ScanStats struct {
	Scans          uint64 // full scans done
	Rescans        uint64 // on-demand scans of new processes done
	ProcessErrors  uint64 // /proc/<pid>/cgroup files that could not be read or parsed (not exits)
	RuntimeLookups uint64 // metadata requests sent to runtimes
	Expired        uint64 // containers forgotten after their retention
	// NamespaceSkipped counts process readings refused because their cgroup path is relative
	// to a cgroup namespace the agent could not place on the host tree (see
	// cgroups.ErrNamespaceRelative): not attributed rather than attributed wrongly.
	NamespaceSkipped uint64
	// NewInstances counts containers seen in a new cgroup under a known ID (a Kubernetes
	// container restarted, a docker container restarted into a re-created cgroup).
	NewInstances uint64
	// CgroupIncomplete counts container instances that a collection (Container.Resources)
	// still found without a cgroup hierarchy they should have (cgroups.FS.Expected) at their
	// second collection: their stats lack what that hierarchy holds meanwhile.
	CgroupIncomplete uint64
}

// Start configures the registry and starts scanning in the background: a first full scan
// right away, then every cfg.ScanInterval, plus metadata refreshes. It fails (and the
// registry stays empty) when the cgroup hierarchy cannot be opened. logger may be nil.
func (r *Registry) Start(cfg Config, cgroupsCfg cgroups.Config, logger *zap.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cgroupsCfg.Validate(); err != nil {
		return err
	}
	fs, err := cgroups.Open(cgroupsCfg)
	if err != nil {
		return err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("containers: registry already started")
	}
	r.started = true
	r.cfg = cfg
	r.fs = fs
	r.logger = logger
	r.rt = newRuntimes(cfg, logger)
	if r.now == nil {
		r.now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx, r.cancel = ctx, cancel
	r.metaWake = make(chan struct{}, 1)
	r.mu.Unlock()
	logger.Info("container registry started", zap.String("cgroup_layout", fs.Layout().String()),
		zap.String("cgroup_root", cgroupsCfg.Root), zap.String("proc_root", cgroupsCfg.ProcRoot))
	logNamespaces(logger, fs.Namespaces())

	r.wg.Add(2)
	go r.loop(ctx)
	go r.metadataLoop(ctx)
	return nil
}

// Close stops the background work and closes the runtime connections. Safe without Start and
// safe to call twice.
func (r *Registry) Close() error {
	r.mu.Lock()
	cancel := r.cancel
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	r.wg.Wait()
	r.rt.close()
	return nil
}

func (r *Registry) loop(ctx context.Context) {
	defer r.wg.Done()
	r.fullScan()
	scanTick := time.NewTicker(r.cfg.ScanInterval)
	defer scanTick.Stop()
	refreshTick := time.NewTicker(r.cfg.MetadataRefreshInterval)
	defer refreshTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-scanTick.C:
			r.fullScan()
		case <-refreshTick.C:
			r.enqueueLive()
			r.wakeMetadata()
		}
	}
}

// Scan re-attributes every process now (what the timer does) and then fetches the runtime
// metadata of what it found, returning when that is published; for tests and for callers
// that know the node changed. It may wait for runtimes (each call bounded by
// runtime_timeout); lookups never do.
func (r *Registry) Scan() {
	if !r.isStarted() {
		return
	}
	r.fullScan()
	r.fetchMetadata(r.ctx)
}

// fullScan re-reads every process and queues the containers no runtime has answered about yet.
func (r *Registry) fullScan() {
	r.scan(true)
	r.enqueueUndescribed()
}

func (r *Registry) isStarted() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.started
}

// ContainerByPID returns the container a process belongs to. An unknown pid is attributed on
// the spot (one /proc read, never a runtime call); a pid that could not be attributed is not
// read again for a second.
func (r *Registry) ContainerByPID(pid uint32) (*Container, bool) {
	r.mu.RLock()
	e, known := r.pids[pid]
	started := r.started
	r.mu.RUnlock()
	if known {
		return e.container()
	}
	if !started || r.pidMisses.has(uint64(pid), r.now()) {
		return nil, false
	}
	e, known = r.attributePID(pid, false)
	if !known {
		r.pidMisses.add(uint64(pid), r.now())
	}
	return e.container()
}

// ContainerByCgroupID returns the container whose cgroup v2 directory has this inode number
// (what bpf_get_current_cgroup_id returns). An unknown id triggers a scan of the processes the
// registry has not seen yet (coalesced with concurrent ones, at most once per
// min_rescan_interval, never waiting for a runtime), so a container that appeared a moment
// ago is attributable; an id still unknown after a scan is not looked for again for a second.
// On a host without the unified hierarchy (cgroup v1 only) cgroup ids name no container and
// every call misses at once: callers attribute by pid instead.
func (r *Registry) ContainerByCgroupID(id uint64) (*Container, bool) {
	r.mu.RLock()
	e, ok := r.byCgroupID[id]
	_, host := r.notContainer[id]
	started := r.started
	v1 := started && r.fs.Layout() == cgroups.LayoutV1
	r.mu.RUnlock()
	if ok {
		return e.container()
	}
	if host || !started || v1 || r.cgroupMisses.has(id, r.now()) {
		return nil, false
	}
	if !r.rescan() {
		return nil, false // rate-limited: not scanned for this id, so not a known miss either
	}
	r.mu.RLock()
	e, ok = r.byCgroupID[id]
	r.mu.RUnlock()
	if !ok {
		r.cgroupMisses.add(id, r.now())
	}
	return e.container()
}

// ContainerByRuntimeID returns the container a runtime (dockerd, containerd) knows by id.
func (r *Registry) ContainerByRuntimeID(id string) (*Container, bool) {
	r.mu.RLock()
	e := r.byRuntimeID[id]
	r.mu.RUnlock()
	return e.container()
}

// ContainerByID returns the container with this ID, live or within its retention.
func (r *Registry) ContainerByID(id ID) (*Container, bool) {
	r.mu.RLock()
	e := r.byID[id]
	r.mu.RUnlock()
	return e.container()
}

// Containers returns a snapshot of the live containers and of recently gone ones that still
// have state to report (GoneAt set, within the retention), sorted by ID.
func (r *Registry) Containers() []*Container {
	r.mu.RLock()
	out := make([]*Container, 0, len(r.byID))
	var cutoff time.Time
	if r.started {
		cutoff = r.now().Add(-r.cfg.Retention)
	}
	for _, e := range r.byID {
		if e.pending.Load() {
			continue
		}
		if gone := e.st.goneTime(); !gone.IsZero() && gone.Before(cutoff) {
			continue
		}
		out = append(out, e.cur.Load())
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Container) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// OnProcessStart attributes a new process (call it on exec, or on fork when the child may be
// moved to a container cgroup). It returns the container the process is in, if any; a
// Kubernetes container seen for the first time is returned by lookups once its runtime has
// answered (or failed to), which this call does not wait for.
func (r *Registry) OnProcessStart(pid uint32) (*Container, bool) {
	if !r.isStarted() {
		return nil, false
	}
	r.pidMisses.forget(uint64(pid))
	e, _ := r.attributePID(pid, true)
	return e.container()
}

// OnProcessExit forgets a process. When it was its container's last process, the container
// is marked gone now (it stays queryable for the retention).
func (r *Registry) OnProcessExit(pid uint32) {
	r.mu.Lock()
	e, ok := r.pids[pid]
	if ok {
		delete(r.pids, pid)
	}
	now := time.Time{}
	if r.started {
		now = r.now()
	}
	r.mu.Unlock()
	e.dropProcess(now)
}

// dropProcess counts one process fewer in e; the last one leaving makes it gone now.
func (e *entry) dropProcess(now time.Time) {
	if e == nil {
		return
	}
	e.st.mu.Lock()
	if e.st.pids > 0 {
		e.st.pids--
	}
	if e.st.pids == 0 && e.st.goneAt.IsZero() {
		e.st.goneAt = now
	}
	e.st.mu.Unlock()
}

// Stats returns the registry's self-metrics.
func (r *Registry) Stats() ScanStats {
	return ScanStats{
		Scans: r.scans.Load(), Rescans: r.rescans.Load(), ProcessErrors: r.processErrors.Load(),
		RuntimeLookups: r.runtimeLookups.Load(), Expired: r.expired.Load(),
		NamespaceSkipped: r.namespaceSkipped.Load(), NewInstances: r.restarts.Load(),
		CgroupIncomplete: r.cgroupIncomplete.Load(),
	}
}

// logNamespaces says once how the agent's cgroup namespace was resolved: silent on a host,
// informative in a pod, a warning when processes will be skipped.
func logNamespaces(logger *zap.Logger, nss []cgroups.Namespace) {
	for _, ns := range nss {
		switch ns.State {
		case cgroups.NamespacePrivate:
			logger.Info("the agent runs in a private cgroup namespace; process cgroup paths are resolved against its root on the host hierarchy",
				zap.String("hierarchy", ns.Hierarchy), zap.String("namespace_root", ns.Root))
		case cgroups.NamespaceUnresolved:
			logger.Warn("the agent runs in a private cgroup namespace whose root is not found under the cgroup root; "+
				"processes whose cgroup paths are relative to it are skipped (not attributed to any container) and counted",
				zap.String("hierarchy", ns.Hierarchy), zap.String("reason", ns.Reason))
		case cgroups.NamespaceUnchecked:
			logger.Debug("cgroup namespace not checked; cgroup paths are taken as absolute",
				zap.String("hierarchy", ns.Hierarchy), zap.String("reason", ns.Reason))
		}
	}
}

// identity is the container's current cgroup identity.
func (e *entry) identity() cgroups.Identity {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	return e.st.cg.identity
}

func (e *entry) container() (*Container, bool) {
	if e == nil || e.pending.Load() {
		return nil, false
	}
	return e.cur.Load(), true
}

func (s *state) goneTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.goneAt
}
