package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// Stats is one cgroup's resource counters at one moment. Cumulative values are totals since
// the cgroup was created; a zero limit means "no limit". Has* flags say which parts could be
// read (a controller may be absent, e.g. PSI on a v1-only host).
type Stats struct {
	CPU    CPU
	HasCPU bool // usage was read
	// HasThrottling: throttling was read (v1 cpu.stat, or v2 cpu.stat with the cpu controller
	// enabled). Without it ThrottledSeconds is unknown, not zero.
	HasThrottling bool

	Memory    Memory
	HasMemory bool

	// IO has one entry per block device the cgroup touched.
	IO []DeviceIO

	PSI    PSI
	HasPSI bool
}

// CPU is the cpu part of Stats.
type CPU struct {
	UsageSeconds     float64 // cpuacct.usage (v1) or cpu.stat usage_usec (v2)
	ThrottledSeconds float64 // cpu.stat throttled_time (v1, ns) or throttled_usec (v2)
	LimitCores       float64 // cfs quota / period; 0 when unlimited
}

// Memory is the memory part of Stats.
type Memory struct {
	// RSSBytes is resident memory as coroot-node-agent defines it: anonymous memory plus file
	// pages mapped into processes, total_rss + total_mapped_file (v1; rss + mapped_file on
	// kernels without the total_ keys) or anon + file_mapped (v2). The kernel's v1 document
	// says rss alone is not the resident set; rss + mapped_file is.
	RSSBytes uint64
	// CacheBytes is page cache: total_cache (v1) or file (v2).
	CacheBytes uint64
	// LimitBytes is memory.limit_in_bytes (v1) or memory.max (v2); 0 when unlimited.
	LimitBytes uint64
}

// DeviceIO is one block device's counters.
type DeviceIO struct {
	Device       string // name from /proc/partitions ("vda", "nvme0n1"), or "maj:min"
	Reads        uint64
	Writes       uint64
	ReadBytes    uint64
	WrittenBytes uint64
}

// PSI is pressure stall information (cgroup v2 only): time tasks waited for a resource.
type PSI struct {
	CPU, Memory, IO Pressure
}

// Pressure is one resource's stall time in seconds: Some = at least one task stalled, Full =
// all non-idle tasks stalled.
type Pressure struct {
	SomeSeconds, FullSeconds float64
}

// unlimitedMemory: v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 with
// 4k pages); anything this large is no limit on any page size.
const unlimitedMemory = 1 << 62

// ErrCgroupGone is returned (wrapped) by Stats when none of the cgroup's files exist any
// more: the container is gone.
var ErrCgroupGone = errors.New("cgroup is gone")

// Stats reads the counters of the cgroups in p. Missing files are skipped (the part's Has
// flag stays false); unreadable or malformed files are reported in the error while the rest
// is still returned. When nothing at all could be read the error wraps ErrCgroupGone.
func (f *FS) Stats(p Paths) (Stats, error) {
	var s Stats
	r := statReader{fs: f, bp: f.bufs.Get().(*[]byte)}
	defer f.bufs.Put(r.bp)
	switch f.layout {
	case LayoutV2:
		r.v2CPU(&s, p.Unified, true)
		r.v2Memory(&s, p.Unified)
		r.v2IO(&s, p.Unified)
		r.psi(&s, p.Unified)
	default:
		r.v1CPU(&s, p)
		if !s.HasCPU && f.layout == LayoutHybrid && p.Unified != "" {
			// No cpuacct mount: the unified hierarchy still accounts usage (no limit there).
			r.v2CPU(&s, p.Unified, false)
		}
		r.v1Memory(&s, p.Memory)
		r.v1IO(&s, p.Blkio)
		if f.layout == LayoutHybrid {
			r.psi(&s, p.Unified)
		}
	}
	if !r.found {
		return s, fmt.Errorf("%s: %w", p.Primary(), ErrCgroupGone)
	}
	return s, errors.Join(r.errs...)
}

type statReader struct {
	fs    *FS
	bp    *[]byte
	found bool // at least one file existed
	errs  []error
}

