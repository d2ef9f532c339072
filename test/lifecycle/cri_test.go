package lifecycle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

var crictl = testutil.CrictlOutput

// pod is a CRI pod sandbox in the kubepods cgroupfs layout, with host networking.
type pod struct {
	name, namespace, uid string
	id                   string
	dir, file            string
}

var podSeq struct {
	sync.Mutex
	n int
}

func runPod(t *testing.T, name string) *pod {
	t.Helper()
	podSeq.Lock()
	podSeq.n++
	n := podSeq.n
	podSeq.Unlock()
	p := &pod{
		name: name, namespace: strings.TrimSuffix(prefix, "-"),
		uid: fmt.Sprintf("c0de0012-%04d-4000-8000-%012d", n, os.Getpid()), dir: t.TempDir(),
	}
	p.file = writeJSON(t, p.dir, "pod.json", map[string]any{
		"metadata":      map[string]any{"name": p.name, "namespace": p.namespace, "uid": p.uid, "attempt": 0},
		"log_directory": filepath.Join(p.dir, "logs"),
		"labels":        map[string]string{"codexray-test": "1"},
		"linux": map[string]any{
			"cgroup_parent":    "/kubepods/burstable/pod" + p.uid,
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}},
		},
	})
	p.id = crictl(t, "runp", p.file)
	t.Cleanup(func() {
		_ = testutil.Crictl("stopp", p.id).Run()
		_ = testutil.Crictl("rmp", "-f", p.id).Run()
	})
	return p
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

type criContainer struct {
	name     string
	attempt  int
	memLimit uint64
	cpuQuota int64 // per 100 ms period; 0 for none
	logs     bool
	script   string
	asked    time.Time
}

// create creates the container in the pod (not started). Its instance cannot be older than
// c.asked, set here.
func (c *criContainer) create(t *testing.T, p *pod) string {
	t.Helper()
	c.asked = time.Now()
	res := map[string]any{}
	if c.cpuQuota > 0 {
		res["cpu_period"], res["cpu_quota"] = 100000, c.cpuQuota
	}
	if c.memLimit > 0 {
		res["memory_limit_in_bytes"] = c.memLimit
	}
	f := writeJSON(t, p.dir, fmt.Sprintf("%s-%d.json", c.name, c.attempt), map[string]any{
		"metadata": map[string]any{"name": c.name, "attempt": c.attempt},
		"image":    map[string]any{"image": "docker.io/" + testutil.DockerImage},
		"command":  []string{"sh", "-c", c.script},
		"log_path": fmt.Sprintf("%s/%d.log", c.name, c.attempt),
		"labels":   map[string]string{"codexray-test": "1"},
		"linux":    map[string]any{"resources": res},
	})
	return crictl(t, "create", p.id, f, p.file)
}

// instance describes a started CRI container.
func (c criContainer) instance(t *testing.T, p *pod, ctrID string) *instance {
	t.Helper()
	var inspect struct {
		Status struct {
			StartedAt string `json:"startedAt"`
		} `json:"status"`
		Info struct{ Pid int } `json:"info"`
	}
	if err := json.Unmarshal([]byte(crictl(t, "inspect", ctrID)), &inspect); err != nil || inspect.Info.Pid == 0 {
		t.Fatalf("crictl inspect %s: %v (pid %d)", ctrID, err, inspect.Info.Pid)
	}
	started, err := time.Parse(time.RFC3339Nano, inspect.Status.StartedAt)
	if err != nil {
		t.Fatalf("crictl inspect %s: startedAt %q: %v", ctrID, inspect.Status.StartedAt, err)
	}
	cg, err := cgroupOf(inspect.Info.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cg, "/kubepods/burstable/pod"+p.uid+"/") {
		t.Fatalf("CRI container %s is in cgroup %s, not in its pod's", c.name, cg)
	}
	return &instance{
		name: fmt.Sprintf("cri/%s/%s attempt %d", p.name, c.name, c.attempt), id: "/k8s/" + p.namespace + "/" + p.name + "/" + c.name,
		cgroup: cg, pid: inspect.Info.Pid, started: started, notBefore: c.asked,
		memLimit: c.memLimit, cpuLimit: float64(c.cpuQuota) / 100000, logs: c.logs, kernel: startSampler(t, cg),
	}
}

// criScenarios are the CRI lifecycles, each run in parallel with the others.
//
//nolint:thelper // the scenarios are subtest bodies (t.Run), not helpers: errors point into them
func criScenarios(a *agent) map[string]func(t *testing.T) {
	return map[string]func(t *testing.T){
		// A pod with three containers, started at the same instant.
		"pod-with-three-containers": func(t *testing.T) {
			p := runPod(t, "trio")
			ctrs := []criContainer{
				{name: "web", memLimit: 64 << 20, cpuQuota: 30000, logs: true, script: logLoop},
				{name: "sidecar", memLimit: 32 << 20, cpuQuota: 10000, logs: true, script: logLoop},
				{name: "worker", memLimit: 48 << 20, cpuQuota: 20000, script: burnLoop},
			}
			ids := make([]string, len(ctrs))
			for i := range ctrs {
				ids[i] = ctrs[i].create(t, p)
			}
			var wg sync.WaitGroup
			errs := make(chan string, len(ids))
			for _, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if out, err := testutil.Crictl("start", id).CombinedOutput(); err != nil {
						errs <- fmt.Sprintf("crictl start %s: %v %s", id, err, out)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatal(e)
			}
			for i, c := range ctrs {
				a.awaitComplete(t, c.instance(t, p, ids[i]))
			}
		},
		// A container restarted in place, as kubelet does: attempt 0 stops, attempt 1 of the
		// same container starts in the same pod (a new runtime id and cgroup, the same ID).
		"restart-in-place": func(t *testing.T) {
			p := runPod(t, "restarting")
			c := criContainer{name: "app", memLimit: 64 << 20, cpuQuota: 25000, logs: true, script: logLoop}
			id0 := c.create(t, p)
			crictl(t, "start", id0)
			a.awaitComplete(t, c.instance(t, p, id0))
			crictl(t, "stop", "--timeout", "1", id0)
			c.attempt = 1
			id1 := c.create(t, p)
			crictl(t, "start", id1)
			in := c.instance(t, p, id1)
			if b := a.awaitComplete(t, in); b != nil {
				a.awaitValue(t, in, b, mRestarts, 1)
			}
		},
	}
}
