package ebpf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

var (
	// ErrUnsupported wraps every "this kernel cannot run the tracer" condition: no BTF, no
	// ring buffer (kernel < 5.8), a missing tracepoint.
	ErrUnsupported = errors.New("kernel does not support the eBPF tracer")
	// ErrPermission wraps failures caused by missing privileges (root, or CAP_BPF with
	// CAP_PERFMON).
	ErrPermission = errors.New("not permitted to load eBPF programs (needs root or CAP_BPF+CAP_PERFMON)")
	// ErrClosed is returned by ReadEvent and by every map operation after Close.
	ErrClosed = errors.New("ebpf probe closed")
	// ErrFlushed is returned by ReadEvent once it has returned every event that was in the
	// ring buffer when Flush was called.
	ErrFlushed = errors.New("ebpf ring buffer flushed")
)

// kernelBTF is where CO-RE relocations are resolved from.
var kernelBTF = "/sys/kernel/btf/vmlinux"

// LoadOptions tune the kernel side.
type LoadOptions struct {
	// RingBufferSize in bytes: a power of two and a multiple of the page size. 0 means
	// DefaultRingBufferSize.
	RingBufferSize int
}

// Probe is the loaded and attached set of BPF programs. It holds every link for its lifetime:
// a dropped link is closed by the GC and its program silently detaches.
type Probe struct {
	// Missing lists optional tracepoints this kernel lacks (see attachments).
	Missing []string

	// The maps and programs are guarded against Close: map operations register as users, and
	// Close waits until none is left before releasing file descriptors (cilium's FDs are not
	// safe for that, and a released number may already belong to another file). Once Close has
	// begun, new operations get ErrClosed at once rather than waiting, so a caller that holds a
	// lock a user is waiting for cannot deadlock with Close. ReadEvent is not a user: it only
	// touches the ring buffer reader, whose Close is safe concurrently and unblocks it.
	mu     sync.Mutex
	idle   *sync.Cond // signalled when users drops to 0
	users  int
	closed bool
	objs   codexrayObjects
	links  []link.Link
	reader *ringbuf.Reader
	record ringbuf.Record
}

// use holds the maps open until release is called; ErrClosed once Close has begun.
func (p *Probe) use() (release func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	p.users++
	return p.release, nil
}

func (p *Probe) release() {
	p.mu.Lock()
	p.users--
	if p.users == 0 && p.idle != nil {
		p.idle.Broadcast()
	}
	p.mu.Unlock()
}

// attachment is one program and where it goes.
type attachment struct {
	name string // raw tracepoint
	prog func(*codexrayPrograms) *cebpf.Program
	// optional attachments may be missing on older kernels; the probe then runs without them
	// and lists them in Probe.Missing.
	optional bool
}

var attachments = []attachment{
	{"inet_sock_set_state", func(p *codexrayPrograms) *cebpf.Program { return p.OnInetSockSetState }, false},
	// sock_{send,recv}_length appeared in Linux 6.0; without them byte counters stay 0.
	{"sock_send_length", func(p *codexrayPrograms) *cebpf.Program { return p.OnSockSendLength }, true},
	{"sock_recv_length", func(p *codexrayPrograms) *cebpf.Program { return p.OnSockRecvLength }, true},
	{"tcp_retransmit_skb", func(p *codexrayPrograms) *cebpf.Program { return p.OnTcpRetransmitSkb }, false},
	{"sched_process_fork", func(p *codexrayPrograms) *cebpf.Program { return p.OnSchedProcessFork }, false},
	{"sched_process_exec", func(p *codexrayPrograms) *cebpf.Program { return p.OnSchedProcessExec }, false},
	{"sched_process_exit", func(p *codexrayPrograms) *cebpf.Program { return p.OnSchedProcessExit }, false},
	{"mark_victim", func(p *codexrayPrograms) *cebpf.Program { return p.OnMarkVictim }, false},
}

