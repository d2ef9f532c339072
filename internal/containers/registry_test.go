package containers

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testdata = func() string { p, _ := filepath.Abs("../../testdata"); return p }()

const (
	id1     = "7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14" // docker, v2 pids 201 209
	id2     = "e147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258b" // containerd k8s, pid 202
	id3     = "58be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf2" // crio, pid 203
	id4     = "cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369" // a pod sandbox, pid 204
	id5     = "369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0" // podman, pid 205
	podUID  = "8d4e1f6a-52b3-4c70-9e21-3f5a6b7c8d90"
	podUID2 = "1a2b3c4d-0000-4111-8222-333344445555"
)

// clock is a settable time source for retention tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// testConfig returns a registry config with no real runtime and no background ticks during
// the test (the first background scan still runs).
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.DockerSocket = ""
	cfg.CRISockets = nil
	cfg.ScanInterval = time.Hour
	cfg.MetadataRefreshInterval = time.Hour
	cfg.MinRescanInterval = 0
	cfg.RuntimeTimeout = 300 * time.Millisecond
	return cfg
}

func startFixture(t *testing.T, cfg Config, procRoot string, clk *clock) *Registry {
	t.Helper()
	r := &Registry{}
	if clk != nil {
		r.now = clk.now
	}
	cg := cgroups.Config{Enabled: true, Root: filepath.Join(testdata, "cgroupfs", "v2"), ProcRoot: procRoot}
	if err := r.Start(cfg, cg, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	r.Scan()
	// Wait for the background's first scan too: run later, it would publish what it read
	// before a test's change over the change.
	for deadline := time.Now().Add(10 * time.Second); r.Stats().Scans < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the background's first scan did not run")
		}
		time.Sleep(time.Millisecond)
	}
	return r
}

func ids(cs []*Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c.ID)
	}
	return out
}

func TestRegistryFixtureWithRuntimes(t *testing.T) {
	dockerSock, _ := fakeDocker(t, map[string]dockerInspect{
		id1: {
			Name: "/web", RestartCount: 2, LogPath: "/var/lib/docker/containers/" + id1 + "/" + id1 + "-json.log",
			Config: dockerConfig{Image: "nginx:1.27", Labels: map[string]string{"app": "web"}, Env: []string{
				"PATH=/usr/bin", "NOMAD_JOB_NAME=shop", "NOMAD_TASK_NAME=web", "NOMAD_ALLOC_ID=", "SECRET=x",
			}},
		},
	})
	criSock := serveCRI(t, &fakeCRI{
		containers: map[string]*runtimeapi.ContainerStatus{
			id2: {
				Id:       id2,
				Metadata: &runtimeapi.ContainerMetadata{Name: "api", Attempt: 3},
				Image:    &runtimeapi.ImageSpec{Image: "registry.example/api:2"},
				Labels: map[string]string{
					labelPodName: "api-7d9f", labelPodNamespace: "shop", labelPodUID: podUID,
					labelContainerName: "api",
				},
				LogPath: "/var/log/pods/shop_api-7d9f_" + podUID + "/api/3.log",
			},
		},
		sandboxes: map[string]*runtimeapi.PodSandboxStatus{id4: {Id: id4}},
	})
	cfg := testConfig()
	cfg.DockerSocket = dockerSock
	cfg.CRISockets = []string{"/nonexistent/containerd.sock", criSock}
	r := startFixture(t, cfg, filepath.Join(testdata, "proc", "v2"), nil)

	got := ids(r.Containers())
	want := []string{"/crio/" + id3, "/docker/" + id1, "/k8s/shop/api-7d9f/api", "/podman/" + id5, "/system.slice/nginx.service"}
	if !slices.Equal(got, want) {
		t.Fatalf("Containers() = %v\nwant %v", got, want)
	}

	c, ok := r.ContainerByPID(209)
	if !ok || c.ID != ID("/docker/"+id1) || c.Name != "web" || c.Image != "nginx:1.27" || c.Restarts != 2 ||
		c.Runtime != "docker" || c.RuntimeID != id1 || c.Labels["app"] != "web" || c.LogPath == "" {
		t.Fatalf("docker container: %+v", c)
	}
	if c.Processes() != 2 {
		t.Fatalf("docker container has %d processes, want 2 (pids 201, 209)", c.Processes())
	}
	// Only the Nomad variables are kept of its environment, an empty one too.
	if want := map[string]string{"NOMAD_JOB_NAME": "shop", "NOMAD_TASK_NAME": "web", "NOMAD_ALLOC_ID": ""}; !maps.Equal(c.Env, want) {
		t.Fatalf("docker container env %v, want %v", c.Env, want)
	}
	if pids := r.PIDsByContainer(); !slices.Equal(pids[c.ID], []uint32{201, 209}) || len(pids["/system.slice/nginx.service"]) == 0 {
		t.Fatalf("PIDsByContainer: %v", pids)
	}
	s, err := c.Resources()
	if err != nil || s.CPU.LimitCores != 0.5 || s.Memory.LimitBytes != 64<<20 || s.CPU.UsageSeconds != 1.123456 {
		t.Fatalf("docker resources: %+v %v", s, err)
	}

	k, ok := r.ContainerByRuntimeID(id2)
	if !ok || k.PodName != "api-7d9f" || k.Namespace != "shop" || k.ContainerName != "api" || k.PodUID != podUID ||
		k.Restarts != 3 || k.Image != "registry.example/api:2" || k.Runtime != "containerd" || k.LogPath == "" {
		t.Fatalf("k8s container: %+v", k)
	}

	crio, _ := r.ContainerByRuntimeID(id3)
	if crio == nil || crio.PodUID != podUID2 || crio.Name != "" {
		t.Fatalf("crio container without metadata: %+v", crio)
	}
	if _, ok := r.ContainerByPID(204); ok {
		t.Fatal("a pod sandbox was registered as a container")
	}
	for _, pid := range []uint32{1, 207, 208} {
		if c, ok := r.ContainerByPID(pid); ok {
			t.Fatalf("pid %d (not in a container) attributed to %s", pid, c.ID)
		}
	}
	if _, ok := r.ContainerByPID(4242); ok {
		t.Fatal("unknown pid attributed")
	}

	// The cgroup id is the inode of the container's v2 directory; podman's process sits in
	// the nested "container" cgroup, whose inode maps to the podman container too.
	for path, want := range map[string]ID{
		"/system.slice/docker-" + id1 + ".scope":            ID("/docker/" + id1),
		"/machine.slice/libpod-" + id5 + ".scope/container": ID("/podman/" + id5),
	} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(testdata, "cgroupfs", "v2", path), &st); err != nil {
			t.Fatal(err)
		}
		c, ok := r.ContainerByCgroupID(st.Ino)
		if !ok || c.ID != want {
			t.Fatalf("ContainerByCgroupID(%s) = %v, %v; want %s", path, c, ok, want)
		}
	}
	if st := r.Stats(); st.Scans < 1 || st.ProcessErrors != 0 || st.RuntimeLookups < 4 {
		t.Fatalf("self stats: %+v", st)
	}
}

