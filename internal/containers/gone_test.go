package containers

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A container whose runtime did not answer while it ran (dockerd slow or paused after a
// failure) and that exited since gets its name and image once the runtime answers: dockerd
// answers about exited containers. Before, only live containers were asked again.
func TestGoneContainerIsDescribedWhenTheRuntimeAnswers(t *testing.T) {
	old := runtimePause
	runtimePause = 50 * time.Millisecond
	t.Cleanup(func() { runtimePause = old })
	sock := shortSocket(t, "docker.sock")
	cfg := testConfig()
	cfg.DockerSocket = sock
	proc := copyProc(t)
	r := startFixture(t, cfg, proc, nil) // dockerd is down: known without metadata
	c, ok := r.ContainerByRuntimeID(id1)
	if !ok || c.Image != "" {
		t.Fatalf("before dockerd: %+v %v", c, ok)
	}
	// It exits; then dockerd answers, about the exited container too.
	_ = os.RemoveAll(filepath.Join(proc, "201"))
	_ = os.RemoveAll(filepath.Join(proc, "209"))
	r.Scan()
	if c, _ := r.ContainerByRuntimeID(id1); c.GoneAt().IsZero() {
		t.Fatal("not gone")
	}
	_, requests := fakeDockerAt(t, sock, map[string]dockerInspect{id1: inspectOf("short", "busybox:1", false)})
	time.Sleep(60 * time.Millisecond) // the pause after the failure ends
	r.Scan()
	c, _ = r.ContainerByRuntimeID(id1)
	if c.Name != "short" || c.Image != "busybox:1" || c.GoneAt().IsZero() {
		t.Fatalf("gone container after dockerd answered: %+v", c)
	}
	// Described: not asked again at every scan.
	n := requests.Load()
	r.Scan()
	if got := requests.Load(); got != n {
		t.Fatalf("asked %d more times after the answer", got-n)
	}
}

func inspectOf(name, image string, running bool) dockerInspect {
	var in dockerInspect
	in.Name, in.Config.Image, in.State.Running = "/"+name, image, running
	return in
}

// A container that exited before any scan saw a process of it, named by a source (its log
// file), is listed as gone with what the runtime says about it; a running one is left to the
// scans; one the runtime no longer knows (removed) is listed with what its ID tells; and none
// is asked about again at once.
func TestDescribeGone(t *testing.T) {
	const (
		short   = "aa00000000000000000000000000000000000000000000000000000000000001"
		running = "aa00000000000000000000000000000000000000000000000000000000000002"
		removed = "aa00000000000000000000000000000000000000000000000000000000000003"
	)
	sock, requests := fakeDocker(t, map[string]dockerInspect{
		short:   inspectOf("one-shot", "busybox:1", false),
		running: inspectOf("starting", "busybox:1", true),
	})
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.DockerSocket = sock
	cfg.Retention = 5 * time.Minute
	r := startFixture(t, cfg, filepath.Join(testdata, "proc", "v2"), clk)

	for _, rid := range []string{short, running, removed} {
		r.DescribeGone(ID("/docker/"+rid), "")
	}
	r.DescribeGone("/k8s/default/pod/app", "") // no CRI runtime to ask: not listed
	r.DescribeGone("/system.slice/cron.service", "")
	r.Scan()
	c, ok := r.ContainerByID(ID("/docker/" + short))
	if !ok || c.Name != "one-shot" || c.Image != "busybox:1" || c.Runtime != "docker" || c.RuntimeID != short || c.GoneAt().IsZero() {
		t.Fatalf("one-shot container: %+v %v", c, ok)
	}
	if _, err := c.Resources(); err == nil {
		t.Fatal("a container never seen has cgroup counters")
	}
	if !slices.Contains(ids(r.Containers()), "/docker/"+short) {
		t.Fatal("not listed")
	}
	if _, ok := r.ContainerByID(ID("/docker/" + running)); ok {
		t.Fatal("a running container listed as gone")
	}
	c, ok = r.ContainerByID(ID("/docker/" + removed))
	if !ok || c.Runtime != "docker" || c.RuntimeID != removed || c.Name != "" || c.GoneAt().IsZero() {
		t.Fatalf("a container dockerd no longer knows: %+v %v", c, ok)
	}
	for _, id := range []ID{"/k8s/default/pod/app", "/system.slice/cron.service"} {
		if _, ok := r.ContainerByID(id); ok {
			t.Fatalf("%s listed", id)
		}
	}
	n := requests.Load()
	r.DescribeGone(ID("/docker/"+running), "")
	r.Scan()
	if got := requests.Load(); got != n {
		t.Fatalf("asked about %s again at once (%d requests)", running, got-n)
	}
	// Gone containers expire with the retention.
	clk.add(6 * time.Minute)
	r.Scan()
	for _, rid := range []string{short, removed} {
		if _, ok := r.ContainerByID(ID("/docker/" + rid)); ok {
			t.Fatalf("%s still listed after the retention", rid)
		}
	}
}

// A Kubernetes container that exited before any scan saw it, named by its CRI log file, is
// found among the CRI runtime's exited containers by pod sandbox, container name and the
// attempt its log path tells, and listed as gone with its image, runtime id and pod; one the
// runtime no longer lists is listed with what its log path tells; one that runs is left to the
// scans.
func TestDescribeGoneKubernetes(t *testing.T) {
	const (
		uid      = "5f0c4c9a-0000-4000-8000-000000000001"
		sandbox  = "sb00000000000000000000000000000000000000000000000000000000000001"
		attempt0 = "c000000000000000000000000000000000000000000000000000000000000000"
		attempt1 = "c000000000000000000000000000000000000000000000000000000000000001"
		other    = "c000000000000000000000000000000000000000000000000000000000000002"
		live     = "c000000000000000000000000000000000000000000000000000000000000003"
	)
	exited := func(name string, attempt uint32, created int64, image string) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{
			Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt}, State: runtimeapi.ContainerState_CONTAINER_EXITED,
			CreatedAt: created, Image: &runtimeapi.ImageSpec{Image: image},
		}
	}
	running := exited("server", 0, 5, "nginx:1")
	running.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	cri := &fakeCRI{
		sandboxes: map[string]*runtimeapi.PodSandboxStatus{
			sandbox: {Id: sandbox, Metadata: &runtimeapi.PodSandboxMetadata{Name: "job-x", Namespace: "batch", Uid: uid}},
		},
		containers: map[string]*runtimeapi.ContainerStatus{
			attempt0: exited("work", 0, 1, "busybox:1"),
			attempt1: exited("work", 1, 2, "busybox:2"),
			other:    exited("sidecar", 0, 3, "busybox:1"),
			live:     running,
		},
		inSandbox: map[string]string{attempt0: sandbox, attempt1: sandbox, other: sandbox, live: sandbox},
	}
	cfg := testConfig()
	cfg.CRISockets = []string{serveCRI(t, cri)}
	r := startFixture(t, cfg, filepath.Join(testdata, "proc", "v2"), nil)

	pods := "/var/log/pods/batch_job-x_" + uid
	r.DescribeGone("/k8s/batch/job-x/work", pods+"/work/0.log") // attempt 0, not the newest
	r.DescribeGone("/k8s/batch/job-x/sidecar", "")              // by names alone: the newest
	r.DescribeGone("/k8s/batch/job-x/init", pods+"/init/0.log") // removed from the runtime
	r.DescribeGone("/k8s/batch/job-x/server", pods+"/server/0.log")
	r.DescribeGone("/k8s/other/pod/work", "/var/log/pods/batch_job-x_"+uid+"/work/0.log") // a path of another container
	r.Scan()

	c, ok := r.ContainerByID("/k8s/batch/job-x/work")
	if !ok || c.RuntimeID != attempt0 || c.Image != "busybox:1" || c.Restarts != 0 || c.PodName != "job-x" ||
		c.Namespace != "batch" || c.PodUID != uid || c.ContainerName != "work" || c.GoneAt().IsZero() {
		t.Fatalf("the Job's container: %+v %v", c, ok)
	}
	if c, ok := r.ContainerByID("/k8s/batch/job-x/sidecar"); !ok || c.RuntimeID != other || c.Image != "busybox:1" {
		t.Fatalf("the sidecar: %+v %v", c, ok)
	}
	c, ok = r.ContainerByID("/k8s/batch/job-x/init")
	if !ok || c.RuntimeID != "" || c.Image != "" || c.Runtime != "" || c.PodName != "job-x" || c.Namespace != "batch" ||
		c.PodUID != uid || c.ContainerName != "init" || c.LogPath != pods+"/init/0.log" || c.GoneAt().IsZero() {
		t.Fatalf("a container the runtime removed: %+v %v", c, ok)
	}
	if _, ok := r.ContainerByID("/k8s/batch/job-x/server"); ok {
		t.Fatal("a running container listed as gone")
	}
	c, ok = r.ContainerByID("/k8s/other/pod/work")
	if !ok || c.PodUID != "" || c.PodName != "pod" || c.Namespace != "other" || c.LogPath != "" {
		t.Fatalf("a log path of another container must not describe it: %+v %v", c, ok)
	}
	listed := ids(r.Containers())
	for _, id := range []string{"/k8s/batch/job-x/work", "/k8s/batch/job-x/sidecar", "/k8s/batch/job-x/init"} {
		if !slices.Contains(listed, id) {
			t.Fatalf("%s not listed: %v", id, listed)
		}
	}
}

