package taskstats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Stats is a decoded struct taskstats (include/uapi/linux/taskstats.h). Delay totals and
// *_run_*_total are nanoseconds, ETime/UTime/STime microseconds, as the kernel sends them.
// Fields a kernel's struct version does not carry stay zero; Version says which one it was.
//
// Replies to TGID queries and the per-thread-group record sent when a multi-threaded process
// exits carry only the delay-accounting part (and, for queries, ETime/UTime/STime/NVCSW/NIVCSW):
// the basic-accounting fields (Comm, PID, PPID, ...) are filled only for per-task records.
type Stats struct {
	Version  uint16
	ExitCode uint32
	Flag     uint8 // ac_flag: AFORK, ASU, ACOMPAT, ACORE, AXSIG, AGROUP
	Nice     int8

	CPUCount, CPUDelayTotal             uint64
	BlkioCount, BlkioDelayTotal         uint64
	SwapinCount, SwapinDelayTotal       uint64
	CPURunRealTotal, CPURunVirtualTotal uint64

	Comm                     string
	Sched                    uint8
	UID, GID, PID, PPID      uint32
	BTime                    uint32 // begin time, seconds since the epoch
	ETime, UTime, STime      uint64
	MinFlt, MajFlt           uint64
	CoreMem, VirtMem         uint64
	HiwaterRSS, HiwaterVM    uint64
	ReadChar, WriteChar      uint64
	ReadSyscalls             uint64
	WriteSyscalls            uint64
	ReadBytes, WriteBytes    uint64
	CancelledWriteBytes      uint64
	NVCSW, NIVCSW            uint64
	UTimeScaled, STimeScaled uint64
	CPUScaledRunRealTotal    uint64

	FreepagesCount, FreepagesDelayTotal uint64 // memory reclaim (v7+)
	ThrashingCount, ThrashingDelayTotal uint64 // v9+
	BTime64                             uint64 // v10+
	CompactCount, CompactDelayTotal     uint64 // v11+
	TGID                                uint32 // v12+
	TGETime, ExeDev, ExeInode           uint64 // v12+
	WPCopyCount, WPCopyDelayTotal       uint64 // v13+
	IRQCount, IRQDelayTotal             uint64 // v14+

	// Largest and smallest single delay per kind (v15+).
	CPUDelayMax, CPUDelayMin             uint64
	BlkioDelayMax, BlkioDelayMin         uint64
	SwapinDelayMax, SwapinDelayMin       uint64
	FreepagesDelayMax, FreepagesDelayMin uint64
	ThrashingDelayMax, ThrashingDelayMin uint64
	CompactDelayMax, CompactDelayMin     uint64
	WPCopyDelayMax, WPCopyDelayMin       uint64
	IRQDelayMax, IRQDelayMin             uint64
}

// AGroup is the ac_flag bit set on the exit record of a thread group's last thread (v12+).
const AGroup = 0x20

// Struct sizes in bytes of the versions whose layout this package knows. Each version only
// appended fields, except v1 (no exit code, delays from offset 8) and v15 (max/min delays
// interleaved after each *_delay_total, which broke the ABI and was moved to the end in v16).
const (
	sizeV1  = 72
	sizeV8  = 328
	sizeV9  = 344
	sizeV10 = 352
	sizeV11 = 368
	sizeV12 = 400
	sizeV13 = 416
	sizeV14 = 432
	sizeV15 = 560
	sizeV16 = 560
)

// MaxKnownVersion is the newest struct version whose every field this package decodes; newer
// versions decode as their v16 prefix.
const MaxKnownVersion = 16

// ErrShortStats means the payload cannot even hold the version field.
var ErrShortStats = errors.New("taskstats: payload shorter than the version field")

// field is one u64/u32/u8 member of struct taskstats at a byte offset. since is the version
// that introduced it; fields also have to fit the payload, which is what bounds the versions
// between 2 and 8 whose exact history does not matter for decoding (only appends).
type field struct {
	off   int
	size  int
	since uint16
	set   func(s *Stats, v uint64)
}

