package containers

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

func startAt(t *testing.T, cfg Config, cgroupRoot, procRoot string, clk *clock) *Registry {
	t.Helper()
	r := &Registry{}
	if clk != nil {
		r.now = clk.now
	}
	if err := r.Start(cfg, cgroups.Config{Enabled: true, Root: cgroupRoot, ProcRoot: procRoot}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	r.Scan()
	// Wait for the background's first scan too, so it cannot run later, in the middle of
	// what a test changes.
	for deadline := time.Now().Add(10 * time.Second); r.Stats().Scans < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the background's first scan did not run")
		}
		time.Sleep(time.Millisecond)
	}
	return r
}

// writeCgroup creates a v2 container cgroup with the given cpu usage.
func writeCgroup(t *testing.T, dir string, usageUsec string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"cpu.stat":    "usage_usec " + usageUsec + "\nthrottled_usec 0\n",
		"cpu.max":     "max 100000\n",
		"memory.stat": "anon 4096\nfile 0\n",
		"memory.max":  "max\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func inode(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestKubernetesRestartIsANewInstance: kubelet restarts a container: the old one exits, a new
// one (new runtime id, new cgroup, attempt+1) starts in the same pod. The ID stays; the
// published copy gets FirstSeen = when the new instance was seen, so the cumulative counters
// of the new cgroup (starting from zero) never appear to go down under an old start time.
func TestKubernetesRestartIsANewInstance(t *testing.T) {
	const id6 = "0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad"
	podDir := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice"
	labels := map[string]string{labelPodName: "api-7d9f", labelPodNamespace: "shop", labelPodUID: podUID, labelContainerName: "api"}
	criSock := serveCRI(t, &fakeCRI{containers: map[string]*runtimeapi.ContainerStatus{
		id2: {Id: id2, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 0}, Labels: labels},
		id6: {Id: id6, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 1}, Labels: labels},
	}})
	for _, via := range []string{"scan", "process event"} {
		t.Run(via, func(t *testing.T) {
			root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
			proc := copyProc(t)
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			cfg := testConfig()
			cfg.CRISockets = []string{criSock}
			r := startAt(t, cfg, root, proc, clk)
			const k8sID = ID("/k8s/shop/api-7d9f/api")

			first, ok := r.ContainerByID(k8sID)
			if !ok || first.RuntimeID != id2 || first.Restarts != 0 || !first.FirstSeen.Equal(clk.now()) {
				t.Fatalf("before the restart: %+v", first)
			}
			s, err := first.Resources()
			if err != nil || s.CPU.UsageSeconds != 2.123456 {
				t.Fatalf("before the restart: cpu %+v %v", s.CPU, err)
			}

			// The restart, a minute later: the old process and cgroup go, the new ones come.
			clk.add(time.Minute)
			restartedAt := clk.now()
			_ = os.RemoveAll(filepath.Join(proc, "202"))
			r.OnProcessExit(202)
			_ = os.RemoveAll(filepath.Join(root, podDir, "cri-containerd-"+id2+".scope"))
			newDir := filepath.Join(root, podDir, "cri-containerd-"+id6+".scope")
			writeCgroup(t, newDir, "250000")
			writeProc(t, proc, "210", "0::"+podDir+"/cri-containerd-"+id6+".scope\n")
			if via == "scan" {
				r.Scan()
			} else {
				// A Kubernetes-shaped container is returned once its runtime has answered:
				// not by the event itself, which never waits for the runtime.
				if c, ok := r.OnProcessStart(210); ok {
					t.Fatalf("pending container returned before its runtime answered: %+v", c)
				}
				r.settle()
				if _, ok := r.ContainerByPID(210); !ok {
					t.Fatal("the restarted container's process is not attributed")
				}
			}

			second, ok := r.ContainerByID(k8sID)
			if !ok || second == first {
				t.Fatalf("no new copy published: %+v", second)
			}
			if !second.FirstSeen.Equal(restartedAt) || second.RuntimeID != id6 || second.Restarts != 1 ||
				second.CgroupPath != podDir+"/cri-containerd-"+id6+".scope" || second.PodName != "api-7d9f" {
				t.Fatalf("after the restart: %+v; want FirstSeen %v, runtime id %s, restarts 1", second, restartedAt, id6)
			}
			if !second.RestartsSince.Equal(first.RestartsSince) || first.RestartsSince.IsZero() {
				t.Fatalf("restart count since %v after the restart, %v before; a restart continues the count", second.RestartsSince, first.RestartsSince)
			}
			if !first.FirstSeen.Equal(restartedAt.Add(-time.Minute)) {
				t.Fatalf("the published old copy changed: FirstSeen %v", first.FirstSeen)
			}
			s, err = second.Resources()
			if err != nil || s.CPU.UsageSeconds != 0.25 {
				t.Fatalf("after the restart: cpu %+v %v; want the new cgroup's 0.25 s", s.CPU, err)
			}
			for name, lookup := range map[string]func() (*Container, bool){
				"pid":        func() (*Container, bool) { return r.ContainerByPID(210) },
				"runtime id": func() (*Container, bool) { return r.ContainerByRuntimeID(id6) },
				"cgroup id":  func() (*Container, bool) { return r.ContainerByCgroupID(inode(t, newDir)) },
			} {
				if c, ok := lookup(); !ok || c != second {
					t.Fatalf("by %s: %+v %v", name, c, ok)
				}
			}
			if n := slices.Index(ids(r.Containers()), string(k8sID)); n < 0 {
				t.Fatal("restarted container not listed")
			}
			// Later scans see the same instance: no new start.
			clk.add(time.Minute)
			r.Scan()
			if c, _ := r.ContainerByID(k8sID); !c.FirstSeen.Equal(restartedAt) {
				t.Fatalf("FirstSeen moved again without a restart: %v", c.FirstSeen)
			}
			if got := r.Stats().NewInstances; got != 1 {
				t.Fatalf("NewInstances = %d, want 1", got)
			}
		})
	}
}

