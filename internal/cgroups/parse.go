package cgroups

import (
	"bytes"
	"fmt"
	"strconv"
)

// The parsers below take a cgroup file's bytes and never allocate per line: a collection
// cycle parses thousands of these files.

// forEachLine calls fn for every non-empty line with its 1-based number.
func forEachLine(data []byte, fn func(n int, line []byte) error) error {
	n := 0
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		n++
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return nil
}

// parseKeyed parses "key value" lines (cpu.stat, memory.stat, v1 cpu.stat) and calls fn for
// each; values are unsigned decimal.
func parseKeyed(data []byte, fn func(key []byte, val uint64)) error {
	return forEachLine(data, func(n int, line []byte) error {
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			return fmt.Errorf("line %d: want \"key value\", got %q", n, truncate(line))
		}
		v, err := parseUint(bytes.TrimSpace(line[sp+1:]))
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		fn(line[:sp], v)
		return nil
	})
}

// parseSingleUint parses a file holding one number (cpuacct.usage, memory.limit_in_bytes,
// cpu.cfs_quota_us may be "-1": reported as ok=false, no limit). "max" is also ok=false.
func parseSingleUint(data []byte) (val uint64, ok bool, err error) {
	s := bytes.TrimSpace(data)
	if string(s) == "max" || string(s) == "-1" {
		return 0, false, nil
	}
	v, err := parseUint(s)
	if err != nil {
		return 0, false, err
	}
	return v, true, nil
}

// parseCPUMax parses cgroup v2 cpu.max: "<quota|max> <period>".
func parseCPUMax(data []byte) (quota, period uint64, limited bool, err error) {
	s := bytes.TrimSpace(data)
	sp := bytes.IndexByte(s, ' ')
	if sp < 0 {
		return 0, 0, false, fmt.Errorf("cpu.max: want \"quota period\", got %q", truncate(s))
	}
	period, err = parseUint(s[sp+1:])
	if err != nil {
		return 0, 0, false, fmt.Errorf("cpu.max period: %w", err)
	}
	if string(s[:sp]) == "max" {
		return 0, period, false, nil
	}
	quota, err = parseUint(s[:sp])
	if err != nil {
		return 0, 0, false, fmt.Errorf("cpu.max quota: %w", err)
	}
	return quota, period, period > 0, nil
}

// parsePSI parses a pressure file: "some avg10=… avg60=… avg300=… total=<µs>" and, except for
// cpu.pressure on old kernels, a "full …" line. Totals are in microseconds.
func parsePSI(data []byte) (someUsec, fullUsec uint64, err error) {
	err = forEachLine(data, func(n int, line []byte) error {
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return fmt.Errorf("line %d: want \"some|full avg10=… total=…\", got %q", n, truncate(line))
		}
		kind := line[:sp]
		i := bytes.Index(line, []byte(" total="))
		if i < 0 {
			return fmt.Errorf("line %d: no total= in %q", n, truncate(line))
		}
		rest := line[i+len(" total="):]
		if j := bytes.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		v, err := parseUint(rest)
		if err != nil {
			return fmt.Errorf("line %d: total: %w", n, err)
		}
		switch string(kind) {
		case "some":
			someUsec = v
		case "full":
			fullUsec = v
		default:
			return fmt.Errorf("line %d: unknown pressure kind %q", n, truncate(kind))
		}
		return nil
	})
	return someUsec, fullUsec, err
}

// deviceCounters are one block device's counters as the kernel reports them.
type deviceCounters struct {
	Major, Minor                           uint32
	Reads, Writes, ReadBytes, WrittenBytes uint64
}

// parseIOStat parses cgroup v2 io.stat: "maj:min rbytes=N wbytes=N rios=N wios=N dbytes=N
// dios=N". Unknown keys are ignored (kernels add them). Results are appended to dst.
func parseIOStat(data []byte, dst []deviceCounters) ([]deviceCounters, error) {
	err := forEachLine(data, func(n int, line []byte) error {
		fields := line
		sp := bytes.IndexByte(fields, ' ')
		devField := fields
		if sp >= 0 {
			devField, fields = fields[:sp], fields[sp+1:]
		} else {
			fields = nil
		}
		maj, minor, err := parseDevice(devField)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		d := deviceCounters{Major: maj, Minor: minor}
		for len(fields) > 0 {
			var f []byte
			if i := bytes.IndexByte(fields, ' '); i >= 0 {
				f, fields = fields[:i], fields[i+1:]
			} else {
				f, fields = fields, nil
			}
			if len(f) == 0 {
				continue
			}
			eq := bytes.IndexByte(f, '=')
			if eq <= 0 {
				return fmt.Errorf("line %d: want key=value, got %q", n, truncate(f))
			}
			v, err := parseUint(f[eq+1:])
			if err != nil {
				return fmt.Errorf("line %d: %s: %w", n, f[:eq], err)
			}
			switch string(f[:eq]) {
			case "rbytes":
				d.ReadBytes = v
			case "wbytes":
				d.WrittenBytes = v
			case "rios":
				d.Reads = v
			case "wios":
				d.Writes = v
			}
		}
		dst = append(dst, d)
		return nil
	})
	return dst, err
}

// parseBlkio parses a cgroup v1 blkio.throttle.io_serviced or io_service_bytes file:
// "maj:min Read|Write|Sync|Async|Discard|Total N" lines and a final "Total N". It calls fn
// with the Read and Write values of each device.
func parseBlkio(data []byte, fn func(maj, minor uint32, read bool, v uint64)) error {
	return forEachLine(data, func(n int, line []byte) error {
		f1 := bytes.IndexByte(line, ' ')
		if f1 < 0 {
			return fmt.Errorf("line %d: want \"maj:min Op N\", got %q", n, truncate(line))
		}
		if string(line[:f1]) == "Total" {
			if _, err := parseUint(line[f1+1:]); err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			return nil
		}
		maj, minor, err := parseDevice(line[:f1])
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		rest := line[f1+1:]
		f2 := bytes.IndexByte(rest, ' ')
		if f2 < 0 {
			return fmt.Errorf("line %d: want \"maj:min Op N\", got %q", n, truncate(line))
		}
		v, err := parseUint(rest[f2+1:])
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		switch string(rest[:f2]) {
		case "Read":
			fn(maj, minor, true, v)
		case "Write":
			fn(maj, minor, false, v)
		}
		return nil
	})
}

func parseDevice(b []byte) (maj, minor uint32, err error) {
	c := bytes.IndexByte(b, ':')
	if c < 0 {
		return 0, 0, fmt.Errorf("device %q is not maj:min", truncate(b))
	}
	ma, err := strconv.ParseUint(string(b[:c]), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("device %q: bad major", truncate(b))
	}
	mi, err := strconv.ParseUint(string(b[c+1:]), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("device %q: bad minor", truncate(b))
	}
	return uint32(ma), uint32(mi), nil
}

// parseUint parses an unsigned decimal without allocating.
func parseUint(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("empty number")
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not an unsigned number", truncate(b))
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("%q overflows uint64", truncate(b))
		}
		v = v*10 + d
	}
	return v, nil
}
