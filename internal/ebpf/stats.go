package ebpf

import (
	"io"
	"time"

	cebpf "github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramStats is what the kernel counted for one program while BPF statistics were enabled:
// how often it ran and for how long in total (its own instructions and helpers, not the
// tracepoint's dispatch).
type ProgramStats struct {
	Runs    uint64
	Runtime time.Duration
}

// EnableProgramStats makes the kernel count every program's runs and run time until the
// returned Closer is closed. It costs two clock reads per run: for benchmarks and tests.
func EnableProgramStats() (io.Closer, error) {
	c, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, classify("enabling BPF statistics", err)
	}
	return c, nil
}

func programStats(p *cebpf.Program) (ProgramStats, error) {
	st, err := p.Stats()
	if err != nil {
		return ProgramStats{}, err
	}
	return ProgramStats{Runs: st.RunCount, Runtime: st.Runtime}, nil
}
