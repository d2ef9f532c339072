package containers

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

func startHostRegistry(t *testing.T) *Registry {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CRISockets = []string{testutil.ContainerdSocket}
	cfg.ScanInterval = time.Hour // the test drives attribution itself
	r := &Registry{}
	if err := r.Start(cfg, cgroups.DefaultConfig(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestDockerContainer(t *testing.T) {
	testutil.RequireDocker(t)
	// A busy loop under a small CPU quota: the kernel throttles it in nearly every period however
	// busy the machine is. (Under a 0.5 core quota a loaded 2-core host gave the loop less than
	// its quota, so it was never throttled.)
	id := run(t, "docker", "run", "-d", "--cpus", "0.05", "-m", "64m", "--label", "codexray-test=1", "--network", "none",
		"--name", fmt.Sprintf("codexray-registry-%d", os.Getpid()), testutil.DockerImage, "sh", "-c", "while :; do :; done")
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	pid64, err := strconv.ParseUint(run(t, "docker", "inspect", "-f", "{{.State.Pid}}", id), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	r := startHostRegistry(t)
	r.Scan() // returns with metadata fetched

	c, ok := r.ContainerByPID(uint32(pid64))
	if !ok {
		t.Fatalf("docker container's pid %d not attributed", pid64)
	}
	if c.ID != ID("/docker/"+id) || c.Runtime != "docker" || c.RuntimeID != id {
		t.Fatalf("identity: %+v", c)
	}
	if c.Name != fmt.Sprintf("codexray-registry-%d", os.Getpid()) || c.Image != testutil.DockerImage || c.Labels["codexray-test"] != "1" {
		t.Fatalf("metadata: name %q image %q labels %v", c.Name, c.Image, c.Labels)
	}
	if !strings.HasSuffix(c.LogPath, id+"-json.log") {
		t.Fatalf("log path %q", c.LogPath)
	}
	start := time.Now()
	s1, err := c.Resources()
	if err != nil {
		t.Fatal(err)
	}
	p1 := processCPUSeconds(t, uint32(pid64))
	if s1.CPU.LimitCores != 0.05 || s1.Memory.LimitBytes != 67108864 {
		t.Fatalf("limits: %+v %+v", s1.CPU, s1.Memory)
	}
	// Wait for 0.1 s of CPU (2 s at the quota when the machine is idle) and a throttled period.
	var s2 cgroups.Stats
	deadline := time.Now().Add(60 * time.Second)
	for {
		time.Sleep(100 * time.Millisecond)
		if s2, err = c.Resources(); err != nil {
			t.Fatal(err)
		}
		if s2.CPU.UsageSeconds-s1.CPU.UsageSeconds >= 0.1 && s2.CPU.ThrottledSeconds > s1.CPU.ThrottledSeconds {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: cpu usage rose by %.3fs (want 0.1s), throttled time %.3fs -> %.3fs",
				time.Since(start), s2.CPU.UsageSeconds-s1.CPU.UsageSeconds, s1.CPU.ThrottledSeconds, s2.CPU.ThrottledSeconds)
		}
	}
	p2 := processCPUSeconds(t, uint32(pid64))
	elapsed := time.Since(start).Seconds()
	t.Logf("in %.1fs: cpu %v -> %v, process cpu time %.2fs -> %.2fs", elapsed, s1.CPU, s2.CPU, p1, p2)
	// The cgroup's usage is the loop's own CPU time (in seconds: /proc/<pid>/stat counts it in
	// 10 ms ticks, hence the tolerance), and never more than the quota allows.
	d := s2.CPU.UsageSeconds - s1.CPU.UsageSeconds
	if dp := p2 - p1; d < dp-0.03 || d > dp+0.03 {
		t.Fatalf("cgroup cpu usage rose by %.3fs, the process's cpu time by %.3fs (%v -> %v)", d, dp, s1.CPU, s2.CPU)
	}
	if limit := 0.05*elapsed + 0.02; d > limit {
		t.Fatalf("cpu usage rose by %.3fs in %.1fs, more than the 0.05 core quota allows", d, elapsed)
	}
	if s2.Memory.RSSBytes == 0 {
		t.Fatalf("memory: %+v", s2.Memory)
	}

	paths, err := cgroups.Open(cgroups.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if paths.Layout() != cgroups.LayoutV1 {
		pp, err := paths.ProcessPaths(uint32(pid64))
		if err != nil {
			t.Fatal(err)
		}
		ino, err := paths.CgroupID(pp.Unified)
		if err != nil {
			t.Fatal(err)
		}
		if byID, ok := r.ContainerByCgroupID(ino); !ok || byID.ID != c.ID {
			t.Fatalf("ContainerByCgroupID(%d) = %v, %v", ino, byID, ok)
		}
		if !s2.HasPSI {
			t.Fatalf("no PSI on a host with cgroup v2: %+v", s2)
		}
	}

	// Stop it: the exit is seen, the container stays listed with its final counters.
	run(t, "docker", "rm", "-f", id)
	r.OnProcessExit(uint32(pid64))
	r.Scan()
	gone, ok := r.ContainerByID(c.ID)
	if !ok || gone.GoneAt().IsZero() {
		t.Fatalf("removed container: %v gone %v", ok, gone)
	}
	final, err := gone.Resources()
	if err != nil || final.CPU.UsageSeconds < s2.CPU.UsageSeconds {
		t.Fatalf("final counters of a removed container: %+v %v", final.CPU, err)
	}
}

// processCPUSeconds is the user+system CPU time of a process from /proc/<pid>/stat.
func processCPUSeconds(t *testing.T, pid uint32) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (in parentheses, which may contain spaces): state is field 3,
	// utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return float64(utime+stime) / 100
}

func TestCRIPod(t *testing.T) {
	testutil.RequireContainerd(t)
	uid := fmt.Sprintf("c0de0000-0000-4000-8000-%012d", os.Getpid())
	dir := t.TempDir()
	pod := map[string]any{
		"metadata":      map[string]any{"name": "cx-registry", "namespace": "cx-test", "uid": uid, "attempt": 0},
		"log_directory": filepath.Join(dir, "logs"),
		"labels":        map[string]string{"codexray-test": "1"},
		"linux": map[string]any{
			"cgroup_parent":    "/kubepods/burstable/pod" + uid,
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}},
		},
	}
	ctr := map[string]any{
		"metadata": map[string]any{"name": "app", "attempt": 0},
		"image":    map[string]any{"image": "docker.io/" + testutil.DockerImage},
		"command":  []string{"sh", "-c", "while :; do sleep 1; done"},
		"log_path": "app.log",
		"labels":   map[string]string{"codexray-test": "1"},
	}
	podFile, ctrFile := filepath.Join(dir, "pod.json"), filepath.Join(dir, "ctr.json")
	for f, v := range map[string]any{podFile: pod, ctrFile: ctr} {
		data, _ := json.Marshal(v)
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	crictl := func(args ...string) string {
		t.Helper()
		return testutil.CrictlOutput(t, args...)
	}
	podID := crictl("runp", podFile)
	t.Cleanup(func() {
		_ = testutil.Crictl("stopp", podID).Run()
		_ = testutil.Crictl("rmp", "-f", podID).Run()
	})
	ctrID := crictl("create", podID, ctrFile, podFile)
	crictl("start", ctrID)
	var inspect struct {
		Info struct{ Pid int } `json:"info"`
	}
	if err := json.Unmarshal([]byte(crictl("inspect", ctrID)), &inspect); err != nil || inspect.Info.Pid == 0 {
		t.Fatalf("crictl inspect: %v pid %d", err, inspect.Info.Pid)
	}
	r := startHostRegistry(t)
	r.OnProcessStart(uint32(inspect.Info.Pid))
	r.settle() // its ID comes with the runtime's answer
	c, ok := r.ContainerByPID(uint32(inspect.Info.Pid))
	if !ok {
		t.Fatalf("CRI container pid %d not attributed", inspect.Info.Pid)
	}
	if c.ID != "/k8s/cx-test/cx-registry/app" || c.PodName != "cx-registry" || c.Namespace != "cx-test" ||
		c.ContainerName != "app" || c.PodUID != uid || c.RuntimeID != ctrID || c.Restarts != 0 || c.Runtime != "containerd" {
		t.Fatalf("k8s metadata: %+v", c)
	}
	if !strings.HasSuffix(c.Image, testutil.DockerImage) || c.LogPath != filepath.Join(dir, "logs", "app.log") {
		t.Fatalf("image %q log path %q", c.Image, c.LogPath)
	}
	if !strings.HasPrefix(c.CgroupPath, "/kubepods/burstable/pod"+uid+"/") {
		t.Fatalf("cgroup path %q", c.CgroupPath)
	}
	// The pause process of the sandbox is in the pod too, but it is not a container.
	r.Scan()
	for _, listed := range r.Containers() {
		if listed.RuntimeID == podID {
			t.Fatalf("pod sandbox listed as a container: %+v", listed)
		}
	}
	if s, err := c.Resources(); err != nil || !s.HasCPU || !s.HasMemory {
		t.Fatalf("resources: %+v %v", s, err)
	}
}