// No CRI runtime that answers (down, or its socket absent): the container is not listed as
// gone, since it may run; it is asked about again after describeGoneAgain.
func TestDescribeGoneKubernetesWithoutAnswer(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	socket := shortSocket(t, "cri.sock") // nothing listens yet
	cfg.CRISockets = []string{socket}
	r := startFixture(t, cfg, filepath.Join(testdata, "proc", "v2"), clk)
	const id = "/k8s/batch/job-x/work"
	path := "/var/log/pods/batch_job-x_u1/work/0.log"
	r.DescribeGone(id, path)
	r.Scan()
	if _, ok := r.ContainerByID(id); ok {
		t.Fatal("listed without an answer")
	}
	cri := &fakeCRI{}
	serveCRIAt(t, socket, cri)
	r.DescribeGone(id, path)
	r.Scan()
	if cri.lists.Load() != 0 {
		t.Fatal("asked again at once")
	}
	clk.add(describeGoneAgain + time.Second)
	r.DescribeGone(id, path)
	r.Scan()
	if c, ok := r.ContainerByID(id); !ok || c.PodUID != "u1" || cri.lists.Load() != 1 {
		t.Fatalf("after the runtime answered that it does not list it: %+v %v (%d listings)", c, ok, cri.lists.Load())
	}
}

