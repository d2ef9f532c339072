package taskstats

// Some kernels (seen on the 6.18 testbed, with kernel.task_delayacct=1 set well before the
// workload) now and then credit a task's blkio_delay_total with the whole time since boot: an
// IO wait whose start timestamp was never set ends as "now - 0". One such event in a
// short-lived dd made its container's disk delay jump by ~26 minutes in 4 seconds. These jumps
// are told apart from real waits by two bounds a real wait respects:
//
//   - a process cannot have waited longer than its threads lived: the total stays within
//     the summed thread elapsed time (ac_etime) the kernel reports with the totals;
//   - a bogus increment is at least the time since boot when the process started (it is the
//     monotonic clock at the event), while a real one between two readings is covered by the
//     elapsed time its threads gained in between.
//
// A rejected increment is remembered as an offset and subtracted from every later reading of
// the process, so its disk delay stays monotonic and loses at most that interval's real waits.

// clockTicksPerSecond is USER_HZ, the unit of /proc/<pid>/stat starttime (100 on every
// architecture Linux runs containers on).
const clockTicksPerSecond = 100

// blkioTrack follows the raw disk delay of one process.
type blkioTrack struct {
	raw     uint64 // last raw total read
	offset  uint64 // bogus increments removed so far
	elapsed uint64 // summed thread elapsed time (ns) at the last reading; 0 unknown
}

// first starts following a process from its first reading. A total beyond the threads'
// lifetime holds a bogus increment: the process reports 0 from there on.
func (b *blkioTrack) first(raw, elapsed uint64) (reported uint64, bogus bool) {
	*b = blkioTrack{raw: raw, elapsed: elapsed}
	if elapsed > 0 && raw > elapsed {
		b.offset = raw
		return 0, true
	}
	return raw, false
}

// next takes a later reading. startTicks is the process's start time in clock ticks since
// boot (0 unknown).
func (b *blkioTrack) next(raw, elapsed, startTicks uint64) (reported uint64, bogus bool) {
	if raw > b.raw {
		delta := raw - b.raw
		var gained uint64
		if elapsed > b.elapsed {
			gained = elapsed - b.elapsed
		}
		sinceBoot := startTicks * (1e9 / clockTicksPerSecond)
		beyondLifetime := elapsed > 0 && raw-min(raw, b.offset) > elapsed
		if (elapsed > 0 && delta > gained && delta >= sinceBoot) || beyondLifetime {
			b.offset += delta
			bogus = true
		}
	}
	b.raw = max(b.raw, raw)
	if elapsed > 0 {
		b.elapsed = elapsed
	}
	if b.raw < b.offset {
		return 0, bogus
	}
	return b.raw - b.offset, bogus
}