// TestRecreatedCgroupIsANewInstance: a container restarted into a cgroup re-created under the
// same path (docker restart, between two scans so nobody saw it gone) is a new instance too;
// it is told apart by the directory's inode.
func TestRecreatedCgroupIsANewInstance(t *testing.T) {
	dockerSock, _ := fakeDocker(t, map[string]dockerInspect{id1: {Name: "/web", RestartCount: 1}})
	root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.DockerSocket = dockerSock
	r := startAt(t, cfg, root, copyProc(t), clk)
	first, ok := r.ContainerByRuntimeID(id1)
	if !ok {
		t.Fatal("docker container not found")
	}
	// Rescans of the unchanged cgroup keep the instance.
	clk.add(time.Minute)
	r.Scan()
	if c, _ := r.ContainerByRuntimeID(id1); c != first {
		t.Fatalf("a rescan published a new copy: %+v", c)
	}

	dir := filepath.Join(root, "system.slice", "docker-"+id1+".scope")
	before := inode(t, dir)
	// Keep the old directory's inode in use while the new one is made, so the file system
	// cannot hand the same inode number back.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	writeCgroup(t, dir, "1000")
	if inode(t, dir) == before {
		t.Fatal("the re-created directory has the old inode")
	}
	clk.add(time.Minute)
	r.Scan()
	second, _ := r.ContainerByRuntimeID(id1)
	if second == first || second.ID != first.ID || !second.FirstSeen.Equal(clk.now()) || second.Restarts != 1 || second.Name != "web" {
		t.Fatalf("re-created cgroup: %+v (first seen %v); want a new instance seen at %v with restarts 1", second, first.FirstSeen, clk.now())
	}
	if !second.RestartsSince.Equal(first.RestartsSince) || first.RestartsSince.IsZero() {
		t.Fatalf("restart count since %v after the restart, %v before; a restart continues the count", second.RestartsSince, first.RestartsSince)
	}
	if s, err := second.Resources(); err != nil || s.CPU.UsageSeconds != 0.001 {
		t.Fatalf("new instance's cpu: %+v %v", s.CPU, err)
	}
}