// Load checks the kernel, loads the programs, attaches them and opens the ring buffer. Every
// failure is wrapped with what was being done and, where it applies, ErrUnsupported or
// ErrPermission, so the caller can report a clear status. It never panics.
func Load(opts LoadOptions) (*Probe, error) {
	size := opts.RingBufferSize
	if size == 0 {
		size = DefaultRingBufferSize
	}
	if err := CheckRingBufferSize(size); err != nil {
		return nil, fmt.Errorf("ring buffer size: %w", err)
	}
	if _, err := os.Stat(kernelBTF); err != nil {
		return nil, fmt.Errorf("%w: kernel BTF not available (%w); kernel built without CONFIG_DEBUG_INFO_BTF", ErrUnsupported, err)
	}
	if err := features.HaveMapType(cebpf.RingBuf); err != nil {
		if errors.Is(err, cebpf.ErrNotSupported) {
			return nil, fmt.Errorf("%w: BPF ring buffer missing (kernel older than 5.8): %w", ErrUnsupported, err)
		}
		return nil, classify("probing for BPF ring buffer", err)
	}
	// No-op on kernels with memcg accounting of BPF memory (5.11+); needed below that.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, classify("raising RLIMIT_MEMLOCK", err)
	}

	spec, err := loadCodexray()
	if err != nil {
		return nil, fmt.Errorf("parsing embedded BPF objects: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(size)
	// Wake the reader early only when a quarter of the buffer is pending; otherwise it polls.
	if err := spec.Variables["wakeup_bytes"].Set(uint64(size / 4)); err != nil {
		return nil, fmt.Errorf("setting wakeup threshold: %w", err)
	}

	p := &Probe{}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		return nil, classify("loading BPF objects", err)
	}
	for _, a := range attachments {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.name, Program: a.prog(&p.objs.codexrayPrograms)})
		if err != nil {
			what := "attaching raw tracepoint " + a.name
			if errors.Is(err, os.ErrNotExist) {
				if a.optional {
					p.Missing = append(p.Missing, a.name)
					continue
				}
				_ = p.Close()
				return nil, fmt.Errorf("%w: %s: %w", ErrUnsupported, what, err)
			}
			_ = p.Close()
			return nil, classify(what, err)
		}
		p.links = append(p.links, l)
	}
	p.reader, err = ringbuf.NewReader(p.objs.Events)
	if err != nil {
		_ = p.Close()
		return nil, classify("opening ring buffer", err)
	}
	p.reader.SetDeadline(time.Now().Add(PollInterval))
	return p, nil
}

