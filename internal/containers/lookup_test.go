package containers

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// TestLookupsNeverWaitForRuntimes: dockerd and the CRI socket accept connections and never
// answer (a runtime hung during a rollout). New containers appear while the registry's own scan
// is asking about the ones it found: lookups by cgroup id and by pid (what the eBPF reader
// does on a miss) must still answer at once, a runtime's container with its cgroup identity,
// a Kubernetes-shaped one as a miss until the runtime has answered or failed.
func TestLookupsNeverWaitForRuntimes(t *testing.T) {
	const (
		dockerA = "aaaa369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
		dockerB = "bbbb369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
		k8sC    = "cccc369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
		k8sD    = "dddd369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
		podDir  = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice"
	)
	hung := badSocket(t, false)
	cfg := testConfig()
	cfg.DockerSocket = hung
	cfg.CRISockets = []string{hung}
	cfg.RuntimeTimeout = 2 * time.Second
	root := testutil.CopyTree(t, filepath.Join(testdata, "cgroupfs", "v2"))
	proc := copyProc(t)
	r := &Registry{}
	if err := r.Start(cfg, cgroups.Config{Enabled: true, Root: root, ProcRoot: proc}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	// The limits below tell "never waits for a runtime" from "waited for one" with a wide
	// margin on a loaded 2-core CI machine: a lookup stuck behind a runtime call takes at least
	// RuntimeTimeout (2 s), so 500 ms per lookup cannot pass by waiting, yet leaves room for
	// scheduling delays; the background's first scan only has to start (5 s is generous).
	const lookupLimit = 500 * time.Millisecond
	if lookupLimit >= cfg.RuntimeTimeout/2 {
		t.Fatalf("lookup limit %v too close to the runtime timeout %v to prove anything", lookupLimit, cfg.RuntimeTimeout)
	}
	// The background scan finds the fixture's containers and asks the hung runtimes about them.
	for deadline := time.Now().Add(5 * time.Second); r.Stats().RuntimeLookups == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the registry never asked a runtime")
		}
	}

	cgroupOf := map[string]string{
		dockerA: "/system.slice/docker-" + dockerA + ".scope",
		dockerB: "/system.slice/docker-" + dockerB + ".scope",
		k8sC:    podDir + "/cri-containerd-" + k8sC + ".scope",
		k8sD:    podDir + "/cri-containerd-" + k8sD + ".scope",
	}
	pidOf := map[string]string{dockerA: "401", dockerB: "402", k8sC: "403", k8sD: "404"}
	pidNum := map[string]uint32{dockerA: 401, dockerB: 402, k8sC: 403, k8sD: 404}
	for id, cg := range cgroupOf {
		writeCgroup(t, filepath.Join(root, cg), "1000")
		writeProc(t, proc, pidOf[id], "0::"+cg+"\n")
	}
	timed := func(name string, lookup func() (*Container, bool)) (*Container, bool) {
		t.Helper()
		start := time.Now()
		c, ok := lookup()
		if el := time.Since(start); el > lookupLimit {
			t.Errorf("%s took %v with a hung runtime", name, el)
		}
		return c, ok
	}

	c, ok := timed("ContainerByCgroupID(docker A)", func() (*Container, bool) {
		return r.ContainerByCgroupID(inode(t, filepath.Join(root, cgroupOf[dockerA])))
	})
	if !ok || c.ID != ID("/docker/"+dockerA) || c.RuntimeID != dockerA || c.Name != "" {
		t.Errorf("docker A by cgroup id: %+v %v; want its cgroup identity, no metadata yet", c, ok)
	}
	c, ok = timed("ContainerByPID(docker B)", func() (*Container, bool) { return r.ContainerByPID(pidNum[dockerB]) })
	if !ok || c.ID != ID("/docker/"+dockerB) {
		t.Errorf("docker B by pid: %+v %v", c, ok)
	}
	if c, ok := timed("ContainerByCgroupID(k8s C)", func() (*Container, bool) {
		return r.ContainerByCgroupID(inode(t, filepath.Join(root, cgroupOf[k8sC])))
	}); ok {
		t.Errorf("k8s C returned before its runtime answered: %+v", c)
	}
	if c, ok := timed("ContainerByPID(k8s D)", func() (*Container, bool) { return r.ContainerByPID(pidNum[k8sD]) }); ok {
		t.Errorf("k8s D returned before its runtime answered: %+v", c)
	}
	// Asked again while pending: still a miss at once, and no rescan for it.
	rescans := r.Stats().Rescans
	timed("ContainerByCgroupID(k8s C) again", func() (*Container, bool) {
		return r.ContainerByCgroupID(inode(t, filepath.Join(root, cgroupOf[k8sC])))
	})
	timed("ContainerByPID(k8s D) again", func() (*Container, bool) { return r.ContainerByPID(pidNum[k8sD]) })
	if got := r.Stats().Rescans; got != rescans {
		t.Errorf("a pending container's lookups rescanned: %d -> %d", rescans, got)
	}

	// Once the runtime has failed (timeout, then paused), the Kubernetes-shaped containers
	// are published without metadata, under the ID they keep.
	for _, id := range []string{k8sC, k8sD} {
		deadline := time.Now().Add(3*cfg.RuntimeTimeout + time.Second)
		for {
			c, ok := r.ContainerByPID(pidNum[id])
			if ok {
				if c.ID != ID("/containerd/"+id) {
					t.Errorf("k8s %s after the runtime failed: %+v", id[:4], c)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("k8s %s never published after the runtime failed", id[:4])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A process that execs again is attributed again; it must not be counted twice, or the
// container would not be seen gone when its processes exit.
func TestReattributedProcessCountedOnce(t *testing.T) {
	r := startFixture(t, testConfig(), copyProc(t), nil)
	c, ok := r.ContainerByPID(201)
	if !ok || c.Processes() != 2 {
		t.Fatalf("docker container: %+v, %d processes; want 2 (pids 201, 209)", c, c.Processes())
	}
	for range 3 {
		if again, ok := r.OnProcessStart(201); !ok || again.ID != c.ID {
			t.Fatalf("exec: %+v %v", again, ok)
		}
	}
	if got := c.Processes(); got != 2 {
		t.Fatalf("after pid 201 exec'd 3 times: %d processes, want 2", got)
	}
	r.OnProcessExit(201)
	r.OnProcessExit(209)
	if got, gone := c.Processes(), c.GoneAt(); got != 0 || gone.IsZero() {
		t.Fatalf("after both exits: %d processes, gone at %v; want 0 and gone", got, gone)
	}
}

// A process that moves to another container's cgroup leaves the first one's count.
func TestMovedProcessLeavesItsContainer(t *testing.T) {
	proc := copyProc(t)
	r := startFixture(t, testConfig(), proc, nil)
	docker, _ := r.ContainerByPID(209)
	writeProc(t, proc, "209", "0::/system.slice/nginx.service\n")
	nginx, ok := r.OnProcessStart(209)
	if !ok || nginx.ID != "/system.slice/nginx.service" {
		t.Fatalf("moved process: %+v %v", nginx, ok)
	}
	if docker.Processes() != 1 || nginx.Processes() != 2 {
		t.Fatalf("after the move: docker %d processes (want 1), nginx %d (want 2)", docker.Processes(), nginx.Processes())
	}
}

// Misses are remembered for missTTL: a stream of events from an unknown cgroup or an exited
// pid costs one scan or /proc read, not one each.
func TestMissesAreCachedBriefly(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := startFixture(t, testConfig(), copyProc(t), clk)
	before := r.Stats().Rescans
	for range 100 {
		if _, ok := r.ContainerByCgroupID(987654321); ok {
			t.Fatal("unknown cgroup id attributed")
		}
	}
	if got := r.Stats().Rescans - before; got != 1 {
		t.Fatalf("100 lookups of one unknown cgroup id: %d rescans, want 1", got)
	}
	clk.add(missTTL)
	r.ContainerByCgroupID(987654321)
	if got := r.Stats().Rescans - before; got != 2 {
		t.Fatalf("after missTTL: %d rescans, want 2", got)
	}
}

// On a cgroup v1 host cgroup ids name no container: lookups by id miss at once, without scans.
func TestCgroupIDLookupsOnV1(t *testing.T) {
	r := &Registry{}
	cg := cgroups.Config{Enabled: true, Root: filepath.Join(testdata, "cgroupfs", "v1"), ProcRoot: filepath.Join(testdata, "proc", "v1")}
	if err := r.Start(testConfig(), cg, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	r.Scan()
	before := r.Stats().Rescans
	for _, id := range []uint64{1, 2, 12345} {
		if c, ok := r.ContainerByCgroupID(id); ok {
			t.Fatalf("cgroup id %d attributed on v1: %+v", id, c)
		}
	}
	if got := r.Stats().Rescans; got != before {
		t.Fatalf("cgroup id lookups on v1 rescanned: %d -> %d", before, got)
	}
	if len(r.Containers()) == 0 {
		t.Fatal("v1 fixture: no containers (pid attribution is the fallback and must work)")
	}
}
