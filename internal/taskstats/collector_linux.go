//go:build linux

package taskstats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// Collector is the taskstats source: it follows every process of every container, receives
// exit notifications and keeps monotonic per-container delay totals.
//
//	c, err := taskstats.NewCollector(cfg, registry, logger) // error: taskstats unusable here
//	c.Start()                                               // exit listener goroutine
//	c.Collect(time.Now())                                    // each collection tick
//	d, ok := c.ContainerDelays(container.ID)                 // seconds
//	c.Close()
type Collector struct {
	cfg    Config
	logger *zap.Logger
	acc    *Accumulator

	mu     sync.Mutex // serialises Collect (the Client is not concurrent)
	client *Client
	reader *clientReader

	listener *ExitListener
	wg       sync.WaitGroup

	statusMu sync.Mutex
	status   Status
}

// Status is what the receiver can report about the source.
type Status struct {
	// Namespace of the query socket; Note explains a fallback to the agent's own namespace.
	Namespace Namespace
	// TaskDelayacct is kernel.task_delayacct now (read again by Status): when false, disk (and swap-in,
	// reclaim, thrashing) delays are always 0. TaskDelayacctNote says why, or what the agent did.
	TaskDelayacct     bool
	TaskDelayacctNote string
	// ExitListenerErr is why per-exit notifications are not received (nil when they are):
	// delays of processes that exit between two collections are then lost.
	ExitListenerErr error
	// ExitOverruns counts socket overruns (ENOBUFS) of the exit listener: lost exit records.
	ExitOverruns uint64
	// Accumulator figures.
	Counters Counters
	// Last collection.
	LastCollect CollectResult
}

// ContainerDelays are a container's cumulative delays in seconds.
type ContainerDelays struct {
	CPU  float64 // waiting for a CPU while runnable
	Disk float64 // waiting for synchronous block IO (blkio)
	// Extended delays, exported when their metrics are enabled (off by default).
	Swapin          float64 // waiting for swap-in page faults
	MemoryReclaim   float64 // waiting in direct memory reclaim (freepages)
	MemoryThrashing float64 // waiting for thrashing (refaulting) page cache pages
	// Since is when these totals began accumulating: the start timestamp of their cumulative
	// series. Totals of a container without live processes are forgotten after 5 minutes and
	// start again from zero with a later Since if the container comes back.
	Since time.Time
}

const nsPerSecond = 1e9

// NewCollector opens the TASKSTATS query socket and prepares kernel.task_delayacct. It returns
// an error wrapping ErrUnavailable when taskstats cannot be used on this node (no kernel
// support, no CAP_NET_ADMIN, not the host's namespaces); the rest of the agent carries on.
func NewCollector(cfg Config, resolver Resolver, logger *zap.Logger) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg.ProcRoot = procfs.Root(cfg.ProcRoot)
	client, err := Dial(cfg.ProcRoot)
	if err != nil {
		return nil, err
	}
	// One probe query: permission problems show here, not at the first tick.
	if _, err := client.TGID(uint32(os.Getpid())); err != nil && !errors.Is(err, ErrGone) {
		_ = client.Close()
		return nil, fmt.Errorf("probing TASKSTATS with a query for the agent itself: %w", err)
	}
	c := &Collector{
		cfg:    cfg,
		logger: logger,
		acc:    NewAccumulator(resolver, 0),
		client: client,
	}
	c.reader = &clientReader{procReader: procReader{root: cfg.ProcRoot}, client: client}
	c.status.Namespace = client.Namespace()
	if n := client.Namespace().Note; n != "" {
		logger.Info("taskstats: host network namespace not entered", zap.String("reason", n))
	}
	c.status.TaskDelayacct, c.status.TaskDelayacctNote = prepareDelayacct(cfg)
	if c.status.TaskDelayacct {
		logger.Info("taskstats: delay accounting", zap.String("kernel.task_delayacct", "1"), zap.String("note", c.status.TaskDelayacctNote))
	} else {
		logger.Warn("taskstats: kernel.task_delayacct is 0: disk delay will always be 0", zap.String("note", c.status.TaskDelayacctNote))
	}
	return c, nil
}

// delayacctPath is kernel.task_delayacct under a proc root.
func delayacctPath(procRoot string) string {
	return filepath.Join(procRoot, "sys", "kernel", "task_delayacct")
}

// prepareDelayacct reads kernel.task_delayacct and switches it on when configured to.
func prepareDelayacct(cfg Config) (on bool, note string) {
	path := delayacctPath(cfg.ProcRoot)
	on, err := readDelayacct(path)
	if err != nil {
		return false, fmt.Sprintf("cannot read %s: %v", path, err)
	}
	if on {
		return true, "already enabled"
	}
	if !cfg.EnableTaskDelayacct {
		return false, "kernel.task_delayacct=0 and enable_task_delayacct is false: disk, swap-in, reclaim and thrashing delays are not accounted"
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return false, fmt.Sprintf("enable_task_delayacct: writing %s failed: %v", path, err)
	}
	return true, "enabled by the agent (enable_task_delayacct); delays start counting now"
}

