package containers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// TestCRIRestart restarts a container the way kubelet does: stop it, then create and start
// attempt 1 of the same container in the same pod. The registry must keep the ID, publish a
// copy with the new instance's FirstSeen and runtime id, take Restarts from the runtime, and
// read the new cgroup's counters (which start from zero again).
func TestCRIRestart(t *testing.T) {
	testutil.RequireContainerd(t)
	uid := fmt.Sprintf("c0de0001-0000-4000-8000-%012d", os.Getpid())
	dir := t.TempDir()
	crictl := func(args ...string) string {
		t.Helper()
		return testutil.CrictlOutput(t, args...)
	}
	writeJSON := func(name string, v any) string {
		t.Helper()
		data, _ := json.Marshal(v)
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	podFile := writeJSON("pod.json", map[string]any{
		"metadata":      map[string]any{"name": "cx-restart", "namespace": "cx-test", "uid": uid, "attempt": 0},
		"log_directory": filepath.Join(dir, "logs"),
		"labels":        map[string]string{"codexray-test": "1"},
		"linux": map[string]any{
			"cgroup_parent":    "/kubepods/burstable/pod" + uid,
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}},
		},
	})
	container := func(attempt int, script string) string {
		return writeJSON(fmt.Sprintf("ctr%d.json", attempt), map[string]any{
			"metadata": map[string]any{"name": "app", "attempt": attempt},
			"image":    map[string]any{"image": "docker.io/" + testutil.DockerImage},
			"command":  []string{"sh", "-c", script},
			"log_path": fmt.Sprintf("app/%d.log", attempt),
			"labels":   map[string]string{"codexray-test": "1"},
		})
	}
	pidOf := func(ctrID string) uint32 {
		t.Helper()
		var inspect struct {
			Info struct{ Pid int } `json:"info"`
		}
		if err := json.Unmarshal([]byte(crictl("inspect", ctrID)), &inspect); err != nil || inspect.Info.Pid == 0 {
			t.Fatalf("crictl inspect %s: %v pid %d", ctrID, err, inspect.Info.Pid)
		}
		return uint32(inspect.Info.Pid)
	}

	podID := crictl("runp", podFile)
	t.Cleanup(func() {
		_ = testutil.Crictl("stopp", podID).Run()
		_ = testutil.Crictl("rmp", "-f", podID).Run()
	})
	// Attempt 0 burns some CPU first, so its counters are well above a fresh cgroup's.
	ctr0 := crictl("create", podID, container(0, "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exec sleep 3600"), podFile)
	crictl("start", ctr0)
	pid0 := pidOf(ctr0)
	r := startHostRegistry(t)
	r.OnProcessStart(pid0)
	r.settle() // its ID comes with the runtime's answer
	first, ok := r.ContainerByPID(pid0)
	if !ok || first.ID != "/k8s/cx-test/cx-restart/app" || first.RuntimeID != ctr0 || first.Restarts != 0 {
		t.Fatalf("attempt 0: %+v %v", first, ok)
	}
	var used float64
	for deadline := time.Now().Add(20 * time.Second); ; {
		s, err := first.Resources()
		if err != nil {
			t.Fatal(err)
		}
		if used = s.CPU.UsageSeconds; used >= 0.2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempt 0 used only %.3fs of cpu", used)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// kubelet's restart: stop (the exited container stays), create attempt 1, start.
	crictl("stop", "-t", "0", ctr0)
	r.OnProcessExit(pid0)
	restartedAfter := time.Now()
	ctr1 := crictl("create", podID, container(1, "exec sleep 3600"), podFile)
	crictl("start", ctr1)
	pid1 := pidOf(ctr1)
	r.OnProcessStart(pid1)
	r.settle()
	second, ok := r.ContainerByPID(pid1)
	if !ok {
		t.Fatalf("attempt 1's pid %d not attributed", pid1)
	}
	if second.ID != first.ID || second.RuntimeID != ctr1 || second.Restarts != 1 || second.CgroupPath == first.CgroupPath ||
		!strings.HasPrefix(second.CgroupPath, "/kubepods/burstable/pod"+uid+"/") {
		t.Fatalf("attempt 1: %+v\nattempt 0: %+v", second, first)
	}
	if second.FirstSeen.Before(restartedAfter) || !first.FirstSeen.Before(restartedAfter) {
		t.Fatalf("FirstSeen: attempt 0 %v, attempt 1 %v, restart at %v", first.FirstSeen, second.FirstSeen, restartedAfter)
	}
	s, err := second.Resources()
	if err != nil || !s.HasCPU || s.CPU.UsageSeconds >= used {
		t.Fatalf("attempt 1's counters %+v %v: want the new cgroup's, below attempt 0's %.3fs", s.CPU, err, used)
	}
	if c, ok := r.ContainerByRuntimeID(ctr1); !ok || c != second {
		t.Fatalf("by runtime id: %+v %v", c, ok)
	}
	f, err := cgroups.Open(cgroups.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if f.Layout() != cgroups.LayoutV1 {
		p, err := f.ProcessPaths(pid1)
		if err != nil {
			t.Fatal(err)
		}
		ino, err := f.CgroupID(p.Unified)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := r.ContainerByCgroupID(ino); !ok || c != second {
			t.Fatalf("by cgroup id %d: %+v %v", ino, c, ok)
		}
	}
	// A full scan keeps the new instance: the old attempt's cgroup is gone or empty.
	r.Scan()
	if c, _ := r.ContainerByID(first.ID); c != second {
		t.Fatalf("after a scan: %+v, want the attempt 1 copy", c)
	}
}
