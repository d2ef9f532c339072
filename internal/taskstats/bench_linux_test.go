//go:build linux

package taskstats

import (
	"os/exec"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// mapResolver is a resolver that costs a map lookup, so the benchmark measures this package.
type mapResolver map[uint32]containers.ID

func (m mapResolver) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	id, ok := m[pid]
	return id, ok
}

// spawnSleepers starts n sleep processes attributed to one container and kills them at cleanup.
func spawnSleepers(b *testing.B, n int) mapResolver {
	b.Helper()
	res := mapResolver{}
	const ctr containers.ID = "/bench/sleepers"
	cmds := make([]*exec.Cmd, 0, n)
	b.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	})
	for range n {
		c := exec.Command("sleep", "600")
		if err := c.Start(); err != nil {
			b.Fatalf("starting sleeper %d: %v", len(cmds), err)
		}
		cmds = append(cmds, c)
		res[uint32(c.Process.Pid)] = ctr
	}
	return res
}

// BenchmarkCollect2000 is one collection over 2,000 live processes in a container (steady
// state: every process already followed). ns/process is the figure with a 20 µs goal.
func BenchmarkCollect2000(b *testing.B) {
	testutil.RequireRoot(b)
	const n = 2000
	res := spawnSleepers(b, n)
	c, err := NewCollector(DefaultConfig(), res, zap.NewNop())
	testutil.SkipUnlessPrivileged(b, err == nil, "taskstats collector: %v", err)
	defer c.Close()

	first := time.Now()
	if err := c.Collect(time.Now()); err != nil {
		b.Fatal(err)
	}
	firstNs := float64(time.Since(first).Nanoseconds()) / n
	if got := c.Status().LastCollect.Followed; got != n {
		b.Fatalf("followed %d processes, want %d", got, n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Collect(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/process")
	b.ReportMetric(firstNs, "first-ns/process") // every process new: start time read, resolver
	if d, ok := c.ContainerDelays("/bench/sleepers"); !ok {
		b.Fatalf("no totals: %v", d)
	}
}
