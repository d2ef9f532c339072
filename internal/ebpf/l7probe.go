package ebpf

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// DefaultL7RingBufferSize is the L7 segment ring buffer LoadL7 creates when
// L7Options.RingBufferSize is 0: at the default wake-up (a quarter of it) and poll interval
// it holds ~100 ms of ~40,000 request/response pairs per second.
const DefaultL7RingBufferSize = 8 << 20

// L7SegmentHeaderSize is the fixed part of an L7 segment record (struct l7_segment in l7.c,
// internal/l7's SegmentHeaderSize); the captured payload follows it.
const L7SegmentHeaderSize = int(unsafe.Sizeof(l7L7Segment{}))

// L7Options tune the L7 capture.
type L7Options struct {
	// RingBufferSize in bytes (CheckRingBufferSize); 0 means DefaultL7RingBufferSize.
	RingBufferSize int
	// Protocols has bit p set for every protocol p (internal/l7's Protocol values) the kernel
	// detects; 0 means all.
	Protocols uint32
	// SuppressAfter and SuppressBytes: once one direction moved this many segments and bytes
	// without the other moving, it is suppressed until the other one moves (internal/l7's
	// SuppressAfter, SuppressBytes); 0 means 4 and 16 KiB.
	SuppressAfter uint32
	SuppressBytes uint32
	// Seeded shares the TCP tracer's map of connections open before the agent started, so
	// their segments carry the tracer's ids. nil: an empty map of the L7 object's own.
	Seeded *Probe
}

// L7Counters are the kernel side's self-metrics, summed over CPUs, since LoadL7.
type L7Counters struct {
	Lost       uint64 // records the full ring buffer refused (segments and closes)
	Suppressed uint64 // segments of bulk transfers not forwarded
	Truncated  uint64 // HTTP/2 digests that could not describe every frame
	Detected   uint64 // connections whose protocol was detected
	GivenUp    uint64 // connections left alone: no protocol within the detection attempts
	Seeded     uint64 // detected connections that report a seeded id
	Closed     uint64 // close records written
}

// l7Loaded lists what production loads of the L7 object: not the test program.
type l7Loaded struct {
	SockSend  *cebpf.Program `ebpf:"l7_sock_send"`
	SockRecv  *cebpf.Program `ebpf:"l7_sock_recv"`
	SockClose *cebpf.Program `ebpf:"l7_sock_close"`
	Segments  *cebpf.Map     `ebpf:"l7_segments"`
	Counters  *cebpf.Map     `ebpf:"l7_counters"`
}

func (o *l7Loaded) close() error {
	// Close of a nil program or map is a no-op.
	return errors.Join(o.SockSend.Close(), o.SockRecv.Close(), o.SockClose.Close(), o.Segments.Close(), o.Counters.Close())
}

// L7Probe is the loaded and attached L7 capture. Like Probe, it holds every link for its
// lifetime.
type L7Probe struct {
	mu     sync.RWMutex // held for reading by map operations, for writing by Close
	closed bool
	objs   l7Loaded
	links  []link.Link
	reader *ringbuf.Reader
	record ringbuf.Record
}

// LoadL7 loads the L7 capture, attaches it to the sock_send_length, sock_recv_length and
// inet_sock_set_state tracepoints and opens its ring buffer. Errors wrap ErrUnsupported or
// ErrPermission like Load's. It needs Linux 6.0 (the sock tracepoints; bpf_loop is 5.17).
func LoadL7(opts L7Options) (*L7Probe, error) {
	size := opts.RingBufferSize
	if size == 0 {
		size = DefaultL7RingBufferSize
	}
	if err := CheckRingBufferSize(size); err != nil {
		return nil, fmt.Errorf("L7 ring buffer size: %w", err)
	}
	spec, err := l7Spec(opts)
	if err != nil {
		return nil, err
	}
	spec.Maps["l7_segments"].MaxEntries = uint32(size)
	if err := spec.Variables["wakeup_bytes"].Set(uint64(size / 4)); err != nil {
		return nil, fmt.Errorf("setting L7 wakeup threshold: %w", err)
	}
	copts := &cebpf.CollectionOptions{}
	if opts.Seeded != nil {
		release, err := opts.Seeded.use()
		if err != nil {
			return nil, fmt.Errorf("sharing the seeded map: %w", err)
		}
		defer release()
		copts.MapReplacements = map[string]*cebpf.Map{"seeded": opts.Seeded.objs.Seeded}
	}
	p := &L7Probe{}
	if err := spec.LoadAndAssign(&p.objs, copts); err != nil {
		return nil, classify("loading L7 BPF objects", err)
	}
	for _, a := range []struct {
		name string
		prog *cebpf.Program
	}{{"sock_send_length", p.objs.SockSend}, {"sock_recv_length", p.objs.SockRecv}, {"inet_sock_set_state", p.objs.SockClose}} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.name, Program: a.prog})
		if err != nil {
			_ = p.Close()
			what := "attaching raw tracepoint " + a.name + " (L7)"
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s (Linux 6.0 or newer): %w", ErrUnsupported, what, err)
			}
			return nil, classify(what, err)
		}
		p.links = append(p.links, l)
	}
	p.reader, err = ringbuf.NewReader(p.objs.Segments)
	if err != nil {
		_ = p.Close()
		return nil, classify("opening L7 ring buffer", err)
	}
	p.reader.SetDeadline(time.Now().Add(PollInterval))
	return p, nil
}

