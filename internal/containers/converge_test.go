package containers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

// A runtime moves a new container's first process into the container's cgroups one hierarchy
// after another: runc (under dockerd or containerd) joins the cgroup v2 hierarchy and each v1
// controller hierarchy in turn, in an order that varies (seen on this project's hybrid VM:
// sometimes cgroup v2 first, sometimes every v1 controller first and cgroup v2 last). An exec
// event of the process, a lookup by pid or a scan that reads /proc/<pid>/cgroup in that window
// sees only part of the container. These tests build the cgroup trees of the layouts and
// drivers the agent meets, show the registry a process in each such state first, and check
// that the container's stats converge on its own cgroups within two collections and never
// read another cgroup's numbers.

// hierarchyOrder lists the hierarchies of a v1/hybrid host in /proc/<pid>/cgroup order, with
// the controllers the agent does not read (cpuset, devices, pids, freezer).
var hierarchyOrder = []struct {
	line string // "<id>:<controllers>"
	dir  string // mount directory below the cgroup root ("" for cgroup v2)
}{
	{"9:name=systemd", "systemd"},
	{"8:pids", "pids"},
	{"7:blkio", "blkio"},
	{"6:freezer", "freezer"},
	{"5:devices", "devices"},
	{"4:memory", "memory"},
	{"3:cpuset", "cpuset"},
	{"2:cpuacct", "cpuacct"},
	{"1:cpu", "cpu"},
	{"0:", "unified"},
}

// The container's own numbers in every tree, and the numbers of every other cgroup (the
// runtime's, the shim's, the root): a reading that shows the latter read the wrong cgroup.
const (
	ownRSS, ownCache, ownLimit     = 73728, 36864, 64 << 20
	ownUsage, ownThrottled, ownCPU = 9.000000007, 0.027, 0.5
	otherRSS, otherLimit           = 999 << 20, 3 << 30
)

// host is a generated cgroup root and procfs.
type host struct {
	layout  string // "v1", "hybrid", "v2"
	root    string // cgroup root
	proc    string // procfs root
	shimV1  map[string]string
	shimV2  string
	ctrPath string
}