// read returns the file's bytes, or nil when it does not exist (or the kernel does not
// support it, e.g. PSI disabled with psi=0), recording other errors.
func (r *statReader) read(dir, rel, file string) []byte {
	if dir == "" || rel == "" {
		return nil
	}
	path := dir + rel + "/" + file
	if rel == "/" {
		path = dir + "/" + file
	}
	data, err := procfs.ReadFile(path, r.bp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.EOPNOTSUPP) {
			return nil
		}
		r.errs = append(r.errs, err)
		return nil
	}
	r.found = true
	return data
}

func (r *statReader) fail(file string, err error) {
	r.errs = append(r.errs, fmt.Errorf("%s: %w", file, err))
}

func (r *statReader) v2CPU(s *Stats, p string, withLimit bool) {
	if data := r.read(r.fs.unified, p, "cpu.stat"); data != nil {
		var usage, throttled uint64
		var hasThrottled bool
		err := parseKeyed(data, func(k []byte, v uint64) {
			switch string(k) {
			case "usage_usec":
				usage = v
			case "throttled_usec":
				throttled, hasThrottled = v, true
			}
		})
		if err != nil {
			r.fail("cpu.stat", err)
		} else {
			s.HasCPU = true
			s.CPU.UsageSeconds = float64(usage) / 1e6
			if hasThrottled {
				s.HasThrottling = true
				s.CPU.ThrottledSeconds = float64(throttled) / 1e6
			}
		}
	}
	if !withLimit {
		return
	}
	if data := r.read(r.fs.unified, p, "cpu.max"); data != nil {
		quota, period, limited, err := parseCPUMax(data)
		if err != nil {
			r.fail("cpu.max", err)
		} else if limited {
			s.CPU.LimitCores = float64(quota) / float64(period)
		}
	}
}

func (r *statReader) v2Memory(s *Stats, p string) {
	if data := r.read(r.fs.unified, p, "memory.stat"); data != nil {
		var anon, fileMapped, file uint64
		err := parseKeyed(data, func(k []byte, v uint64) {
			switch string(k) {
			case "anon":
				anon = v
			case "file_mapped":
				fileMapped = v
			case "file":
				file = v
			}
		})
		if err != nil {
			r.fail("memory.stat", err)
		} else {
			s.HasMemory = true
			s.Memory.RSSBytes, s.Memory.CacheBytes = anon+fileMapped, file
		}
	}
	if data := r.read(r.fs.unified, p, "memory.max"); data != nil {
		v, limited, err := parseSingleUint(data)
		if err != nil {
			r.fail("memory.max", err)
		} else if limited && v < unlimitedMemory {
			s.Memory.LimitBytes = v
		}
	}
}

func (r *statReader) v2IO(s *Stats, p string) {
	data := r.read(r.fs.unified, p, "io.stat")
	if data == nil {
		return
	}
	var buf [8]deviceCounters
	devs, err := parseIOStat(data, buf[:0])
	if err != nil {
		r.fail("io.stat", err)
		return
	}
	for _, d := range devs {
		s.IO = append(s.IO, DeviceIO{
			Device: r.fs.devices.name(d.Major, d.Minor),
			Reads:  d.Reads, Writes: d.Writes, ReadBytes: d.ReadBytes, WrittenBytes: d.WrittenBytes,
		})
	}
}

func (r *statReader) psi(s *Stats, p string) {
	for _, res := range [...]struct {
		file string
		dst  *Pressure
	}{
		{"cpu.pressure", &s.PSI.CPU},
		{"memory.pressure", &s.PSI.Memory},
		{"io.pressure", &s.PSI.IO},
	} {
		data := r.read(r.fs.unified, p, res.file)
		if data == nil {
			continue
		}
		some, full, err := parsePSI(data)
		if err != nil {
			r.fail(res.file, err)
			continue
		}
		s.HasPSI = true
		res.dst.SomeSeconds, res.dst.FullSeconds = float64(some)/1e6, float64(full)/1e6
	}
}

