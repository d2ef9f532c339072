package containers

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
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
// scans, an unknown one is not listed, and neither is asked about again at once.
func TestDescribeGone(t *testing.T) {
	const (
		short   = "aa00000000000000000000000000000000000000000000000000000000000001"
		running = "aa00000000000000000000000000000000000000000000000000000000000002"
		unknown = "aa00000000000000000000000000000000000000000000000000000000000003"
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

	for _, rid := range []string{short, running, unknown} {
		r.DescribeGone(ID("/docker/" + rid))
	}
	r.DescribeGone("/k8s/default/pod/app") // no runtime id to ask by
	r.Scan()
	c, ok := r.ContainerByID(ID("/docker/" + short))
	if !ok || c.Name != "one-shot" || c.Image != "busybox:1" || c.Runtime != "docker" || c.GoneAt().IsZero() {
		t.Fatalf("one-shot container: %+v %v", c, ok)
	}
	if _, err := c.Resources(); err == nil {
		t.Fatal("a container never seen has cgroup counters")
	}
	if !slices.Contains(ids(r.Containers()), "/docker/"+short) {
		t.Fatal("not listed")
	}
	for _, rid := range []string{running, unknown} {
		if _, ok := r.ContainerByID(ID("/docker/" + rid)); ok {
			t.Fatalf("%s listed as gone", rid)
		}
	}
	n := requests.Load()
	r.DescribeGone(ID("/docker/" + unknown))
	r.Scan()
	if got := requests.Load(); got != n {
		t.Fatalf("asked about %s again at once (%d requests)", unknown, got-n)
	}
	// Gone containers expire with the retention.
	clk.add(6 * time.Minute)
	r.Scan()
	if _, ok := r.ContainerByID(ID("/docker/" + short)); ok {
		t.Fatal("still listed after the retention")
	}
}