func newHost(t *testing.T, layout, ctrPath string) *host {
	t.Helper()
	base := t.TempDir()
	h := &host{
		layout: layout, root: filepath.Join(base, "cgroup"), proc: filepath.Join(base, "proc"), ctrPath: ctrPath,
		// Where this VM's dockerd and containerd shims live: memory in a cgroup of their own,
		// every other v1 controller and cgroup v2 at the root.
		shimV1: map[string]string{"memory": "/process_api/62565ef583e86d5aca5ca9b2c6406f80"}, shimV2: "/system.slice/containerd.service",
	}
	if err := os.MkdirAll(h.proc, 0o755); err != nil {
		t.Fatal(err)
	}
	switch layout {
	case "v2":
		write(t, filepath.Join(h.root, "cgroup.controllers"), "cpu io memory pids\n")
		h.v2Files(t, "/", false)
		h.v2Files(t, h.shimV2, false)
	case "hybrid":
		write(t, filepath.Join(h.root, "unified", "cgroup.controllers"), "")
		fallthrough
	case "v1":
		for _, hi := range hierarchyOrder {
			if hi.dir == "unified" && layout == "v1" {
				continue
			}
			if err := os.MkdirAll(filepath.Join(h.root, hi.dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		h.v1Files(t, "/", false, "cpu", "cpuacct", "memory", "blkio")
		if layout == "hybrid" {
			h.v1Files(t, "/", false, "unified")
		}
		h.v1Files(t, h.shimV1["memory"], false, "memory")
	}
	return h
}

func write(t *testing.T, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// v1Files writes a cgroup's files in the given hierarchies of a v1/hybrid tree: the
// container's numbers when own, another cgroup's otherwise.
func (h *host) v1Files(t *testing.T, path string, own bool, hierarchies ...string) {
	t.Helper()
	rss, limit, quota, usage, throttled := otherRSS, otherLimit, -1, "123000000000", "0"
	if own {
		rss, limit, quota, usage, throttled = ownRSS, ownLimit, 50000, "9000000007", "27000000"
	}
	for _, hi := range hierarchies {
		dir := filepath.Join(h.root, hi, path)
		switch hi {
		case "cpu":
			write(t, filepath.Join(dir, "cpu.cfs_quota_us"), fmt.Sprintf("%d\n", quota))
			write(t, filepath.Join(dir, "cpu.cfs_period_us"), "100000\n")
			write(t, filepath.Join(dir, "cpu.stat"), "nr_periods 40\nnr_throttled 3\nthrottled_time "+throttled+"\n")
		case "cpuacct":
			write(t, filepath.Join(dir, "cpuacct.usage"), usage+"\n")
		case "memory":
			write(t, filepath.Join(dir, "memory.stat"), fmt.Sprintf("cache 1\nrss 2\ntotal_cache %d\ntotal_rss %d\n", ownCache, rss))
			write(t, filepath.Join(dir, "memory.limit_in_bytes"), fmt.Sprintf("%d\n", limit))
		case "blkio":
			write(t, filepath.Join(dir, "blkio.throttle.io_serviced"), "8:0 Read 5\n8:0 Write 6\nTotal 11\n")
			write(t, filepath.Join(dir, "blkio.throttle.io_service_bytes"), "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n")
		case "unified":
			write(t, filepath.Join(dir, "cpu.stat"), "usage_usec 9000000\nuser_usec 1\nsystem_usec 1\n")
			for _, p := range []string{"cpu.pressure", "memory.pressure", "io.pressure"} {
				write(t, filepath.Join(dir, p), "some avg10=0.00 avg60=0.00 avg300=0.00 total=100\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=50\n")
			}
		default:
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// v2Files writes a cgroup's files in a pure cgroup v2 tree.
func (h *host) v2Files(t *testing.T, path string, own bool) {
	t.Helper()
	dir := filepath.Join(h.root, path)
	cpuMax, rss, limit, usage, throttled := "max 100000", otherRSS, "max", "123000000000", "0"
	if own {
		cpuMax, rss, limit, usage, throttled = "50000 100000", ownRSS, fmt.Sprint(ownLimit), "9000000007", "27000"
	}
	write(t, filepath.Join(dir, "cpu.stat"), "usage_usec "+usage[:len(usage)-3]+"\nnr_periods 40\nnr_throttled 3\nthrottled_usec "+throttled+"\n")
	write(t, filepath.Join(dir, "cpu.max"), cpuMax+"\n")
	write(t, filepath.Join(dir, "memory.stat"), fmt.Sprintf("anon %d\nfile %d\n", rss, ownCache))
	write(t, filepath.Join(dir, "memory.max"), limit+"\n")
	write(t, filepath.Join(dir, "io.stat"), "8:0 rbytes=4096 wbytes=8192 rios=5 wios=6\n")
	for _, p := range []string{"cpu.pressure", "memory.pressure", "io.pressure"} {
		write(t, filepath.Join(dir, p), "some avg10=0.00 avg60=0.00 avg300=0.00 total=100\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=50\n")
	}
}

// createContainer creates the container's cgroup in the given hierarchies (all when none are
// named), as the runtime does before it moves the process in.
func (h *host) createContainer(t *testing.T, hierarchies ...string) {
	t.Helper()
	if h.layout == "v2" {
		h.v2Files(t, h.ctrPath, true)
		return
	}
	if len(hierarchies) == 0 {
		for _, hi := range hierarchyOrder {
			if hi.dir != "unified" || h.layout == "hybrid" {
				hierarchies = append(hierarchies, hi.dir)
			}
		}
	}
	h.v1Files(t, h.ctrPath, true, hierarchies...)
}

// moveProcess writes /proc/<pid>/cgroup with the process inside the container in the named
// hierarchies ("all" for every one) and at the shim's cgroup in the others.
func (h *host) moveProcess(t *testing.T, pid int, inside ...string) {
	t.Helper()
	in := map[string]bool{}
	for _, s := range inside {
		in[s] = true
	}
	var b strings.Builder
	if h.layout == "v2" {
		p := h.shimV2
		if in["unified"] || in["all"] {
			p = h.ctrPath
		}
		b.WriteString("0::" + p + "\n")
	} else {
		for _, hi := range hierarchyOrder {
			if hi.dir == "unified" && h.layout == "v1" {
				continue
			}
			p := h.shimV1[hi.dir]
			if p == "" {
				p = "/"
			}
			if in[hi.dir] || in["all"] {
				p = h.ctrPath
			}
			b.WriteString(hi.line + ":" + p + "\n")
		}
	}
	write(t, filepath.Join(h.proc, fmt.Sprint(pid), "cgroup"), b.String())
}

const movingPID = 4242

// The cgroup paths the container runtimes and drivers give a container.
var drivers = []struct {
	name, layout, path string
}{
	{"dockerd cgroupfs driver, hybrid", "hybrid", "/docker/" + id1},
	{"dockerd cgroupfs driver, v1", "v1", "/docker/" + id1},
	{"dockerd systemd driver, hybrid", "hybrid", "/system.slice/docker-" + id1 + ".scope"},
	{"containerd kubepods cgroupfs, hybrid", "hybrid", "/kubepods/burstable/pod" + podUID + "/" + id2},
	{
		"containerd kubepods systemd driver, hybrid", "hybrid",
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice/cri-containerd-" + id2 + ".scope",
	},
	{"dockerd systemd driver, v2", "v2", "/system.slice/docker-" + id1 + ".scope"},
	{
		"containerd kubepods systemd driver, v2", "v2",
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice/cri-containerd-" + id2 + ".scope",
	},
}

// The states in which the registry may first see the moving process (v1 and hybrid; on v2 the
// move is one write, so only "nothing" and "unified" exist).
var firstSights = []struct {
	name   string
	inside []string
}{
	{"cgroup v2 first (runc's order seen most)", []string{"unified"}},
	{"cgroup v2 and memory", []string{"unified", "memory"}},
	{"cpuset and devices only", []string{"cpuset", "devices"}},
	{"every v1 controller, not yet name=systemd and cgroup v2", []string{"pids", "blkio", "freezer", "devices", "memory", "cpuset", "cpuacct", "cpu"}},
	{"memory, cpu and cpuacct", []string{"memory", "cpu", "cpuacct"}},
}

// checkOwn fails unless s is the container's complete reading from its own cgroups.
func checkOwn(t *testing.T, layout string, s cgroups.Stats, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("reading: %v", err)
	}
	if !s.HasMemory || s.Memory.RSSBytes != ownRSS || s.Memory.CacheBytes != ownCache || s.Memory.LimitBytes != ownLimit {
		t.Errorf("memory %+v (has %v), want rss %d cache %d limit %d: the container's own", s.Memory, s.HasMemory, ownRSS, ownCache, ownLimit)
	}
	if !s.HasCPU || !s.HasThrottling || s.CPU.LimitCores != ownCPU || s.CPU.ThrottledSeconds != ownThrottled {
		t.Errorf("cpu %+v (has %v, throttling %v), want limit %v throttled %v", s.CPU, s.HasCPU, s.HasThrottling, ownCPU, ownThrottled)
	}
	if layout != "v2" && s.CPU.UsageSeconds != ownUsage {
		t.Errorf("cpu usage %v, want cpuacct.usage %v", s.CPU.UsageSeconds, ownUsage)
	}
	if len(s.IO) != 1 || s.IO[0].ReadBytes != 4096 {
		t.Errorf("block IO %+v", s.IO)
	}
	if layout != "v1" && !s.HasPSI {
		t.Errorf("no PSI from cgroup v2")
	}
}

// TestContainerSeenWhileMovedConverges: the registry sees the container's first process while
// the runtime is moving it (an exec event), in every state of the move, on every layout and
// driver; the move then completes without any further event. The first collection already
// reads everything from the container's own cgroups; nothing is counted as incomplete.
func TestContainerSeenWhileMovedConverges(t *testing.T) {
	for _, d := range drivers {
		for _, sight := range firstSights {
			onlyV2 := len(sight.inside) == 1 && sight.inside[0] == "unified"
			if d.layout == "v2" && !onlyV2 || d.layout == "v1" && onlyV2 {
				continue // v2 has one hierarchy; v1 has no cgroup v2 to be moved into first
			}
			t.Run(d.name+"/"+sight.name, func(t *testing.T) {
				h := newHost(t, d.layout, d.path)
				r := startAt(t, testConfig(), h.root, h.proc, nil)
				h.createContainer(t)
				h.moveProcess(t, movingPID, sight.inside...)
				c, ok := r.OnProcessStart(movingPID) // the exec event, read mid-move
				if !ok {
					t.Fatalf("process %d not attributed to a container", movingPID)
				}
				if c.CgroupPath != d.path {
					t.Fatalf("container cgroup %q, want %q", c.CgroupPath, d.path)
				}
				h.moveProcess(t, movingPID, "all") // the runtime finishes; no event says so
				for collection := 1; collection <= 2; collection++ {
					s, err := c.Resources()
					checkOwn(t, d.layout, s, err)
				}
				if n := r.Stats().CgroupIncomplete; n != 0 {
					t.Errorf("CgroupIncomplete = %d, want 0", n)
				}
			})
		}
	}
}

// TestContainerFirstSeenBeforeItsCgroupsExist: the runtime has created the container's cgroup
// in some hierarchies only when its process is first seen. Until the others exist, their parts
// are absent from the readings (never the shim's or the root's), the container counts once as
// incomplete when its second collection still lacks them, and it is complete at the first
// collection after they appear.
func TestContainerFirstSeenBeforeItsCgroupsExist(t *testing.T) {
	h := newHost(t, "hybrid", "/docker/"+id1)
	r := startAt(t, testConfig(), h.root, h.proc, nil)
	h.createContainer(t, "unified", "memory")
	h.moveProcess(t, movingPID, "unified", "memory")
	c, ok := r.OnProcessStart(movingPID)
	if !ok {
		t.Fatal("not attributed")
	}
	for collection := 1; collection <= 3; collection++ {
		s, _ := c.Resources()
		if !s.HasMemory || s.Memory.RSSBytes != ownRSS || s.Memory.LimitBytes != ownLimit {
			t.Fatalf("collection %d: memory %+v, want the container's own", collection, s.Memory)
		}
		if s.HasThrottling || s.CPU.LimitCores != 0 || (s.HasCPU && s.CPU.UsageSeconds != 9) {
			t.Fatalf("collection %d: cpu %+v (throttling %v) read from a cgroup that is not the container's", collection, s.CPU, s.HasThrottling)
		}
		want := uint64(0)
		if collection >= 2 {
			want = 1
		}
		if n := r.Stats().CgroupIncomplete; n != want {
			t.Fatalf("collection %d: CgroupIncomplete = %d, want %d", collection, n, want)
		}
	}
	h.createContainer(t)
	h.moveProcess(t, movingPID, "all")
	s, err := c.Resources()
	checkOwn(t, "hybrid", s, err)
	if n := r.Stats().CgroupIncomplete; n != 1 {
		t.Fatalf("CgroupIncomplete = %d after it completed, want it counted once", n)
	}
}

// TestMovedContainerIsNotANewInstance: a container first seen mid-move is known by the inode
// of one hierarchy's directory; seeing it complete later (a scan, another process) must not
// make it a new instance (a restart would reset its counters' start).
func TestMovedContainerIsNotANewInstance(t *testing.T) {
	h := newHost(t, "hybrid", "/docker/"+id1)
	r := startAt(t, testConfig(), h.root, h.proc, nil)
	// Every v1 controller first; cgroup v2 not even created yet.
	v1 := []string{"systemd", "pids", "blkio", "freezer", "devices", "memory", "cpuset", "cpuacct", "cpu"}
	h.createContainer(t, v1...)
	h.moveProcess(t, movingPID, v1...)
	first, ok := r.OnProcessStart(movingPID)
	if !ok {
		t.Fatal("not attributed")
	}
	h.createContainer(t)
	h.moveProcess(t, movingPID, "all")
	r.Scan()
	r.OnProcessStart(movingPID)
	now, _ := r.ContainerByPID(movingPID)
	if st := r.Stats(); st.NewInstances != 0 || !now.FirstSeen.Equal(first.FirstSeen) {
		t.Fatalf("seen complete after a partial first sight: %d new instances, FirstSeen %v -> %v", st.NewInstances, first.FirstSeen, now.FirstSeen)
	}
	s, err := now.Resources()
	checkOwn(t, "hybrid", s, err)
}

// TestRestartedContainerSeenWhileMovedConverges: docker restart re-creates the container's
// cgroup under the same path; the new process is seen mid-move. It is a new instance whose
// stats are read, complete, from the re-created cgroups.
func TestRestartedContainerSeenWhileMovedConverges(t *testing.T) {
	h := newHost(t, "hybrid", "/docker/"+id1)
	r := startAt(t, testConfig(), h.root, h.proc, nil)
	h.createContainer(t)
	h.moveProcess(t, movingPID, "all")
	if _, ok := r.OnProcessStart(movingPID); !ok {
		t.Fatal("not attributed")
	}
	// Stopped: process and cgroups gone. Started again: cgroups re-created (new inodes).
	_ = os.RemoveAll(filepath.Join(h.proc, fmt.Sprint(movingPID)))
	r.OnProcessExit(movingPID)
	// The old directories are renamed away rather than removed, so the file system cannot hand
	// their inode numbers to the new ones.
	for _, hi := range hierarchyOrder {
		dir := filepath.Join(h.root, hi.dir, h.ctrPath)
		if err := os.Rename(dir, dir+".old"); err != nil {
			t.Fatal(err)
		}
	}
	h.createContainer(t)
	h.moveProcess(t, movingPID+1, "unified")
	c, ok := r.OnProcessStart(movingPID + 1)
	if !ok {
		t.Fatal("restarted process not attributed")
	}
	if st := r.Stats(); st.NewInstances != 1 {
		t.Fatalf("NewInstances = %d, want 1", st.NewInstances)
	}
	h.moveProcess(t, movingPID+1, "all")
	s, err := c.Resources()
	checkOwn(t, "hybrid", s, err)
}

// TestOtherCgroupConvergesFromItsProcesses: a cgroup that is no runtime's container (a
// systemd service, a hand-made cgroup) is not completed from its name, since a directory of
// that name in another hierarchy need not hold its processes; what its processes show is
// merged as the registry sees them.
func TestOtherCgroupConvergesFromItsProcesses(t *testing.T) {
	const path = "/codexray-test-moving"
	h := newHost(t, "hybrid", path)
	cfg := testConfig()
	cfg.IncludeOtherCgroups = true // a hand-made cgroup is a container only then
	r := startAt(t, cfg, h.root, h.proc, nil)
	h.createContainer(t, "memory", "cpu", "cpuacct")
	h.moveProcess(t, movingPID, "memory")
	c, ok := r.OnProcessStart(movingPID)
	if !ok || c.CgroupPath != path {
		t.Fatalf("attributed to %+v, %v", c, ok)
	}
	if s, _ := c.Resources(); !s.HasMemory || s.HasThrottling || s.CPU.LimitCores != 0 {
		t.Fatalf("before its process is seen in cpu: %+v", s)
	}
	h.moveProcess(t, movingPID, "memory", "cpu", "cpuacct")
	r.Scan()
	s, _ := c.Resources()
	if !s.HasThrottling || s.CPU.LimitCores != ownCPU || s.CPU.UsageSeconds != ownUsage || s.Memory.RSSBytes != ownRSS {
		t.Fatalf("after its process is seen in cpu and cpuacct: %+v", s)
	}
	if n := r.Stats().CgroupIncomplete; n != 0 {
		t.Fatalf("CgroupIncomplete = %d for a cgroup that expects nothing", n)
	}
}

// TestCompleteContainerIsNotLocatedAgain: a complete container has nothing missing, so a
// collection reads its stats without re-resolving anything.
func TestCompleteContainerIsNotLocatedAgain(t *testing.T) {
	h := newHost(t, "hybrid", "/docker/"+id1)
	r := startAt(t, testConfig(), h.root, h.proc, nil)
	h.createContainer(t)
	h.moveProcess(t, movingPID, "all")
	c, _ := r.OnProcessStart(movingPID)
	c.st.mu.Lock()
	missing := c.st.cg.missing
	c.st.mu.Unlock()
	if missing != 0 {
		t.Fatalf("complete container reports missing %v", missing)
	}
}

// TestChurnLeavesNothingBehind runs 100 docker containers through their whole life on a
// generated hybrid host, each first seen mid-move and some restarted: once the retention has
// passed, every index of the registry is back to what it held before the first one.
func TestChurnLeavesNothingBehind(t *testing.T) {
	h := newHost(t, "hybrid", "")
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := startAt(t, testConfig(), h.root, h.proc, clk)
	sizes := func() [6]int {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return [6]int{len(r.byID), len(r.byCgroup), len(r.byCgroupID), len(r.byRuntimeID), len(r.pids), len(r.ignored)}
	}
	before := sizes()
	for i := 0; i < 100; i++ {
		h.ctrPath = fmt.Sprintf("/docker/%064x", i+1)
		pid := 10000 + i
		h.createContainer(t)
		h.moveProcess(t, pid, "unified")
		c, ok := r.OnProcessStart(uint32(pid))
		if !ok {
			t.Fatalf("container %d not attributed", i)
		}
		h.moveProcess(t, pid, "all")
		if s, _ := c.Resources(); !s.HasMemory || !s.HasThrottling {
			t.Fatalf("container %d incomplete: %+v", i, s)
		}
		if i%10 == 0 { // restarted: a re-created cgroup, a new process
			for _, hi := range hierarchyOrder {
				dir := filepath.Join(h.root, hi.dir, h.ctrPath)
				if err := os.Rename(dir, dir+".old"); err != nil {
					t.Fatal(err)
				}
			}
			h.createContainer(t)
			_ = os.RemoveAll(filepath.Join(h.proc, fmt.Sprint(pid)))
			r.OnProcessExit(uint32(pid))
			pid += 100000
			h.moveProcess(t, pid, "memory")
			r.OnProcessStart(uint32(pid))
		}
		_ = os.RemoveAll(filepath.Join(h.proc, fmt.Sprint(pid)))
		r.OnProcessExit(uint32(pid))
		for _, hi := range hierarchyOrder {
			_ = os.RemoveAll(filepath.Join(h.root, hi.dir, h.ctrPath))
			_ = os.RemoveAll(filepath.Join(h.root, hi.dir, h.ctrPath+".old"))
		}
		clk.add(time.Second)
	}
	r.Scan()
	if n := len(r.Containers()); n != 100 {
		t.Fatalf("%d containers listed within their retention, want 100", n)
	}
	clk.add(testConfig().Retention + time.Second)
	r.Scan()
	if after := sizes(); after != before {
		t.Fatalf("index sizes (byID, byCgroup, byCgroupID, byRuntimeID, pids, ignored) %v after the churn, %v before", after, before)
	}
	if st := r.Stats(); st.Expired != 100 || st.NewInstances != 10 || st.CgroupIncomplete != 0 {
		t.Fatalf("stats after the churn: %+v", st)
	}
}