func (r *statReader) v1CPU(s *Stats, p Paths) {
	if data := r.read(r.fs.cpuacctDir, p.CPUAcct, "cpuacct.usage"); data != nil {
		v, _, err := parseSingleUint(data)
		if err != nil {
			r.fail("cpuacct.usage", err)
		} else {
			s.HasCPU = true
			s.CPU.UsageSeconds = float64(v) / 1e9
		}
	}
	if data := r.read(r.fs.cpuDir, p.CPU, "cpu.stat"); data != nil {
		var throttled uint64
		err := parseKeyed(data, func(k []byte, v uint64) {
			if string(k) == "throttled_time" {
				throttled = v
			}
		})
		if err != nil {
			r.fail("cpu.stat", err)
		} else {
			s.HasThrottling = true
			s.CPU.ThrottledSeconds = float64(throttled) / 1e9
		}
	}
	quotaData := r.read(r.fs.cpuDir, p.CPU, "cpu.cfs_quota_us")
	if quotaData == nil {
		return
	}
	quota, limited, err := parseSingleUint(quotaData)
	if err != nil {
		r.fail("cpu.cfs_quota_us", err)
		return
	}
	if !limited {
		return
	}
	periodData := r.read(r.fs.cpuDir, p.CPU, "cpu.cfs_period_us")
	if periodData == nil {
		return
	}
	period, ok, err := parseSingleUint(periodData)
	if err != nil {
		r.fail("cpu.cfs_period_us", err)
		return
	}
	if ok && period > 0 {
		s.CPU.LimitCores = float64(quota) / float64(period)
	}
}

func (r *statReader) v1Memory(s *Stats, p string) {
	if data := r.read(r.fs.memoryDir, p, "memory.stat"); data != nil {
		var rss, mapped, cache, totalRSS, totalMapped, totalCache uint64
		var hasTotal bool
		err := parseKeyed(data, func(k []byte, v uint64) {
			switch string(k) {
			case "rss":
				rss = v
			case "mapped_file":
				mapped = v
			case "cache":
				cache = v
			case "total_rss":
				totalRSS, hasTotal = v, true
			case "total_mapped_file":
				totalMapped = v
			case "total_cache":
				totalCache = v
			}
		})
		if err != nil {
			r.fail("memory.stat", err)
		} else {
			s.HasMemory = true
			// total_* include nested cgroups of the container; older kernels lack them.
			if hasTotal {
				rss, mapped, cache = totalRSS, totalMapped, totalCache
			}
			s.Memory.RSSBytes, s.Memory.CacheBytes = rss+mapped, cache
		}
	}
	if data := r.read(r.fs.memoryDir, p, "memory.limit_in_bytes"); data != nil {
		v, limited, err := parseSingleUint(data)
		if err != nil {
			r.fail("memory.limit_in_bytes", err)
		} else if limited && v < unlimitedMemory {
			s.Memory.LimitBytes = v
		}
	}
}

func (r *statReader) v1IO(s *Stats, p string) {
	var arr [8]deviceCounters
	devs := arr[:0]
	get := func(maj, minor uint32) *deviceCounters {
		for i := range devs {
			if devs[i].Major == maj && devs[i].Minor == minor {
				return &devs[i]
			}
		}
		devs = append(devs, deviceCounters{Major: maj, Minor: minor})
		return &devs[len(devs)-1]
	}
	for _, file := range [...]string{"blkio.throttle.io_serviced", "blkio.throttle.io_service_bytes"} {
		data := r.read(r.fs.blkioDir, p, file)
		if data == nil {
			continue
		}
		bytes := file == "blkio.throttle.io_service_bytes"
		err := parseBlkio(data, func(maj, minor uint32, read bool, v uint64) {
			d := get(maj, minor)
			switch {
			case read && bytes:
				d.ReadBytes = v
			case read:
				d.Reads = v
			case bytes:
				d.WrittenBytes = v
			default:
				d.Writes = v
			}
		})
		if err != nil {
			r.fail(file, err)
		}
	}
	for _, d := range devs {
		s.IO = append(s.IO, DeviceIO{
			Device: r.fs.devices.name(d.Major, d.Minor),
			Reads:  d.Reads, Writes: d.Writes, ReadBytes: d.ReadBytes, WrittenBytes: d.WrittenBytes,
		})
	}
}
