package lifecycle

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Metric names as the receiver emits them (OTel names; Prometheus adds _total and units).
const (
	mInfo        = "container.info"
	mRestarts    = "container.restarts"
	mCPUUsage    = "container.resources.cpu.usage"
	mCPULimit    = "container.resources.cpu.limit_cores"
	mThrottled   = "container.resources.cpu.throttled"
	mRSS         = "container.resources.memory.rss"
	mCache       = "container.resources.memory.cache"
	mMemLimit    = "container.resources.memory.limit"
	mCPUDelay    = "container.resources.cpu.delay"
	mLogMessages = "container.log.messages"
	mConnects    = "container.net.tcp.successful_connects"
	mOOMKills    = "container.oom_kills"
)

// instance is one run of a container (a restart is a new instance): what the test gave the
// runtime, and what every collection must therefore show.
type instance struct {
	name    string // for messages
	id      string // the agent's codexray.container.id
	cgroup  string // its cgroup path below each hierarchy root
	pid     int
	started time.Time // when the runtime started its process
	// notBefore is when the test asked the runtime for this instance (or, after a restart by
	// policy, when the previous run ended): its cgroup cannot be older. The runtime creates the
	// cgroup before it starts the process, under load seconds before.
	notBefore time.Time

	memLimit uint64  // -m / memory_limit_in_bytes; 0 for none
	cpuLimit float64 // --cpus / quota÷period; 0 for none
	logs     bool    // it writes to stdout
	tcp      string  // a destination it connects to ("127.0.0.1:port"), "" for none
	oom      bool    // an earlier instance was OOM-killed

	kernel *sampler
}

// families lists the metrics every collection of the instance must carry, and whether each
// one may come one log discovery later than the others.
func (in *instance) families() (now, afterDiscovery []string) {
	now = []string{mInfo, mRestarts, mCPUUsage, mThrottled, mRSS, mCache, mCPUDelay}
	if in.cpuLimit > 0 {
		now = append(now, mCPULimit)
	}
	if in.memLimit > 0 {
		now = append(now, mMemLimit)
	}
	if in.tcp != "" {
		now = append(now, mConnects)
	}
	if in.oom {
		now = append(now, mOOMKills)
	}
	if in.logs {
		afterDiscovery = append(afterDiscovery, mLogMessages)
	}
	return now, afterDiscovery
}

func (in *instance) missing(b *batch, afterDiscovery bool) []string {
	now, later := in.families()
	if afterDiscovery {
		now = append(now, later...)
	}
	c := b.containers[in.id]
	if c != nil && c.starts[mCPUUsage].Before(in.notBefore) {
		// Still an earlier instance under the same ID (a Kubernetes container restarted, until
		// its runtime has described the new one): its final numbers, not this instance's.
		c = nil
	}
	var out []string
	for _, m := range now {
		if c == nil || !c.has(m) {
			out = append(out, m)
		}
	}
	return out
}

// verdict is how one instance fared: how many collections it took to be complete.
type verdict struct {
	name        string
	collections int // 1 or 2 when it met the bar; 0 when it never did within the wait
	missing     []string
}

// awaitComplete checks the bar of issue 12: within two collections after the instance
// started, every family it should have is there, with the container's own values; and log
// counts within two collections after the log discovery that follows its start. It returns
// the batch that was complete, or nil after reporting the failure.
func (a *agent) awaitComplete(t *testing.T, in *instance) *batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*a.interval+10*time.Second)
	defer cancel()
	bs := a.batchesAfter(ctx, in.started, 2)
	if len(bs) < 2 {
		t.Errorf("%s: fewer than two collections after it started (%d)", in.name, len(bs))
		return nil
	}
	var complete *batch
	for i, b := range bs[:2] {
		if miss := in.missing(b, false); len(miss) == 0 {
			complete = b
			record(in.name, i+1, nil)
			break
		} else if i == 1 {
			record(in.name, 0, miss)
			// Say how long it would have taken, if at all.
			late := a.waitFor(b.at, 10*a.interval, func(b *batch) bool { return len(in.missing(b, false)) == 0 })
			when := "not within 10 more collections"
			if late != nil {
				when = fmt.Sprintf("only at %s", late)
			}
			t.Errorf("%s (%s, cgroup %s): started %s; the second collection after its start (%s) lacks %v; complete %s",
				in.name, in.id, in.cgroup, in.started.Format("15:04:05.000"), b, miss, when)
			return nil
		}
	}
	in.checkValues(t, complete)
	// And it stays complete, with its own numbers, at the collections that follow.
	if later := a.batchesAfter(ctx, complete.at, 2); len(later) < 2 {
		t.Errorf("%s: fewer than two collections after %s", in.name, complete)
	} else if miss := in.missing(later[1], false); len(miss) > 0 {
		t.Errorf("%s: complete at %s, but %s lacks %v", in.name, complete, later[1], miss)
	} else {
		in.checkValues(t, later[1])
	}
	if in.logs {
		lbs := a.batchesAfter(ctx, in.started.Add(a.cfg.Logs.DiscoveryInterval), 2)
		if len(lbs) < 2 || (len(in.missing(lbs[0], true)) > 0 && len(in.missing(lbs[1], true)) > 0) {
			t.Errorf("%s: no log counts within two collections after a log discovery", in.name)
		}
	}
	return complete
}