// copyProc copies the v2 proc fixture so a test can add and remove processes.
func copyProc(t *testing.T) string {
	t.Helper()
	src := filepath.Join(testdata, "proc", "v2")
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			data, err := os.ReadFile(filepath.Join(src, e.Name(), "cgroup"))
			if err != nil {
				t.Fatal(err)
			}
			writeProc(t, dst, e.Name(), string(data))
			continue
		}
		data, _ := os.ReadFile(filepath.Join(src, e.Name()))
		_ = os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644)
	}
	return dst
}

func writeProc(t *testing.T, root, pid, cgroup string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, pid, "cgroup"), []byte(cgroup), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryGoneAndRetention(t *testing.T) {
	proc := copyProc(t)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.Retention = 5 * time.Minute
	r := startFixture(t, cfg, proc, clk)
	dockerID := ID("/docker/" + id1)

	c, ok := r.ContainerByID(dockerID)
	if !ok || !c.GoneAt().IsZero() {
		t.Fatalf("docker container missing or gone: %v", c)
	}
	// One process exits (event): still live.
	_ = os.RemoveAll(filepath.Join(proc, "209"))
	r.OnProcessExit(209)
	if c.Processes() != 1 || !c.GoneAt().IsZero() {
		t.Fatalf("after one exit: %d processes, gone %v", c.Processes(), c.GoneAt())
	}
	// The last one exits and its cgroup disappears: gone, but still listed with its last stats.
	before, err := c.Resources()
	if err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(filepath.Join(proc, "201"))
	r.OnProcessExit(201)
	clk.add(time.Minute)
	r.Scan()
	if gone := c.GoneAt(); !gone.Equal(clk.t.Add(-time.Minute)) {
		t.Fatalf("GoneAt = %v, want the exit time %v", gone, clk.t.Add(-time.Minute))
	}
	if !slices.Contains(ids(r.Containers()), string(dockerID)) {
		t.Fatal("gone container dropped before its retention")
	}
	c.st.cg.paths = cgroups.Paths{Unified: "/system.slice/docker-vanished.scope"} // its cgroup is removed
	after, err := c.Resources()
	if err != nil || after.CPU != before.CPU {
		t.Fatalf("gone container's final counters: %+v, %v; want %+v", after.CPU, err, before.CPU)
	}
	// Retention passes: forgotten everywhere.
	clk.add(5 * time.Minute)
	r.Scan()
	if slices.Contains(ids(r.Containers()), string(dockerID)) {
		t.Fatal("container listed after its retention")
	}
	if _, ok := r.ContainerByRuntimeID(id1); ok {
		t.Fatal("container still found by runtime id after its retention")
	}
	if st := r.Stats(); st.Expired != 1 {
		t.Fatalf("expired = %d, want 1", st.Expired)
	}
	// It comes back (docker restart keeps the cgroup): a new life under the same ID.
	writeProc(t, proc, "301", "0::/system.slice/docker-"+id1+".scope\n")
	c2, ok := r.OnProcessStart(301)
	if !ok || c2.ID != dockerID || !c2.GoneAt().IsZero() {
		t.Fatalf("restarted container: %+v %v", c2, ok)
	}
}

