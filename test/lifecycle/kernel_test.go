package lifecycle

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cgroupRoot is where this VM mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// kernelReading is what the kernel's own files show for one container cgroup at one moment,
// read by the test independently of the agent (no code of the agent is used here).
type kernelReading struct {
	at time.Time
	ok bool // every file below could be read

	usage       float64 // cpuacct.usage (v1) or cpu.stat usage_usec (v2), seconds
	throttled   float64 // cpu.stat throttled_time (v1) or throttled_usec (v2), seconds
	nrThrottled uint64  // cpu.stat nr_throttled
	quota       int64   // cpu.cfs_quota_us (v1) or cpu.max quota (v2); -1 unlimited
	period      int64   // cpu.cfs_period_us or cpu.max period
	rss, cache  uint64  // memory.stat total_rss+total_mapped_file/total_cache (v1) or anon+file_mapped/file (v2): RSS as coroot-node-agent defines it
	memLimit    uint64  // memory.limit_in_bytes or memory.max; 0 unlimited
}

func (k kernelReading) cpuLimit() float64 {
	if k.quota <= 0 || k.period <= 0 {
		return 0
	}
	return float64(k.quota) / float64(k.period)
}

// isV2 reports whether the host mounts a pure cgroup v2 hierarchy at cgroupRoot.
func isV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// readKernel reads a container cgroup's files (path relative to the hierarchy roots).
func readKernel(path string) kernelReading {
	k := kernelReading{at: time.Now(), ok: true}
	fail := func(err error) {
		if err != nil {
			k.ok = false
		}
	}
	if isV2() {
		dir := filepath.Join(cgroupRoot, path)
		st, err := keyed(filepath.Join(dir, "cpu.stat"))
		fail(err)
		k.usage, k.throttled, k.nrThrottled = float64(st["usage_usec"])/1e6, float64(st["throttled_usec"])/1e6, st["nr_throttled"]
		cpuMax, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
		fail(err)
		if f := strings.Fields(string(cpuMax)); len(f) == 2 {
			k.quota, k.period = -1, atoi(f[1])
			if f[0] != "max" {
				k.quota = atoi(f[0])
			}
		}
		ms, err := keyed(filepath.Join(dir, "memory.stat"))
		fail(err)
		k.rss, k.cache = ms["anon"]+ms["file_mapped"], ms["file"]
		lim, err := os.ReadFile(filepath.Join(dir, "memory.max"))
		fail(err)
		if s := strings.TrimSpace(string(lim)); s != "max" {
			k.memLimit = uint64(atoi(s))
		}
		return k
	}
	usage, err := os.ReadFile(filepath.Join(cgroupRoot, "cpuacct", path, "cpuacct.usage"))
	fail(err)
	k.usage = float64(atoi(strings.TrimSpace(string(usage)))) / 1e9
	st, err := keyed(filepath.Join(cgroupRoot, "cpu", path, "cpu.stat"))
	fail(err)
	k.throttled, k.nrThrottled = float64(st["throttled_time"])/1e9, st["nr_throttled"]
	q, err := os.ReadFile(filepath.Join(cgroupRoot, "cpu", path, "cpu.cfs_quota_us"))
	fail(err)
	p, err := os.ReadFile(filepath.Join(cgroupRoot, "cpu", path, "cpu.cfs_period_us"))
	fail(err)
	k.quota, k.period = atoi(strings.TrimSpace(string(q))), atoi(strings.TrimSpace(string(p)))
	ms, err := keyed(filepath.Join(cgroupRoot, "memory", path, "memory.stat"))
	fail(err)
	k.rss, k.cache = ms["total_rss"]+ms["total_mapped_file"], ms["total_cache"]
	lim, err := os.ReadFile(filepath.Join(cgroupRoot, "memory", path, "memory.limit_in_bytes"))
	fail(err)
	if v := uint64(atoi(strings.TrimSpace(string(lim)))); v < 1<<62 {
		k.memLimit = v
	}
	return k
}

func keyed(file string) (map[string]uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// cgroupOf returns the cgroup path of a process as its memory (v1) or unified (v2) line says.
func cgroupOf(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if (isV2() && f[0] == "0") || (!isV2() && f[1] == "memory") {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("/proc/%d/cgroup has no memory line: %q", pid, data)
}

// sampler reads a container cgroup's files every 50 ms while the container lives, so that a
// value the agent read at some moment can be bracketed by what the kernel showed just before
// and just after.
type sampler struct {
	path string
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []kernelReading
}

func startSampler(t *testing.T, path string) *sampler {
	t.Helper()
	s := &sampler{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if k := readKernel(path); k.ok {
				s.mu.Lock()
				s.samples = append(s.samples, k)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sampler) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// bracket returns the last reading taken at or before from (lo, false when there is none
// since since) and the first one taken at or after to (waiting for it).
func (s *sampler) bracket(since, from, to time.Time) (lo kernelReading, hasLo bool, hi kernelReading, window []kernelReading) {
	for deadline := time.Now().Add(5 * time.Second); ; {
		s.mu.Lock()
		var hasHi bool
		window = window[:0]
		for _, k := range s.samples {
			if k.at.Before(since) {
				continue
			}
			if !k.at.After(from) {
				lo, hasLo = k, true
				window = window[:0]
				window = append(window, k)
				continue
			}
			window = append(window, k)
			if !k.at.Before(to) {
				hi, hasHi = k, true
				break
			}
		}
		s.mu.Unlock()
		if hasHi || time.Now().After(deadline) {
			return lo, hasLo, hi, window
		}
		time.Sleep(20 * time.Millisecond)
	}
}
