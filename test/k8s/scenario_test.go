//go:build e2ek8s

package k8s

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

	"go.yaml.in/yaml/v3"

	"github.com/codexray/codexray-node-agent/internal/testutil"
	"github.com/codexray/codexray-node-agent/test/k8s/cluster"
)

// The scenario's agent settings: short enough that a rollout's old pods disappear and new
// ones appear within a few minutes.
const (
	collectionInterval = 5 * time.Second
	retention          = 20 * time.Second
	workloadNS         = "cxk8s-e2e"
	agentNS            = "codexray"
	agentDaemonSet     = "codexray-node-agent"
)

// TestNodeAgentOnKubernetes runs deploy/kubernetes/codexray.yaml on a real single-node
// cluster, with the agent image built from the distribution, and checks what the agent reports
// about pods the kubelet makes: a Deployment rolled out to a new ReplicaSet (Guaranteed QoS),
// an OOM-killed pod restarted by the kubelet (Burstable), a Job, a pod logging warnings and
// errors (BestEffort), and a client reaching a server pod directly and through a ClusterIP
// Service. Everything is asserted from the agent's own output: OTLP pushed to a backend the
// test runs, and the agent's Prometheus port on the node.
func TestNodeAgentOnKubernetes(t *testing.T) {
	testutil.RequireRoot(t)
	binDir := os.Getenv("CODEXRAY_K8S_BIN")
	testutil.SkipUnlessPrivileged(t, binDir != "", "CODEXRAY_K8S_BIN is not set: `make e2e-k8s` builds the Kubernetes binaries and sets it")
	root := RepoRoot()
	dist := os.Getenv("CODEXRAY_DIST")
	if dist == "" {
		dist = filepath.Join(root, "_build", "otelcol-codexray")
	}
	_, err := os.Stat(dist)
	testutil.SkipUnlessPrivileged(t, err == nil, "distribution not built (make build): %v", err)
	for _, tool := range []string{"ctr", "containerd", "busybox", "ip", "iptables", "ldd", "ldconfig"} {
		_, err := exec.LookPath(tool)
		testutil.SkipUnlessPrivileged(t, err == nil, "%s not installed (scripts/install-deps.sh): %v", tool, err)
	}
	_, err = os.Stat("/usr/lib/cni/bridge")
	testutil.SkipUnlessPrivileged(t, err == nil, "CNI plugins not installed (containernetworking-plugins): %v", err)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	backend, err := StartBackend()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Stop)

	t0 := time.Now()
	c, err := cluster.Start(ctx, cluster.Config{BinDir: binDir, Logf: t.Logf})
	if err != nil {
		t.Fatalf("starting the cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			diagnose(t, c)
			dump := filepath.Join(c.LogDir(), "otlp.jsonl")
			if err := backend.Dump(dump); err != nil {
				t.Logf("dumping what the backend received: %v", err)
			} else {
				t.Logf("what the backend received: %s", dump)
			}
		}
		c.Stop()
	})
	t.Logf("cluster up in %s", time.Since(t0).Round(time.Second))
	api := c.API()

	// The agent: the image, then the shipped manifest adapted to this node.
	m, err := LoadPlainManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	img, err := AgentImage(root, dist, Dig[string](m.Container, "image"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	granted := adaptToNode(t, m, backend.Addr, c.Root())
	if err := api.Create(ctx, m.Objects...); err != nil {
		t.Fatalf("applying %s: %v", DaemonSetManifest, err)
	}
	agent := waitForAgent(ctx, t, api)
	checkAgentPrivileges(t, agent, granted)
	t.Logf("agent pod %s Ready", agent.Metadata.Name)

	// The workloads.
	w := startWorkloads(ctx, t, api)

	// Everything the agent must say about them, from its OTLP output and its Prometheus port.
	// A missing piece of the report fails the test but does not stop it: the rollout's
	// checks run too, so that one run shows everything that is wrong.
	expect(ctx, t, "the agent's report of every workload pod", 3*time.Minute, func() error {
		return checkReport(ctx, api, backend, w)
	})
	expect(ctx, t, "the agent's Prometheus port", time.Minute, func() error {
		return checkPrometheus(w)
	})

	// Rollout: a new ReplicaSet replaces both web pods.
	rollout(ctx, t, api, backend, w)
}

// adaptToNode changes what this node needs changed in the shipped manifest, and nothing else:
//   - the OTLP endpoint is the test's backend (the agent shares the node's network namespace,
//     where the backend listens on loopback), and collections come every 5 s;
//   - the node's containerd socket and pod log directory are not at the defaults (see
//     cluster.ContainerdSocket and cluster.PodLogsDir for why);
//   - containers.retention is 20 s, so that a rollout's old pods leave the output quickly;
//   - no cloud metadata lookups (tests never dial a metadata address); patterns flush every 5 s;
//   - the agent's read offsets are kept below the cluster's root, which Stop removes;
//   - a capability this machine does not have at all cannot be granted to a pod (runc: "unable
//     to apply caps: operation not permitted"): it is left out, and the test says so. It
//     returns the capabilities granted.
func adaptToNode(t *testing.T, m *PlainManifest, otlp, root string) []string {
	t.Helper()
	setEnv := func(name, value string) {
		for _, e := range Dig[[]any](m.Container, "env") {
			if em := e.(map[string]any); em["name"] == name {
				em["value"] = value
				return
			}
		}
		t.Fatalf("the manifest has no env %s", name)
	}
	setEnv("CODEXRAY_OTLP_ENDPOINT", otlp)
	setEnv("CODEXRAY_COLLECTION_INTERVAL", collectionInterval.String())

	recv := Dig[map[string]any](m.Config, "receivers", "codexray")
	containers := Dig[map[string]any](recv, "containers")
	containers["cri_sockets"] = []any{"/host" + cluster.ContainerdSocket}
	containers["retention"] = retention.String()
	Dig[map[string]any](recv, "logs", "cri")["pods_dir"] = cluster.PodLogsDir
	Dig[map[string]any](recv, "logs")["patterns_flush_interval"] = "5s"
	recv["cloud"] = map[string]any{"enabled": false}
	cfg, err := yaml.Marshal(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	Dig[map[string]any](m.ConfigMap, "data")["config.yaml"] = string(cfg)

	for _, v := range Dig[[]any](m.PodSpec, "volumes") {
		if vm := v.(map[string]any); vm["name"] == "storage" {
			Dig[map[string]any](vm, "hostPath")["path"] = filepath.Join(root, "agent-storage")
		}
	}

	caps := Dig[map[string]any](m.Container, "securityContext", "capabilities")
	bounding := capabilitySet(t, "self", "CapBnd")
	var granted []any
	var names []string
	for _, c := range caps["add"].([]any) {
		name := c.(string)
		bit, ok := capabilityBits[name]
		if !ok {
			t.Fatalf("capability %s: the test does not know its number", name)
		}
		if bounding&(1<<bit) == 0 {
			t.Logf("CAP_%s is not in this machine's bounding set: the agent pod runs without it", name)
			continue
		}
		granted = append(granted, name)
		names = append(names, name)
	}
	caps["add"] = granted
	return names
}

// capabilityBits are linux/capability.h's numbers of the capabilities the manifest names.
var capabilityBits = map[string]uint{
	"DAC_READ_SEARCH": 2, "NET_ADMIN": 12, "SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39,
}

// capabilitySet reads a capability mask (CapEff, CapBnd...) of a process from /proc.
func capabilitySet(t *testing.T, pid, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%s/status", field, pid)
	return 0
}

// waitForAgent waits until the DaemonSet's one pod is Ready: its readiness probe asks the
// collector's health_check.
func waitForAgent(ctx context.Context, t *testing.T, api *cluster.Client) cluster.Pod {
	t.Helper()
	var pod cluster.Pod
	eventually(ctx, t, "the agent's DaemonSet pod to be Ready", 3*time.Minute, func() error {
		var ds struct {
			Status struct {
				DesiredNumberScheduled int `json:"desiredNumberScheduled"`
				NumberReady            int `json:"numberReady"`
			} `json:"status"`
		}
		if err := api.Get(ctx, "/apis/apps/v1/namespaces/"+agentNS+"/daemonsets/"+agentDaemonSet, &ds); err != nil {
			return err
		}
		pods, err := api.Pods(ctx, agentNS, "app.kubernetes.io/name=codexray-node-agent")
		if err != nil {
			return err
		}
		if len(pods) != 1 {
			return fmt.Errorf("%d agent pods, want 1", len(pods))
		}
		pod = pods[0]
		if ds.Status.DesiredNumberScheduled != 1 || ds.Status.NumberReady != 1 || !pod.Ready() {
			return fmt.Errorf("DaemonSet status %+v, pod %s %s %+v", ds.Status, pod.Metadata.Name, pod.Status.Phase, pod.Status.ContainerStatuses)
		}
		return nil
	})
	return pod
}

// checkAgentPrivileges finds the agent's process (host PID namespace: its pid is the node's)
// and checks it holds exactly the granted capabilities, none of the privileged set.
func checkAgentPrivileges(t *testing.T, agent cluster.Pod, granted []string) {
	t.Helper()
	if len(agent.Status.ContainerStatuses) != 1 {
		t.Fatalf("agent pod has %d containers", len(agent.Status.ContainerStatuses))
	}
	id := strings.TrimPrefix(agent.Status.ContainerStatuses[0].ContainerID, "containerd://")
	var pid string
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), id) {
			continue
		}
		p := filepath.Base(filepath.Dir(f))
		if exe, _ := os.Readlink("/proc/" + p + "/exe"); strings.HasSuffix(exe, "/otelcol-codexray") {
			pid = p
			break
		}
	}
	if pid == "" {
		t.Fatalf("no otelcol-codexray process in container %s", id)
	}
	var want uint64
	for _, c := range granted {
		want |= 1 << capabilityBits[c]
	}
	if got := capabilitySet(t, pid, "CapEff"); got != want {
		t.Errorf("agent (pid %s) CapEff %#x, want %#x (%v)", pid, got, want, granted)
	}
	if bnd := capabilitySet(t, pid, "CapBnd"); bnd != want {
		t.Errorf("agent (pid %s) CapBnd %#x, want %#x: the pod is not limited to its capability list", pid, bnd, want)
	}
	st, _ := os.ReadFile("/proc/" + pid + "/status")
	if !strings.Contains(string(st), "NoNewPrivs:\t1") {
		t.Errorf("agent runs without no_new_privs (allowPrivilegeEscalation: false)")
	}
}