// A Kubernetes container listed as gone from its runtime's answer that then runs under its ID
// (a restart a scan sees: new runtime id, new cgroup) continues as a new instance of it, with
// the cgroup counters of its new cgroup.
func TestDescribedGoneContainerComesBack(t *testing.T) {
	const exitedID = "c000000000000000000000000000000000000000000000000000000000000009"
	labels := map[string]string{labelPodName: "api-7d9f", labelPodNamespace: "shop", labelPodUID: podUID, labelContainerName: "api"}
	cri := &fakeCRI{
		sandboxes: map[string]*runtimeapi.PodSandboxStatus{
			id4: {Id: id4, Metadata: &runtimeapi.PodSandboxMetadata{Name: "api-7d9f", Namespace: "shop", Uid: podUID}},
		},
		containers: map[string]*runtimeapi.ContainerStatus{
			exitedID: {
				Id: exitedID, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 2}, State: runtimeapi.ContainerState_CONTAINER_EXITED,
				Image: &runtimeapi.ImageSpec{Image: "registry.example/api:2"}, Labels: labels,
			},
			id2: {
				Id: id2, Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 3}, State: runtimeapi.ContainerState_CONTAINER_RUNNING,
				Image: &runtimeapi.ImageSpec{Image: "registry.example/api:2"}, Labels: labels,
			},
		},
		inSandbox: map[string]string{exitedID: id4},
	}
	proc := copyProc(t)
	cgroup202, err := os.ReadFile(filepath.Join(proc, "202", "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(filepath.Join(proc, "202")) // attempt 3 has not started yet
	cfg := testConfig()
	cfg.CRISockets = []string{serveCRI(t, cri)}
	r := startFixture(t, cfg, proc, nil)
	const id = "/k8s/shop/api-7d9f/api"
	r.DescribeGone(id, "/var/log/pods/shop_api-7d9f_"+podUID+"/api/2.log")
	r.Scan()
	gone, ok := r.ContainerByID(id)
	if !ok || gone.RuntimeID != exitedID || gone.Restarts != 2 || gone.GoneAt().IsZero() {
		t.Fatalf("attempt 2, gone: %+v %v", gone, ok)
	}
	if _, err := gone.Resources(); err == nil {
		t.Fatal("cgroup counters of a container never seen")
	}

	writeProc(t, proc, "202", string(cgroup202)) // attempt 3 runs
	r.Scan()
	back, ok := r.ContainerByID(id)
	if !ok || back.RuntimeID != id2 || back.Restarts != 3 || !back.GoneAt().IsZero() || !back.FirstSeen.After(gone.FirstSeen) && !back.FirstSeen.Equal(gone.FirstSeen) {
		t.Fatalf("attempt 3, running: %+v %v", back, ok)
	}
	if st, err := back.Resources(); err != nil || !st.HasCPU {
		t.Fatalf("the new instance's cgroup counters: %+v %v", st, err)
	}
	if !slices.Contains(ids(r.Containers()), id) {
		t.Fatal("not listed")
	}
}