// l7Spec parses the embedded L7 object and sets its constants.
func l7Spec(opts L7Options) (*cebpf.CollectionSpec, error) {
	if _, err := os.Stat(kernelBTF); err != nil {
		return nil, fmt.Errorf("%w: kernel BTF not available (%w)", ErrUnsupported, err)
	}
	spec, err := loadL7()
	if err != nil {
		return nil, fmt.Errorf("parsing embedded L7 BPF objects: %w", err)
	}
	if opts.Protocols != 0 {
		if err := spec.Variables["protocols"].Set(opts.Protocols); err != nil {
			return nil, fmt.Errorf("setting L7 protocols: %w", err)
		}
	}
	if opts.SuppressAfter != 0 {
		if err := spec.Variables["suppress_after"].Set(opts.SuppressAfter); err != nil {
			return nil, fmt.Errorf("setting L7 suppression: %w", err)
		}
	}
	if opts.SuppressBytes != 0 {
		if err := spec.Variables["suppress_bytes"].Set(opts.SuppressBytes); err != nil {
			return nil, fmt.Errorf("setting L7 suppression: %w", err)
		}
	}
	return spec, nil
}

// ReadRecord blocks until the next record and returns it; the bytes are valid until the next
// call, which must come from the same goroutine. After Close it returns ErrClosed.
func (p *L7Probe) ReadRecord() ([]byte, error) {
	if err := readRecord(p.reader, &p.record, time.Time{}); err != nil {
		return nil, err
	}
	return p.record.RawSample, nil
}

// ReadRecordUntil is ReadRecord giving up with os.ErrDeadlineExceeded at until.
func (p *L7Probe) ReadRecordUntil(until time.Time) ([]byte, error) {
	if err := readRecord(p.reader, &p.record, until); err != nil {
		return nil, err
	}
	return p.record.RawSample, nil
}

// Flush makes ReadRecord return every record in the ring buffer now, without waiting for the
// next poll, and then ErrFlushed once (Probe.Flush's rule).
func (p *L7Probe) Flush() error { return p.reader.Flush() }

// Counters returns the kernel side's self-metrics.
func (p *L7Probe) Counters() (L7Counters, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return L7Counters{}, ErrClosed
	}
	var c L7Counters
	// slot 5 is unused (user space counts the records it reads)
	slots := map[uint32]*uint64{0: &c.Lost, 1: &c.Suppressed, 2: &c.Truncated, 3: &c.Detected, 4: &c.GivenUp, 6: &c.Seeded, 7: &c.Closed}
	var perCPU []uint64
	for i, dst := range slots {
		if err := p.objs.Counters.Lookup(i, &perCPU); err != nil {
			return L7Counters{}, fmt.Errorf("reading L7 counter %d: %w", i, err)
		}
		for _, n := range perCPU {
			*dst += n
		}
	}
	return c, nil
}

// ProgramStats returns each program's runs and run time by the tracepoint it is attached to,
// counted while BPF statistics are enabled (EnableProgramStats).
func (p *L7Probe) ProgramStats() (map[string]ProgramStats, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, ErrClosed
	}
	stats := map[string]ProgramStats{}
	for name, prog := range map[string]*cebpf.Program{"sock_send_length": p.objs.SockSend, "sock_recv_length": p.objs.SockRecv, "inet_sock_set_state": p.objs.SockClose} {
		st, err := programStats(prog)
		if err != nil {
			return nil, fmt.Errorf("program stats for L7 %s: %w", name, err)
		}
		stats[name] = st
	}
	return stats, nil
}

// Close detaches the programs and releases the maps and the ring buffer; a blocked
// ReadRecord returns ErrClosed. Safe to call more than once.
func (p *L7Probe) Close() error {
	var errs []error
	if p.reader != nil {
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
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.close())
	return errors.Join(errs...)
}

// L7Detector runs the kernel's protocol detectors (l7_detect in l7_detect.h) on given bytes
// through BPF_PROG_TEST_RUN, without attaching anything: tests compare them with
// internal/l7's Go detectors, their specification.
type L7Detector struct {
	objs struct {
		Detect  *cebpf.Program `ebpf:"l7_test_detect"`
		Scratch *cebpf.Map     `ebpf:"l7_scratch"`
	}
}

// OpenL7Detector loads the detectors with every protocol enabled.
func OpenL7Detector() (*L7Detector, error) {
	spec, err := l7Spec(L7Options{})
	if err != nil {
		return nil, err
	}
	d := &L7Detector{}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		return nil, classify("loading L7 detectors", err)
	}
	return d, nil
}

// Detect returns the protocol (internal/l7's Protocol value, 0 for none) and whether the
// traced side is the server, for a syscall of total bytes whose first bytes are data.
func (d *L7Detector) Detect(data []byte, total uint32, received, udp, dnsPort bool) (protocol uint8, server bool, err error) {
	var flags uint64
	if received {
		flags |= 1
	}
	if udp {
		flags |= 1 << 8
	}
	if dnsPort {
		flags |= 1 << 16
	}
	buf := make([]byte, max(len(data), 1)) // a buffer of our own that outlives the run
	copy(buf, data)
	ret, err := d.objs.Detect.Run(&cebpf.RunOptions{
		Context: []uint64{uint64(uintptr(unsafe.Pointer(&buf[0]))), uint64(len(data)), uint64(total), flags},
	})
	runtime.KeepAlive(buf)
	if err != nil {
		return 0, false, fmt.Errorf("running the L7 detectors: %w", err)
	}
	return uint8(ret), (ret>>8)&1 == 1, nil
}

// Close releases the detectors.
func (d *L7Detector) Close() error {
	return errors.Join(d.objs.Detect.Close(), d.objs.Scratch.Close())
}