func TestRegistryNewContainerOnDemand(t *testing.T) {
	proc := copyProc(t)
	r := startFixture(t, testConfig(), proc, nil)
	// A process in a hand-made cgroup appears after the scan; eBPF reports its cgroup id.
	root := t.TempDir()
	_ = root
	cgDir := filepath.Join(testdata, "cgroupfs", "v2", "system.slice", "nginx.service")
	var st syscall.Stat_t
	if err := syscall.Stat(cgDir, &st); err != nil {
		t.Fatal(err)
	}
	// nginx.service is known already; remove it from the registry's view by starting over
	// with a proc tree that lacks pid 206, then add it.
	_ = os.RemoveAll(filepath.Join(proc, "206"))
	clk := &clock{t: time.Now()}
	r2 := startFixture(t, testConfig(), proc, clk)
	if _, ok := r2.ContainerByCgroupID(st.Ino); ok {
		t.Fatal("nginx.service known before its process exists")
	}
	writeProc(t, proc, "206", "0::/system.slice/nginx.service\n")
	// The miss above is remembered for a moment (a stream of events from an unknown cgroup
	// costs one scan, not one each); past it, the id is looked for again.
	if _, ok := r2.ContainerByCgroupID(st.Ino); ok {
		t.Fatal("a recent miss looked for again at once")
	}
	clk.add(missTTL)
	c, ok := r2.ContainerByCgroupID(st.Ino)
	if !ok || c.ID != "/system.slice/nginx.service" || c.Runtime != "systemd" || c.Name != "nginx.service" {
		t.Fatalf("on-demand: %+v %v", c, ok)
	}
	if r2.Stats().Rescans == 0 {
		t.Fatal("no rescan counted")
	}
	if c, ok := r.ContainerByPID(206); !ok || c.ID != "/system.slice/nginx.service" {
		t.Fatalf("first registry lost nginx: %v", c)
	}
}

func TestRegistryOtherCgroupsSwitch(t *testing.T) {
	proc := copyProc(t)
	writeProc(t, proc, "500", "0::/codexray-test-1\n")
	writeProc(t, proc, "501", "0::/user.slice/user-1000.slice/session-2.scope\n")
	cfg := testConfig()
	cfg.IncludeOtherCgroups = true
	on := startFixture(t, cfg, proc, nil)
	if c, ok := on.ContainerByPID(500); !ok || c.ID != "/codexray-test-1" || c.Runtime != "cgroup" {
		t.Fatalf("other cgroup with the switch on: %+v %v", c, ok)
	}
	if _, ok := on.ContainerByPID(501); ok {
		t.Fatal("a user session is not a container")
	}
	off := startFixture(t, testConfig(), proc, nil) // the default, as in coroot-node-agent
	if _, ok := off.ContainerByPID(500); ok {
		t.Fatal("other cgroup tracked with the switch off")
	}
}

