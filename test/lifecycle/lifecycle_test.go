// Package lifecycle checks that every container that starts after the agent is reported
// completely and with its own numbers (issue 12), against the real runtimes of the testbed
// (dockerd with its cgroupfs driver, containerd with CRI in the kubepods cgroupfs layout).
//
// The agent is the codexray receiver built by its factory, with its default configuration and
// a sink in place of the pipeline, running in this test process. It starts first; then the
// scenarios create containers in parallel: one after another, several at the same instant,
// docker restart, removal and re-creation under the same name, an OOM kill restarted by its
// policy, a host-network client of a loopback listener, a CRI pod with three containers and a
// CRI container restarted in place (attempt 1). Within two collections after each instance
// started, every family it should have must be there (info, restarts, CPU usage, limit and
// throttling, memory rss, cache and limit, CPU delay, TCP connects where it connects, OOM
// kills after one, log counts within two collections after the next log discovery), and the
// values must match what the kernel's files for the container's cgroup show around the
// moment the agent read them.
//
// Running the receiver in-process rather than the built distribution: the same code with the
// same defaults, but the test sees every collection as pmetric with its timestamp (so "within
// two collections" is counted exactly, not inferred from scrape times) and the data points'
// start timestamps. test/e2e covers the distribution's wiring; the churn soak (test/soak,
// `make soak`) runs the distribution as a separate process, where RSS, CPU time, descriptors
// and goroutines are the agent's own.
package lifecycle

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// collectionInterval is the agent's collection_interval in this suite.
const collectionInterval = time.Second

func TestContainerLifecycle(t *testing.T) {
	testutil.RequireDocker(t)
	testutil.RequireContainerd(t)
	a := startAgent(t, collectionInterval)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := a.latest(ctx, time.Time{})
	if first == nil {
		t.Fatal("the agent collected nothing within 30 s")
	}
	// A source that could not start would make families missing for a reason that is not the
	// lifecycle; say so first.
	for deadline := time.Now().Add(10 * time.Second); ; {
		states := a.latest(ctx, time.Time{}).sourceStates()
		bad := false
		for _, src := range []string{"ebpf", "taskstats", "containers", "logs"} {
			if s := states[src]; s != "running" && s != "degraded" {
				bad = true
				if time.Now().After(deadline) {
					t.Fatalf("source %s is %q (want running or degraded): %v", src, s, states)
				}
			}
		}
		if !bad {
			break
		}
		time.Sleep(collectionInterval)
	}

	t.Run("lifecycles", func(t *testing.T) {
		for _, group := range []struct {
			prefix    string
			scenarios map[string]func(t *testing.T)
		}{{"docker/", dockerScenarios(a)}, {"cri/", criScenarios(a)}} {
			names := make([]string, 0, len(group.scenarios))
			for name := range group.scenarios {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				fn := group.scenarios[name]
				t.Run(group.prefix+name, func(t *testing.T) {
					t.Parallel()
					fn(t)
				})
			}
		}
	})
	t.Logf("lifecycle summary:\n%s", summary())
}