func u64(off int, since uint16, set func(*Stats, uint64)) field {
	return field{off: off, size: 8, since: since, set: set}
}

func u32(off int, since uint16, set func(*Stats, uint64)) field {
	return field{off: off, size: 4, since: since, set: set}
}

// Offsets of the fields from v2 on (ac_comm at 80, ac_sched aligned to 8 at 112, ac_uid
// aligned to 8 at 120, ac_etime aligned to 8 at 144, ac_tgetime aligned to 8 at 376).
var commonHead = []field{
	u32(4, 2, func(s *Stats, v uint64) { s.ExitCode = uint32(v) }),
	{off: 8, size: 1, since: 2, set: func(s *Stats, v uint64) { s.Flag = uint8(v) }},
	{off: 9, size: 1, since: 2, set: func(s *Stats, v uint64) { s.Nice = int8(uint8(v)) }},
}

// delayHead are the first delay fields; v15 moves everything after cpu_delay_total.
func delayHead(stride int) []field {
	// stride is the size of each count/total group: 16 normally, 32 in v15 (max and min follow).
	return []field{
		u64(16, 1, func(s *Stats, v uint64) { s.CPUCount = v }),
		u64(24, 1, func(s *Stats, v uint64) { s.CPUDelayTotal = v }),
		u64(16+stride, 1, func(s *Stats, v uint64) { s.BlkioCount = v }),
		u64(24+stride, 1, func(s *Stats, v uint64) { s.BlkioDelayTotal = v }),
		u64(16+2*stride, 1, func(s *Stats, v uint64) { s.SwapinCount = v }),
		u64(24+2*stride, 1, func(s *Stats, v uint64) { s.SwapinDelayTotal = v }),
		u64(16+3*stride, 1, func(s *Stats, v uint64) { s.CPURunRealTotal = v }),
		u64(24+3*stride, 1, func(s *Stats, v uint64) { s.CPURunVirtualTotal = v }),
	}
}

// basicAccounting are ac_comm..cpu_scaled_run_real_total, at base (80 normally, 128 in v15).
func basicAccounting(base int) []field {
	o := func(rel int) int { return base + rel }
	fs := []field{
		{off: o(32), size: 1, since: 2, set: func(s *Stats, v uint64) { s.Sched = uint8(v) }},
		u32(o(40), 2, func(s *Stats, v uint64) { s.UID = uint32(v) }),
		u32(o(44), 2, func(s *Stats, v uint64) { s.GID = uint32(v) }),
		u32(o(48), 2, func(s *Stats, v uint64) { s.PID = uint32(v) }),
		u32(o(52), 2, func(s *Stats, v uint64) { s.PPID = uint32(v) }),
		u32(o(56), 2, func(s *Stats, v uint64) { s.BTime = uint32(v) }),
	}
	sets := []func(*Stats, uint64){
		func(s *Stats, v uint64) { s.ETime = v },
		func(s *Stats, v uint64) { s.UTime = v },
		func(s *Stats, v uint64) { s.STime = v },
		func(s *Stats, v uint64) { s.MinFlt = v },
		func(s *Stats, v uint64) { s.MajFlt = v },
		func(s *Stats, v uint64) { s.CoreMem = v },
		func(s *Stats, v uint64) { s.VirtMem = v },
		func(s *Stats, v uint64) { s.HiwaterRSS = v },
		func(s *Stats, v uint64) { s.HiwaterVM = v },
		func(s *Stats, v uint64) { s.ReadChar = v },
		func(s *Stats, v uint64) { s.WriteChar = v },
		func(s *Stats, v uint64) { s.ReadSyscalls = v },
		func(s *Stats, v uint64) { s.WriteSyscalls = v },
		func(s *Stats, v uint64) { s.ReadBytes = v },
		func(s *Stats, v uint64) { s.WriteBytes = v },
		func(s *Stats, v uint64) { s.CancelledWriteBytes = v },
		func(s *Stats, v uint64) { s.NVCSW = v },
		func(s *Stats, v uint64) { s.NIVCSW = v },
		func(s *Stats, v uint64) { s.UTimeScaled = v },
		func(s *Stats, v uint64) { s.STimeScaled = v },
		func(s *Stats, v uint64) { s.CPUScaledRunRealTotal = v },
	}
	for i, set := range sets {
		fs = append(fs, u64(o(64+8*i), 2, set))
	}
	return fs
}