// checkValues compares the instance's points in b with the kernel's files for its cgroup
// around the moment the agent read them.
func (in *instance) checkValues(t *testing.T, b *batch) {
	t.Helper()
	c := b.containers[in.id]
	lo, hasLo, hi, window := in.kernel.bracket(in.started, b.at, b.received)
	if !hi.ok {
		t.Errorf("%s: no kernel reading of %s after %s", in.name, in.cgroup, b)
		return
	}
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s (%s) at %s: "+format, append([]any{in.name, in.cgroup, b}, args...)...)
	}
	// Limits: what the runtime was given, as the kernel shows it.
	if in.cpuLimit > 0 {
		if got := c.values[mCPULimit]; !near(got, in.cpuLimit) || !near(got, hi.cpuLimit()) {
			errorf("cpu limit %v cores, given %v, kernel quota/period %d/%d", got, in.cpuLimit, hi.quota, hi.period)
		}
	}
	if in.memLimit > 0 {
		if got := c.values[mMemLimit]; uint64(got) != in.memLimit || uint64(got) != hi.memLimit {
			errorf("memory limit %v bytes, given %d, kernel memory limit %d", got, in.memLimit, hi.memLimit)
		}
	}
	// Counters: between the kernel's reading before the collection began and the one after the
	// batch arrived (the agent read the files in between). A new cgroup starts from zero.
	for _, cmp := range []struct {
		metric string
		k      func(kernelReading) float64
	}{
		{mCPUUsage, func(k kernelReading) float64 { return k.usage }},
		{mThrottled, func(k kernelReading) float64 { return k.throttled }},
	} {
		got := c.values[cmp.metric]
		floor := 0.0
		if hasLo {
			floor = cmp.k(lo)
		}
		if got < floor-1e-6 || got > cmp.k(hi)+1e-6 {
			errorf("%s = %.6f s, the kernel showed %.6f s before and %.6f s after", cmp.metric, got, floor, cmp.k(hi))
		}
	}
	// Gauges: within what the kernel showed around the reading, give or take a forked helper
	// (a loop's sleep) that may come and go between two samples.
	for _, cmp := range []struct {
		metric string
		k      func(kernelReading) uint64
	}{
		{mRSS, func(k kernelReading) uint64 { return k.rss }},
		{mCache, func(k kernelReading) uint64 { return k.cache }},
	} {
		got := c.values[cmp.metric]
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, k := range window {
			lo, hi = math.Min(lo, float64(cmp.k(k))), math.Max(hi, float64(cmp.k(k)))
		}
		slack := 1<<20 + 0.1*hi
		if got < lo-slack || got > hi+slack {
			errorf("%s = %.0f bytes, the kernel showed %.0f..%.0f around the reading", cmp.metric, got, lo, hi)
		}
	}
	t.Logf("%s at %s: usage %.4f s (kernel %.4f..%.4f), throttled %.4f s (kernel %.4f, %d periods), rss %.0f (kernel %d), cache %.0f (kernel %d), limits %v cores %v bytes (kernel %d/%d, %d)",
		in.name, b, c.values[mCPUUsage], lo.usage, hi.usage, c.values[mThrottled], hi.throttled, hi.nrThrottled,
		c.values[mRSS], hi.rss, c.values[mCache], hi.cache, c.values[mCPULimit], c.values[mMemLimit], hi.quota, hi.period, hi.memLimit)
	// The cumulative cgroup counters start with this instance, not with an earlier one.
	if s := c.starts[mCPUUsage]; in.notBefore.IsZero() || s.Before(in.notBefore) {
		errorf("cpu usage starts at %s, before this instance was asked for (%s)", s.Format("15:04:05.000"), in.notBefore.Format("15:04:05.000"))
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// The summary of every instance checked, printed at the end of the suite.
var (
	verdictsMu sync.Mutex
	verdicts   []verdict
)

func record(name string, collections int, missing []string) {
	verdictsMu.Lock()
	defer verdictsMu.Unlock()
	verdicts = append(verdicts, verdict{name: name, collections: collections, missing: missing})
}

func summary() string {
	verdictsMu.Lock()
	defer verdictsMu.Unlock()
	sort.Slice(verdicts, func(i, j int) bool { return verdicts[i].name < verdicts[j].name })
	var b strings.Builder
	n := [3]int{}
	for _, v := range verdicts {
		n[v.collections]++
		switch v.collections {
		case 0:
			fmt.Fprintf(&b, "  %s: incomplete after two collections, lacking %v\n", v.name, v.missing)
		case 2:
			fmt.Fprintf(&b, "  %s: complete at the second collection\n", v.name)
		}
	}
	fmt.Fprintf(&b, "  %d instances: %d complete at the first collection after their start, %d at the second, %d not within two",
		len(verdicts), n[1], n[2], n[0])
	return b.String()
}

// awaitValue checks a value that comes with the runtime's description of the container (its
// restart count), not from its cgroups: it waits for it up to six collections after b, since
// the registry asks the runtime in the background and dockerd answers in seconds under load.
func (a *agent) awaitValue(t *testing.T, in *instance, b *batch, metric string, want float64) {
	t.Helper()
	var got []float64
	for _, c := range append([]*batch{b}, a.batchesAfterTimeout(b.at, 6)...) {
		v := c.containers[in.id].values[metric]
		if v == want {
			return
		}
		got = append(got, v)
	}
	t.Errorf("%s: %s = %v at the collection where it was complete and the six after, want %v", in.name, metric, got, want)
}

func (a *agent) batchesAfterTimeout(t time.Time, n int) []*batch {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n+5)*a.interval+5*time.Second)
	defer cancel()
	bs := a.batchesAfter(ctx, t, n)
	return bs[:min(n, len(bs))]
}