func TestRegistryZeroValueAndLifecycle(t *testing.T) {
	var r Registry
	if _, ok := r.ContainerByPID(1); ok {
		t.Fatal("zero registry hit")
	}
	if _, ok := r.ContainerByCgroupID(1); ok {
		t.Fatal("zero registry hit")
	}
	if _, ok := r.ContainerByRuntimeID("x"); ok {
		t.Fatal("zero registry hit")
	}
	if cs := r.Containers(); len(cs) != 0 {
		t.Fatal("zero registry lists containers")
	}
	r.OnProcessExit(1)
	r.Scan()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// Start fails cleanly on a root without cgroups, and can be closed after.
	var bad Registry
	if err := bad.Start(testConfig(), cgroups.Config{Root: t.TempDir(), ProcRoot: "/proc"}, nil); err == nil {
		t.Fatal("Start on an empty root succeeded")
	}
	_ = bad.Close()
	// Start twice fails; Close twice is fine.
	r2 := startFixture(t, testConfig(), filepath.Join(testdata, "proc", "v2"), nil)
	if err := r2.Start(testConfig(), cgroups.Config{Root: filepath.Join(testdata, "cgroupfs", "v2"), ProcRoot: "/proc"}, nil); err == nil {
		t.Fatal("second Start succeeded")
	}
	_ = r2.Close()
	_ = r2.Close()
}

func TestRegistryBadRuntimes(t *testing.T) {
	for _, tt := range []struct {
		name    string
		garbage bool
	}{{"garbage", true}, {"hang", false}} {
		t.Run(tt.name, func(t *testing.T) {
			sock := badSocket(t, tt.garbage)
			cfg := testConfig()
			cfg.DockerSocket = sock
			cfg.CRISockets = []string{sock}
			start := time.Now()
			r := startFixture(t, cfg, filepath.Join(testdata, "proc", "v2"), nil)
			// Each runtime costs at most one timeout, then is paused: the scans stay fast.
			r.Scan()
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("scans took %v with a %s runtime", el, tt.name)
			}
			got := ids(r.Containers())
			want := []string{"/containerd/" + id4, "/containerd/" + id2, "/crio/" + id3, "/docker/" + id1, "/podman/" + id5, "/system.slice/nginx.service"}
			if !slices.Equal(got, want) {
				t.Fatalf("containers with a %s runtime: %v\nwant %v", tt.name, got, want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.ScanInterval = 0 }, "scan_interval"},
		{func(c *Config) { c.Retention = -1 }, "retention"},
		{func(c *Config) { c.RuntimeTimeout = 0 }, "runtime_timeout"},
		{func(c *Config) { c.MetadataRefreshInterval = time.Millisecond }, "metadata_refresh_interval"},
		{func(c *Config) { c.CRISockets = []string{""} }, "cri_sockets"},
	} {
		c := DefaultConfig()
		tt.mut(&c)
		if err := c.Validate(); err == nil || !contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want mention of %s", err, tt.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestRegistryBadProcesses(t *testing.T) {
	proc := copyProc(t)
	// 600 exited between listing and reading (no cgroup file); 601's file is unreadable
	// (a directory); 602's is garbage. None may cost a container or stop the scan.
	if err := os.MkdirAll(filepath.Join(proc, "600"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(proc, "601", "cgroup"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeProc(t, proc, "602", "this is not a cgroup file")
	r := startFixture(t, testConfig(), proc, nil)
	if got := len(r.Containers()); got != 6 {
		t.Fatalf("%d containers, want 6: %v", got, ids(r.Containers()))
	}
	if st := r.Stats(); st.ProcessErrors < 2 {
		t.Fatalf("process errors = %d, want the unreadable and the garbage file counted", st.ProcessErrors)
	}
	for _, pid := range []uint32{600, 601, 602} {
		if c, ok := r.ContainerByPID(pid); ok {
			t.Fatalf("pid %d attributed to %s", pid, c.ID)
		}
	}
}

func TestRegistryRuntimeComesBack(t *testing.T) {
	old := runtimePause
	runtimePause = 100 * time.Millisecond
	t.Cleanup(func() { runtimePause = old })
	sock := shortSocket(t, "docker.sock")
	cfg := testConfig()
	cfg.DockerSocket = sock
	// dockerd is down at the first scan: the container is known without metadata.
	r := startFixture(t, cfg, filepath.Join(testdata, "proc", "v2"), nil)
	c, ok := r.ContainerByRuntimeID(id1)
	if !ok || c.Name != "" {
		t.Fatalf("before dockerd: %+v %v", c, ok)
	}
	// dockerd starts on the same socket; the next refresh fills the metadata in, ID unchanged.
	fakeDockerAt(t, sock, map[string]dockerInspect{id1: {Name: "/back", RestartCount: 1}})
	time.Sleep(150 * time.Millisecond)
	r.refreshMetadata(t.Context())
	c, _ = r.ContainerByRuntimeID(id1)
	if c.Name != "back" || c.Restarts != 1 || c.ID != ID("/docker/"+id1) {
		t.Fatalf("after dockerd came back: %+v", c)
	}
}