// TestRegistryInPrivateCgroupNamespace runs the registry over the v2ns fixture: the host of
// the v2 fixture seen by an agent in a pod, every /proc/<pid>/cgroup relative to the agent's
// own container. It must find the same containers as on the host, keyed by the host's cgroup
// ids, plus the agent's own pod.
func TestRegistryInPrivateCgroupNamespace(t *testing.T) {
	const (
		agentID   = "a9e7c1d23b4f4a5b8c6d7e8f9a0b1c2da9e7c1d23b4f4a5b8c6d7e8f9a0b1c2d"
		sidecarID = "5edeca755edeca755edeca755edeca755edeca755edeca755edeca755edeca75"
		agentPod  = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda9e7c1d2_3b4f_4a5b_8c6d_7e8f9a0b1c2d.slice"
	)
	host := startFixture(t, testConfig(), filepath.Join(testdata, "proc", "v2"), nil)
	root := filepath.Join(testdata, "cgroupfs", "v2ns")
	pod := startAt(t, testConfig(), root, filepath.Join(testdata, "proc", "v2ns"), nil)

	want := append(ids(host.Containers()), "/containerd/"+sidecarID, "/containerd/"+agentID)
	slices.Sort(want)
	if got := ids(pod.Containers()); !slices.Equal(got, want) {
		t.Fatalf("containers in the pod's view: %v\nwant %v", got, want)
	}
	for _, hc := range host.Containers() {
		pc, _ := pod.ContainerByID(hc.ID)
		if pc == nil || pc.CgroupPath != hc.CgroupPath || pc.Processes() != hc.Processes() {
			t.Fatalf("%s: pod view %+v, host view %+v", hc.ID, pc, hc)
		}
		hs, herr := hc.Resources()
		ps, perr := pc.Resources()
		if herr != nil || perr != nil || hs.CPU != ps.CPU || hs.Memory != ps.Memory {
			t.Fatalf("%s: pod view stats %+v %v, host view %+v %v", hc.ID, ps, perr, hs, herr)
		}
		// eBPF's cgroup id is the inode in the host hierarchy of the cgroup a process is in
		// (podman's processes sit in the nested "container" cgroup).
		member := hc.CgroupPath
		if hc.Runtime == "podman" {
			member += "/container"
		}
		if c, ok := pod.ContainerByCgroupID(inode(t, filepath.Join(root, member))); !ok || c.ID != hc.ID {
			t.Fatalf("ContainerByCgroupID for %s: %v %v", hc.ID, c, ok)
		}
	}
	self, ok := pod.ContainerByPID(4242)
	if !ok || self.CgroupPath != agentPod+"/cri-containerd-"+agentID+".scope" {
		t.Fatalf("the agent's own process: %+v %v", self, ok)
	}
	if st := pod.Stats(); st.NamespaceSkipped != 0 || st.ProcessErrors != 0 {
		t.Fatalf("self stats: %+v", st)
	}

	// The same view with the agent's own cgroup not findable: every process is skipped and
	// counted, none attributed (no "/" mistaken for the host root, no "/.." clamped).
	broken := testutil.CopyTree(t, root)
	if err := os.WriteFile(filepath.Join(broken, agentPod, "cri-containerd-"+agentID+".scope", "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lost := startAt(t, testConfig(), broken, filepath.Join(testdata, "proc", "v2ns"), nil)
	if got := lost.Containers(); len(got) != 0 {
		t.Fatalf("unresolved namespace attributed containers: %v", ids(got))
	}
	if _, ok := lost.ContainerByPID(202); ok {
		t.Fatal("unresolved namespace attributed pid 202")
	}
	if st := lost.Stats(); st.NamespaceSkipped < 12 || st.ProcessErrors != 0 {
		t.Fatalf("self stats with an unresolved namespace: %+v; want the 12 processes skipped", st)
	}
}

// TestSystemdUnitRestartsCounted: systemd removes a unit's cgroup when the unit stops and
// creates a new one when it starts again. No runtime counts a unit's restarts, so the registry
// counts each re-created cgroup it sees: container.restarts grows by one per restart under an
// unchanged start, while the unit's cgroup counters start again with the new instance.
func TestSystemdUnitRestartsCounted(t *testing.T) {
	const unitID = ID("/system.slice/nginx.service")
	for _, via := range []string{"scan", "process event"} {
		t.Run(via, func(t *testing.T) {
			root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
			proc := copyProc(t)
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			r := startAt(t, testConfig(), root, proc, clk)
			first, ok := r.ContainerByID(unitID)
			if !ok || first.Restarts != 0 || first.Runtime != "systemd" {
				t.Fatalf("before: %+v %v", first, ok)
			}
			pid := 206 // nginx.service's process in the fixture
			for restart := 1; restart <= 2; restart++ {
				clk.add(time.Minute)
				dir := filepath.Join(root, "system.slice", "nginx.service")
				oldInode := inode(t, dir)
				_ = os.RemoveAll(filepath.Join(proc, strconv.Itoa(pid)))
				r.OnProcessExit(uint32(pid))
				// The old directory stays in use meanwhile, so the new one gets another inode.
				if err := os.Rename(dir, fmt.Sprintf("%s.old%d", dir, restart)); err != nil {
					t.Fatal(err)
				}
				writeCgroup(t, dir, "1000")
				if inode(t, dir) == oldInode {
					t.Fatal("the re-created directory has the old inode")
				}
				pid++
				writeProc(t, proc, strconv.Itoa(pid), "0::/system.slice/nginx.service\n")
				if via == "scan" {
					r.Scan()
				} else if _, ok := r.OnProcessStart(uint32(pid)); !ok {
					t.Fatal("the restarted unit's process is not attributed")
				}
				c, ok := r.ContainerByID(unitID)
				if !ok || c.Restarts != int64(restart) || !c.RestartsSince.Equal(first.RestartsSince) || !c.FirstSeen.Equal(clk.now()) {
					t.Fatalf("after restart %d: %+v; want restarts %d since %v, first seen now", restart, c, restart, first.RestartsSince)
				}
			}
			// A scan that finds the same cgroup again is no restart.
			r.Scan()
			if c, _ := r.ContainerByID(unitID); c.Restarts != 2 {
				t.Fatalf("a rescan counted a restart: %d", c.Restarts)
			}
		})
	}
}
