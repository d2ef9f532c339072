package nodestats

import (
	"bytes"
	"fmt"
)

// Memory is what /proc/meminfo says of the machine's memory, in bytes.
type Memory struct {
	TotalBytes, FreeBytes, AvailableBytes, CachedBytes uint64
}

// parseMeminfo reads MemTotal, MemFree, MemAvailable and Cached (page cache only, without
// Buffers or SReclaimable, as coroot-node-agent reports it).
//
// Unit: /proc/meminfo's "kB" is KiB (the kernel shifts pages by PAGE_SHIFT-10).
// coroot-node-agent multiplies by 1000 and so reports 2.4% less than the machine has; this
// package multiplies by 1024, so node memory and container memory (cgroup bytes) compare
// truthfully. Ratios Coroot draws (used/total) are the same either way.
//
// MemAvailable exists since Linux 3.14; on older kernels it stays 0. MemTotal is required.
func parseMeminfo(b []byte) (Memory, error) {
	var (
		m        Memory
		hasTotal bool
		fs       [][]byte
	)
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		var dst *uint64
		switch string(line[:colon]) {
		case "MemTotal":
			dst, hasTotal = &m.TotalBytes, true
		case "MemFree":
			dst = &m.FreeBytes
		case "MemAvailable":
			dst = &m.AvailableBytes
		case "Cached":
			dst = &m.CachedBytes
		default:
			continue
		}
		fs = fields(line[colon+1:], fs)
		if len(fs) == 0 || len(fs) > 2 {
			return Memory{}, fmt.Errorf("parsing /proc/meminfo: line %q", line)
		}
		v, err := parseUint(fs[0])
		if err != nil {
			return Memory{}, fmt.Errorf("parsing /proc/meminfo: %q: %w", line, err)
		}
		if len(fs) == 2 {
			if string(fs[1]) != "kB" {
				return Memory{}, fmt.Errorf("parsing /proc/meminfo: unit %q in %q", fs[1], line)
			}
			if v > (1<<64-1)/1024 {
				return Memory{}, fmt.Errorf("parsing /proc/meminfo: %q overflows", line)
			}
			v *= 1024
		}
		*dst = v
	}
	if !hasTotal {
		return Memory{}, fmt.Errorf("parsing /proc/meminfo: no MemTotal")
	}
	return m, nil
}
