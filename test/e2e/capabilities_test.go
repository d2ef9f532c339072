package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// capability numbers from linux/capability.h, for reading /proc/<pid>/status.
var capabilityBits = map[string]uint{
	"DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_RESOURCE": 24,
	"NET_ADMIN": 12, "PERFMON": 38, "BPF": 39,
}

// TestAgentRunsWithDocumentedCapabilities runs the distribution as root's uid but with only
// the documented capability set (setpriv from util-linux lowers the bounding set; an exec as
// uid 0 then gets exactly that set, as a container with `drop: [ALL]` and `add: [...]` does),
// and demands what TestOTLPPushToBackend demands: node_info, every wired source running, and
// each source's metrics for a docker workload — TCP connects and OOM kills included once the
// tracer is wired. The shipped config/default.yaml is the config.
func TestAgentRunsWithDocumentedCapabilities(t *testing.T) {
	testutil.RequireDocker(t)
	bin := distBinary(t)
	setpriv, err := exec.LookPath("setpriv")
	testutil.SkipUnlessPrivileged(t, err == nil, "setpriv (util-linux) not installed: %v", err)
	sources := sourcesInTree(t)

	// Capabilities this machine does not grant at all (CAP_SYS_RESOURCE here) cannot be
	// granted to the agent either; the test says which ones it ran without.
	ours := capabilitySet(t, "self")
	var granted []string
	for _, c := range agentCapabilities {
		if ours&(1<<capabilityBits[c]) != 0 {
			granted = append(granted, c)
		} else {
			t.Logf("CAP_%s is not in this machine's bounding set; the agent runs without it", c)
		}
	}
	promPort := freePort(t)
	w := startWorkload(t, sources)
	agent := startAgentWithCapabilities(t, setpriv, bin, granted, promPort)

	// The agent really holds only those capabilities (and setpriv exec'd it, so the pid is
	// the agent's).
	var effective uint64
	waitFor(context.Background(), t, "the agent's capability set", 10*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", agent.cmd.Process.Pid))
		if err != nil || filepath.Base(exe) != filepath.Base(bin) {
			return false, fmt.Errorf("pid %d runs %q: %w", agent.cmd.Process.Pid, exe, err)
		}
		effective = capabilitySet(t, strconv.Itoa(agent.cmd.Process.Pid))
		return true, nil
	})
	var want uint64
	for _, c := range granted {
		want |= 1 << capabilityBits[c]
	}
	if effective != want {
		t.Fatalf("agent CapEff = %#x, want %#x (%v)", effective, want, granted)
	}
	for _, c := range []string{"SYS_ADMIN", "DAC_OVERRIDE"} {
		if effective&(1<<capabilityBits[c]) != 0 {
			t.Fatalf("the agent holds CAP_%s", c)
		}
	}

	w.startOOMKill(t, agent, addr(promPort))
	var last []sample
	waitFor(context.Background(), t, "every source running and its metrics under the reduced capability set", 120*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		var err error
		if last, err = scrape(addr(promPort)); err != nil {
			return false, err
		}
		err = checkAgentMetrics(last, sources, w, corootLabels) // config/default.yaml
		return err == nil, err
	})
	t.Logf("sources running with %v: %v", granted, sources)
}

// startAgentWithCapabilities runs the distribution with config/default.yaml (metrics on
// promPort) as uid 0 holding only caps.
func startAgentWithCapabilities(t testing.TB, setpriv, bin string, caps []string, promPort int) *loggedProcess {
	t.Helper()
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + strings.ToLower(c)
	}
	return startLoggedProcess(t, []string{
		"CODEXRAY_PROMETHEUS_ENDPOINT=" + addr(promPort),
		"CODEXRAY_HEALTH_ENDPOINT=" + addr(freePort(t)),
	}, setpriv, "--bounding-set", bounding, "--inh-caps", "-all", "--",
		bin, "--config", filepath.Join(repoRoot(t), "config", "default.yaml"), "--config", testOverlay(t),
		"--set", "receivers::codexray::collection_interval=2s")
}

// TestSourceFailsWithoutItsCapability is the other half of the least-privilege claim: each
// documented capability is needed by the source deploy/README.md says needs it. Without it,
// that source reports failed (and the others keep running).
func TestSourceFailsWithoutItsCapability(t *testing.T) {
	testutil.RequireRoot(t)
	bin := distBinary(t)
	setpriv, err := exec.LookPath("setpriv")
	testutil.SkipUnlessPrivileged(t, err == nil, "setpriv (util-linux) not installed: %v", err)
	sources := sourcesInTree(t)
	ours := capabilitySet(t, "self")

	tests := []struct {
		drop    string
		sources []string // the source, under any of its names
	}{
		{"NET_ADMIN", []string{"taskstats"}},
		{"BPF", tracerNames},
		{"PERFMON", tracerNames},
	}
	ran := 0
	for _, tt := range tests {
		var source string
		for _, n := range tt.sources {
			if slices.Contains(sources, n) {
				source = n
			}
		}
		if source == "" {
			t.Logf("without CAP_%s: no %v source wired yet", tt.drop, tt.sources)
			continue
		}
		ran++
		t.Run("without "+tt.drop, func(t *testing.T) {
			var caps []string
			for _, c := range agentCapabilities {
				if c != tt.drop && ours&(1<<capabilityBits[c]) != 0 {
					caps = append(caps, c)
				}
			}
			promPort := freePort(t)
			agent := startAgentWithCapabilities(t, setpriv, bin, caps, promPort)
			waitFor(context.Background(), t, source+" failed, the other sources running", 30*time.Second, func() (bool, error) {
				agent.requireRunning(t)
				s, err := scrape(addr(promPort))
				if err != nil {
					return false, err
				}
				for _, other := range sources {
					// The others run, possibly degraded (kernel.task_delayacct=0 on this VM).
					wants := []string{"running", "degraded"}
					if other == source {
						wants = []string{"failed"}
					}
					found := 0
					for _, want := range wants {
						found += len(findSamples(s, "codexray_source_status", map[string]string{"source": other, "state": want}))
					}
					if found != 1 {
						return false, fmt.Errorf("source %s is not %v", other, wants)
					}
				}
				return true, nil
			})
		})
	}
	if ran == 0 {
		t.Fatalf("none of the capability-dependent sources is wired (sources: %v)", sources)
	}
}

// capabilitySet reads CapEff of /proc/<pid>/status.
func capabilitySet(t testing.TB, pid string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("CapEff %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%s/status has no CapEff", pid)
	return 0
}