// eventually polls check until it returns nil, and fails the test with its last error when
// the time is up.
func eventually(ctx context.Context, t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting for %s (%s): %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

// expect is eventually without stopping the test: the failure is reported and the test
// goes on.
func expect(ctx context.Context, t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Errorf("waiting for %s (%s): %v", what, timeout, err)
			return
		}
		time.Sleep(time.Second)
	}
}

// diagnose logs what a failed run needs: every pod's status and the ends of the components'
// and the agent's logs.
func diagnose(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, ns := range []string{agentNS, workloadNS} {
		pods, err := c.API().Pods(ctx, ns, "")
		if err != nil {
			t.Logf("listing pods of %s: %v", ns, err)
			continue
		}
		for i := range pods {
			p := &pods[i]
			t.Logf("pod %s/%s %s ip %s: %+v", ns, p.Metadata.Name, p.Status.Phase, p.Status.PodIP, p.Status.ContainerStatuses)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(cluster.PodLogsDir, agentNS+"_*", "*", "*.log"))
	for _, l := range logs {
		t.Logf("agent log %s:\n%s", l, cluster.TailFile(l, 6000))
	}
	for _, name := range []string{"kubelet", "containerd", "kube-proxy", "kube-controller-manager", "kube-apiserver"} {
		t.Logf("%s log:\n%s", name, cluster.TailFile(filepath.Join(c.LogDir(), name+".log"), 3000))
	}
	t.Logf("component logs stay in %s until the next run", c.LogDir())
}

// anyOf reports whether s is one of list.
func anyOf(s string, list []string) bool { return slices.Contains(list, s) }