func readDelayacct(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) != "0", nil
}

// Start registers the exit listener and receives exit notifications in a goroutine. A
// listener that cannot start is reported in Status and logged; collections still work. Start
// is not safe for concurrent use with itself or Close; a second call does nothing.
func (c *Collector) Start() {
	if c.listener != nil {
		return
	}
	l, err := ListenExits(c.cfg.ProcRoot)
	if err != nil {
		c.statusMu.Lock()
		c.status.ExitListenerErr = err
		c.statusMu.Unlock()
		c.logger.Warn("taskstats: exit listener unavailable; delays of processes exiting between collections are lost", zap.Error(err))
		return
	}
	c.listener = l
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := l.Run(func(r *Reply) { c.acc.Exit(r, time.Now()) })
		if err != nil {
			c.statusMu.Lock()
			c.status.ExitListenerErr = err
			c.statusMu.Unlock()
			c.logger.Error("taskstats: exit listener stopped", zap.Error(err))
		}
	}()
}

// Collect reads every containerised process and refreshes the per-container totals.
func (c *Collector) Collect(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		return errors.New("taskstats: collector closed")
	}
	res, err := c.acc.collect(c.reader, now)
	c.statusMu.Lock()
	c.status.LastCollect = res
	c.statusMu.Unlock()
	if err != nil {
		return fmt.Errorf("taskstats: listing processes: %w", err)
	}
	if res.FirstErr != nil {
		return fmt.Errorf("taskstats: %d of %d reads failed, first: %w", res.Errors, res.Followed+res.Errors, res.FirstErr)
	}
	return nil
}

// ContainerDelays returns the container's totals in seconds as of the last collection.
func (c *Collector) ContainerDelays(id containers.ID) (ContainerDelays, bool) {
	d, since, ok := c.acc.ContainerDelaysSince(id)
	if !ok {
		return ContainerDelays{}, false
	}
	out := toSeconds(d)
	out.Since = since
	return out, true
}

func toSeconds(d Delays) ContainerDelays {
	return ContainerDelays{
		CPU:             float64(d.CPU) / nsPerSecond,
		Disk:            float64(d.Blkio) / nsPerSecond,
		Swapin:          float64(d.Swapin) / nsPerSecond,
		MemoryReclaim:   float64(d.Freepages) / nsPerSecond,
		MemoryThrashing: float64(d.Thrashing) / nsPerSecond,
	}
}

// Status returns the source's current status.
func (c *Collector) Status() Status {
	c.statusMu.Lock()
	s := c.status
	c.statusMu.Unlock()
	if c.listener != nil {
		s.ExitOverruns = c.listener.Overruns()
	}
	s.Counters = c.acc.Counters()
	// An operator may switch kernel.task_delayacct after the agent started: read it again (a
	// small procfs file, once per collection).
	if on, err := readDelayacct(delayacctPath(c.cfg.ProcRoot)); err == nil && on != s.TaskDelayacct {
		s.TaskDelayacct = on
		s.TaskDelayacctNote = "kernel.task_delayacct changed since the agent started"
		if !on {
			s.TaskDelayacctNote = "kernel.task_delayacct was switched off since the agent started: disk, swap-in, reclaim and thrashing delays are not accounted"
		}
	}
	return s
}

// Close stops the exit listener and closes the sockets. Safe to call more than once.
func (c *Collector) Close() error {
	var err error
	if c.listener != nil {
		err = c.listener.Close()
		c.wg.Wait()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		err = errors.Join(err, c.client.Close())
		c.client = nil
	}
	return err
}

// clientReader is the processReader over the proc root and a TASKSTATS Client.
type clientReader struct {
	procReader
	client *Client
}

func (r *clientReader) Read(tgid uint32) (Delays, uint64, error) {
	s, err := r.client.TGID(tgid)
	if err != nil {
		return Delays{}, 0, err
	}
	return s.Delays(), s.ETime * 1000, nil
}

// ContainerIDs returns the containers with totals (Accumulator.ContainerIDs).
func (c *Collector) ContainerIDs() []containers.ID { return c.acc.ContainerIDs() }

// Forget drops the totals of containers gone for good (Accumulator.Forget).
func (c *Collector) Forget(ids []containers.ID) { c.acc.Forget(ids) }

// Save returns the per-container totals for a restart (Accumulator.Save).
func (c *Collector) Save() []SavedContainer { return c.acc.Save() }

// Restore continues the totals of a previous run (Accumulator.Restore); call it before Start.
func (c *Collector) Restore(saved []SavedContainer) { c.acc.Restore(saved) }