func classify(what string, err error) error {
	var verr *cebpf.VerifierError
	switch {
	case errors.As(err, &verr):
		// The verifier answers EACCES; that is not a privilege problem.
		return fmt.Errorf("%w: %s: BPF verifier rejected the program: %w", ErrUnsupported, what, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: %s: %w", ErrPermission, what, err)
	case errors.Is(err, cebpf.ErrNotSupported):
		return fmt.Errorf("%w: %s: %w", ErrUnsupported, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ReadEvent blocks until the next event and decodes it into ev. It reuses one buffer, so it
// must be called from a single goroutine; it does not allocate. After Close it returns
// ErrClosed. A malformed record returns a decode error and the caller may continue.
func (p *Probe) ReadEvent(ev *Event) error {
	return p.readEvent(ev, time.Time{})
}

// Flush makes ReadEvent return every event in the ring buffer now, without waiting for the
// next poll, and then ErrFlushed once: an event the kernel wrote before Flush has been returned
// by then.
func (p *Probe) Flush() error { return p.reader.Flush() }

// PollInterval bounds how long an event can wait in the ring buffer: the kernel side wakes the
// reader only when much data is pending, so the reader also looks this often.
const PollInterval = 100 * time.Millisecond

// readEvent is ReadEvent that gives up with os.ErrDeadlineExceeded at until (if not zero).
func (p *Probe) readEvent(ev *Event, until time.Time) error {
	if err := readRecord(p.reader, &p.record, until); err != nil {
		return err
	}
	return ev.Decode(p.record.RawSample)
}

// readRecord reads the next record of r into rec, looking every PollInterval (the kernel side
// wakes the reader only when much data is pending) until until (if not zero), when it gives up
// with os.ErrDeadlineExceeded. A closed reader gives ErrClosed.
func readRecord(r *ringbuf.Reader, rec *ringbuf.Record, until time.Time) error {
	for {
		err := r.ReadInto(rec)
		if err == nil {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			now := time.Now()
			if !until.IsZero() && !now.Before(until) {
				return err
			}
			next := now.Add(PollInterval)
			if !until.IsZero() && until.Before(next) {
				next = until
			}
			r.SetDeadline(next)
			continue
		}
		if errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		if errors.Is(err, ringbuf.ErrFlushed) {
			return ErrFlushed
		}
		return fmt.Errorf("reading ring buffer: %w", err)
	}
}

// ConnectionCounters is the kernel's live view of one established connection (struct
// connection in codexray.c, read through the type bpf2go generates from it).
type ConnectionCounters struct {
	CgroupID      uint64
	BytesSent     uint64
	BytesReceived uint64
	PID           uint32
	SRTTMicros    uint32
	Flags         uint32
}

// Connections calls fn for every open connection the kernel side tracks, with its current byte
// counters: this is how counters of long-lived connections advance before they close.
func (p *Probe) Connections(fn func(sock uint64, c *ConnectionCounters)) error {
	release, err := p.use()
	if err != nil {
		return err
	}
	defer release()
	var (
		sock uint64
		raw  codexrayConnection
		c    ConnectionCounters
	)
	it := p.objs.Connections.Iterate()
	for it.Next(&sock, &raw) {
		c = ConnectionCounters{
			CgroupID: raw.CgroupId, BytesSent: raw.BytesSent, BytesReceived: raw.BytesReceived,
			PID: raw.Pid, SRTTMicros: raw.SrttUs, Flags: raw.Flags,
		}
		fn(sock, &c)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterating connections map: %w", err)
	}
	return nil
}

// LostEvents returns how many events the kernel dropped because the ring buffer was full,
// summed over CPUs, since Load.
func (p *Probe) LostEvents() (uint64, error) {
	release, err := p.use()
	if err != nil {
		return 0, err
	}
	defer release()
	var perCPU []uint64
	if err := p.objs.LostEvents.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("reading lost events: %w", err)
	}
	var total uint64
	for _, n := range perCPU {
		total += n
	}
	return total, nil
}

// RunCounts returns how often each program ran. The kernel counts only while BPF statistics
// are enabled (EnableProgramStats, or sysctl kernel.bpf_stats_enabled=1).
func (p *Probe) RunCounts() (map[string]uint64, error) {
	stats, err := p.ProgramStats()
	if err != nil {
		return nil, err
	}
	counts := make(map[string]uint64, len(stats))
	for name, st := range stats {
		counts[name] = st.Runs
	}
	return counts, nil
}

// ProgramStats returns each program's runs and run time by the tracepoint it is attached to,
// counted while BPF statistics are enabled.
func (p *Probe) ProgramStats() (map[string]ProgramStats, error) {
	release, err := p.use()
	if err != nil {
		return nil, err
	}
	defer release()
	stats := make(map[string]ProgramStats, len(attachments))
	for _, a := range attachments {
		st, err := programStats(a.prog(&p.objs.codexrayPrograms))
		if err != nil {
			return nil, fmt.Errorf("program stats for %s: %w", a.name, err)
		}
		stats[a.name] = st
	}
	return stats, nil
}

// Close detaches every program and releases maps and the ring buffer. It unblocks ReadEvent and
// waits for map operations in progress; later ones return ErrClosed. Safe to call more than once
// and concurrently with the other methods.
func (p *Probe) Close() error {
	var errs []error
	if p.reader != nil {
		// First, without the lock: a blocked ReadEvent returns ErrClosed.
		if err := p.reader.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.Join(errs...)
	}
	p.closed = true
	if p.idle == nil {
		p.idle = sync.NewCond(&p.mu)
	}
	for p.users > 0 {
		p.idle.Wait()
	}
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}
