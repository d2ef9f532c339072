package nodestats

import (
	"bytes"
	"fmt"
)

// userHZ is the unit of the times in /proc/stat: the kernel reports them in USER_HZ ticks,
// which is 100 on every architecture the agent is built for (amd64, arm64), whatever CONFIG_HZ
// is. coroot-node-agent divides by the same constant.
const userHZ = 100

// CPUTimes is the whole machine's CPU time per mode since boot, in seconds: the "cpu" line of
// /proc/stat. guest and guest_nice are already included in user and nice by the kernel, so they
// are not reported apart (coroot-node-agent reports the same eight modes).
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal float64
}

// CPUModes are the values of the mode label, in the order Each reports them.
var CPUModes = [8]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

// Each calls fn for every mode with its seconds, in CPUModes order.
func (c CPUTimes) Each(fn func(mode string, seconds float64)) {
	for i, v := range [8]float64{c.User, c.Nice, c.System, c.Idle, c.IOWait, c.IRQ, c.SoftIRQ, c.Steal} {
		fn(CPUModes[i], v)
	}
}

// parseStat reads the aggregate "cpu" line and counts the per-CPU "cpuN" lines of /proc/stat
// (the online logical CPUs). Kernels older than 2.6.11 lack steal (and older ones iowait, irq,
// softirq): missing trailing modes are 0; user, nice, system and idle are required.
func parseStat(b []byte) (CPUTimes, int, error) {
	var (
		times CPUTimes
		cores int
		found bool
		fs    [][]byte
	)
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if !bytes.HasPrefix(line, []byte("cpu")) {
			continue
		}
		if len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			cores++
			continue
		}
		fs = fields(line, fs)
		if len(fs) == 0 || string(fs[0]) != "cpu" {
			continue
		}
		if found {
			return CPUTimes{}, 0, fmt.Errorf("parsing /proc/stat: two cpu lines")
		}
		found = true
		if len(fs) < 5 {
			return CPUTimes{}, 0, fmt.Errorf("parsing /proc/stat: cpu line has %d fields, want at least 5", len(fs))
		}
		dst := [8]*float64{&times.User, &times.Nice, &times.System, &times.Idle, &times.IOWait, &times.IRQ, &times.SoftIRQ, &times.Steal}
		for i, p := range dst {
			if 1+i >= len(fs) {
				break
			}
			v, err := parseUint(fs[1+i])
			if err != nil {
				return CPUTimes{}, 0, fmt.Errorf("parsing /proc/stat: cpu %s %q: %w", CPUModes[i], fs[1+i], err)
			}
			*p = float64(v) / userHZ
		}
	}
	if !found {
		return CPUTimes{}, 0, fmt.Errorf("parsing /proc/stat: no cpu line")
	}
	return times, cores, nil
}