// layoutAppended is the layout of every version but 1 and 15 (v16 is its longest form).
var layoutAppended = func() []field {
	fs := append([]field{}, commonHead...)
	fs = append(fs, delayHead(16)...)
	fs = append(fs, basicAccounting(80)...)
	fs = append(fs,
		u64(312, 7, func(s *Stats, v uint64) { s.FreepagesCount = v }),
		u64(320, 7, func(s *Stats, v uint64) { s.FreepagesDelayTotal = v }),
		u64(328, 9, func(s *Stats, v uint64) { s.ThrashingCount = v }),
		u64(336, 9, func(s *Stats, v uint64) { s.ThrashingDelayTotal = v }),
		u64(344, 10, func(s *Stats, v uint64) { s.BTime64 = v }),
		u64(352, 11, func(s *Stats, v uint64) { s.CompactCount = v }),
		u64(360, 11, func(s *Stats, v uint64) { s.CompactDelayTotal = v }),
		u32(368, 12, func(s *Stats, v uint64) { s.TGID = uint32(v) }),
		u64(376, 12, func(s *Stats, v uint64) { s.TGETime = v }),
		u64(384, 12, func(s *Stats, v uint64) { s.ExeDev = v }),
		u64(392, 12, func(s *Stats, v uint64) { s.ExeInode = v }),
		u64(400, 13, func(s *Stats, v uint64) { s.WPCopyCount = v }),
		u64(408, 13, func(s *Stats, v uint64) { s.WPCopyDelayTotal = v }),
		u64(416, 14, func(s *Stats, v uint64) { s.IRQCount = v }),
		u64(424, 14, func(s *Stats, v uint64) { s.IRQDelayTotal = v }),
	)
	for i, set := range maxMinSetters {
		fs = append(fs, u64(432+8*i, 16, set))
	}
	return fs
}()

// maxMinSetters in the order v16 appends them (and v15 interleaves them).
var maxMinSetters = []func(*Stats, uint64){
	func(s *Stats, v uint64) { s.CPUDelayMax = v },
	func(s *Stats, v uint64) { s.CPUDelayMin = v },
	func(s *Stats, v uint64) { s.BlkioDelayMax = v },
	func(s *Stats, v uint64) { s.BlkioDelayMin = v },
	func(s *Stats, v uint64) { s.SwapinDelayMax = v },
	func(s *Stats, v uint64) { s.SwapinDelayMin = v },
	func(s *Stats, v uint64) { s.FreepagesDelayMax = v },
	func(s *Stats, v uint64) { s.FreepagesDelayMin = v },
	func(s *Stats, v uint64) { s.ThrashingDelayMax = v },
	func(s *Stats, v uint64) { s.ThrashingDelayMin = v },
	func(s *Stats, v uint64) { s.CompactDelayMax = v },
	func(s *Stats, v uint64) { s.CompactDelayMin = v },
	func(s *Stats, v uint64) { s.WPCopyDelayMax = v },
	func(s *Stats, v uint64) { s.WPCopyDelayMin = v },
	func(s *Stats, v uint64) { s.IRQDelayMax = v },
	func(s *Stats, v uint64) { s.IRQDelayMin = v },
}

// layoutV15: every count/total pair is followed by its max and min.
var layoutV15 = func() []field {
	fs := append([]field{}, commonHead...)
	fs = append(fs,
		u64(32, 15, maxMinSetters[0]), u64(40, 15, maxMinSetters[1]),
		u64(64, 15, maxMinSetters[2]), u64(72, 15, maxMinSetters[3]),
		u64(96, 15, maxMinSetters[4]), u64(104, 15, maxMinSetters[5]),
	)
	fs = append(fs, delayHead(32)...)
	fs = append(fs, basicAccounting(128)...)
	fs = append(fs,
		u64(360, 7, func(s *Stats, v uint64) { s.FreepagesCount = v }),
		u64(368, 7, func(s *Stats, v uint64) { s.FreepagesDelayTotal = v }),
		u64(376, 15, maxMinSetters[6]), u64(384, 15, maxMinSetters[7]),
		u64(392, 9, func(s *Stats, v uint64) { s.ThrashingCount = v }),
		u64(400, 9, func(s *Stats, v uint64) { s.ThrashingDelayTotal = v }),
		u64(408, 15, maxMinSetters[8]), u64(416, 15, maxMinSetters[9]),
		u64(424, 10, func(s *Stats, v uint64) { s.BTime64 = v }),
		u64(432, 11, func(s *Stats, v uint64) { s.CompactCount = v }),
		u64(440, 11, func(s *Stats, v uint64) { s.CompactDelayTotal = v }),
		u64(448, 15, maxMinSetters[10]), u64(456, 15, maxMinSetters[11]),
		u32(464, 12, func(s *Stats, v uint64) { s.TGID = uint32(v) }),
		u64(472, 12, func(s *Stats, v uint64) { s.TGETime = v }),
		u64(480, 12, func(s *Stats, v uint64) { s.ExeDev = v }),
		u64(488, 12, func(s *Stats, v uint64) { s.ExeInode = v }),
		u64(496, 13, func(s *Stats, v uint64) { s.WPCopyCount = v }),
		u64(504, 13, func(s *Stats, v uint64) { s.WPCopyDelayTotal = v }),
		u64(512, 15, maxMinSetters[12]), u64(520, 15, maxMinSetters[13]),
		u64(528, 14, func(s *Stats, v uint64) { s.IRQCount = v }),
		u64(536, 14, func(s *Stats, v uint64) { s.IRQDelayTotal = v }),
		u64(544, 15, maxMinSetters[14]), u64(552, 15, maxMinSetters[15]),
	)
	return fs
}()

// layoutV1: version, 6 bytes of padding, then the eight delay-accounting u64s.
var layoutV1 = func() []field {
	sets := []func(*Stats, uint64){
		func(s *Stats, v uint64) { s.CPUCount = v },
		func(s *Stats, v uint64) { s.CPUDelayTotal = v },
		func(s *Stats, v uint64) { s.BlkioCount = v },
		func(s *Stats, v uint64) { s.BlkioDelayTotal = v },
		func(s *Stats, v uint64) { s.SwapinCount = v },
		func(s *Stats, v uint64) { s.SwapinDelayTotal = v },
		func(s *Stats, v uint64) { s.CPURunRealTotal = v },
		func(s *Stats, v uint64) { s.CPURunVirtualTotal = v },
	}
	fs := make([]field, 0, len(sets))
	for i, set := range sets {
		fs = append(fs, u64(8+8*i, 1, set))
	}
	return fs
}()

// commOffset is where ac_comm[32] starts for each layout.
func commOffset(version uint16) int {
	if version == 15 {
		return 128
	}
	return 80
}

// DecodeStats decodes a TASKSTATS_TYPE_STATS payload in native byte order. The layout is
// chosen by the version field; a field is decoded when that version carries it and it fits
// the payload, so shorter structs of older kernels and truncated payloads decode to what they
// hold. fallbackVersion is used when the version field is 0, which the kernel sends in the
// per-thread-group exit record (it copies an accumulator that never had its version set);
// pass the version of the record's sibling per-task stats, or 0 to infer it from the length.
func DecodeStats(b []byte, fallbackVersion uint16) (Stats, error) {
	var s Stats
	if err := decodeStatsInto(&s, b, fallbackVersion); err != nil {
		return Stats{}, err
	}
	return s, nil
}

func decodeStatsInto(s *Stats, b []byte, fallbackVersion uint16) error {
	if len(b) < 2 {
		return ErrShortStats
	}
	version := binary.NativeEndian.Uint16(b)
	layoutVersion := version
	if version == 0 {
		layoutVersion = fallbackVersion
		if layoutVersion == 0 {
			layoutVersion = versionFromSize(len(b))
		}
	}
	s.Version = layoutVersion
	var layout []field
	switch layoutVersion {
	case 1:
		layout = layoutV1
	case 15:
		layout = layoutV15
	default:
		layout = layoutAppended
	}
	for i := range layout {
		f := &layout[i]
		if f.since > layoutVersion || f.off+f.size > len(b) {
			continue
		}
		var v uint64
		switch f.size {
		case 8:
			v = binary.NativeEndian.Uint64(b[f.off:])
		case 4:
			v = uint64(binary.NativeEndian.Uint32(b[f.off:]))
		default:
			v = uint64(b[f.off])
		}
		f.set(s, v)
	}
	if layoutVersion >= 2 {
		off := commOffset(layoutVersion)
		if off+32 <= len(b) {
			comm := b[off : off+32]
			if i := bytes.IndexByte(comm, 0); i >= 0 {
				comm = comm[:i]
			}
			if len(comm) > 0 {
				s.Comm = string(comm)
			}
		}
	}
	return nil
}

// versionFromSize guesses the version of a payload without one from its length; a 560-byte
// struct is taken as v16 (v15 shipped only in 6.16).
func versionFromSize(n int) uint16 {
	switch {
	case n >= sizeV16:
		return 16
	case n >= sizeV14:
		return 14
	case n >= sizeV13:
		return 13
	case n >= sizeV12:
		return 12
	case n >= sizeV11:
		return 11
	case n >= sizeV10:
		return 10
	case n >= sizeV9:
		return 9
	case n >= sizeV8:
		return 8
	case n > sizeV1:
		return 2
	default:
		return 1
	}
}

// Delays are the delay-accounting totals of a task or thread group, in nanoseconds.
type Delays struct {
	CPU, Blkio, Swapin, Freepages, Thrashing, Compact, WPCopy, IRQ uint64
}

// Delays returns the delay totals of s.
func (s *Stats) Delays() Delays {
	return Delays{
		CPU: s.CPUDelayTotal, Blkio: s.BlkioDelayTotal, Swapin: s.SwapinDelayTotal,
		Freepages: s.FreepagesDelayTotal, Thrashing: s.ThrashingDelayTotal,
		Compact: s.CompactDelayTotal, WPCopy: s.WPCopyDelayTotal, IRQ: s.IRQDelayTotal,
	}
}

// add returns d+o field by field.
func (d Delays) add(o Delays) Delays {
	return Delays{
		CPU: d.CPU + o.CPU, Blkio: d.Blkio + o.Blkio, Swapin: d.Swapin + o.Swapin,
		Freepages: d.Freepages + o.Freepages, Thrashing: d.Thrashing + o.Thrashing,
		Compact: d.Compact + o.Compact, WPCopy: d.WPCopy + o.WPCopy, IRQ: d.IRQ + o.IRQ,
	}
}

// max returns the field-wise maximum of d and o: totals of one process never go back.
func (d Delays) max(o Delays) Delays {
	return Delays{
		CPU: max(d.CPU, o.CPU), Blkio: max(d.Blkio, o.Blkio), Swapin: max(d.Swapin, o.Swapin),
		Freepages: max(d.Freepages, o.Freepages), Thrashing: max(d.Thrashing, o.Thrashing),
		Compact: max(d.Compact, o.Compact), WPCopy: max(d.WPCopy, o.WPCopy), IRQ: max(d.IRQ, o.IRQ),
	}
}

// less reports whether any total of d is below o's: a sign that d belongs to another process.
func (d Delays) less(o Delays) bool {
	return d.CPU < o.CPU || d.Blkio < o.Blkio || d.Swapin < o.Swapin ||
		d.Freepages < o.Freepages || d.Thrashing < o.Thrashing || d.Compact < o.Compact ||
		d.WPCopy < o.WPCopy || d.IRQ < o.IRQ
}

func (d Delays) String() string {
	return fmt.Sprintf("cpu=%d blkio=%d swapin=%d freepages=%d thrashing=%d compact=%d wpcopy=%d irq=%d",
		d.CPU, d.Blkio, d.Swapin, d.Freepages, d.Thrashing, d.Compact, d.WPCopy, d.IRQ)
}
