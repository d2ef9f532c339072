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

// genHost writes a pure cgroup v2 host (systemd driver) with n kubepods containers of
// perContainer processes each, plus the files a collection reads.
func genHost(tb testing.TB, n, perContainer int) cgroups.Config {
	tb.Helper()
	return genHostSeenFrom(tb, n, perContainer, false)
}

// genHostSeenFrom is genHost; with inPod, the /proc files are as an agent in a pod with a
// private cgroup namespace reads them: relative to its own container cgroup (ProcRoot/self).
func genHostSeenFrom(tb testing.TB, n, perContainer int, inPod bool) cgroups.Config {
	tb.Helper()
	root := tb.TempDir()
	cg, proc := filepath.Join(root, "cgroup"), filepath.Join(root, "proc")
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write(filepath.Join(cg, "cgroup.controllers"), "cpu io memory pids\n")
	write(filepath.Join(proc, "partitions"), "major minor  #blocks  name\n\n 259        0   52428800 nvme0n1\n")
	pid := 1000
	for i := 0; i < n; i++ {
		uid := fmt.Sprintf("%08x_0000_4000_8000_%012x", i, i)
		id := fmt.Sprintf("%064x", i+1)
		rel := fmt.Sprintf("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope", uid, id)
		d := cg + rel
		write(d+"/cpu.stat", fmt.Sprintf("usage_usec %d\nuser_usec 1\nsystem_usec 1\nnr_periods 0\nnr_throttled 0\nthrottled_usec %d\nnr_bursts 0\nburst_usec 0\n", i*1000, i))
		write(d+"/cpu.max", "50000 100000\n")
		write(d+"/memory.stat", fmt.Sprintf("anon %d\nfile %d\nkernel 4096\nkernel_stack 16384\npagetables 0\nsec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 0\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 0\nactive_anon 0\ninactive_file 0\nactive_file 0\nunevictable 0\nslab_reclaimable 0\nslab_unreclaimable 0\nslab 0\nworkingset_refault_anon 0\nworkingset_refault_file 0\npgfault 0\npgmajfault 0\n", i*4096, i*8192))
		write(d+"/memory.max", "268435456\n")
		write(d+"/io.stat", "259:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n")
		for _, f := range []string{"cpu.pressure", "memory.pressure", "io.pressure"} {
			write(d+"/"+f, "some avg10=0.00 avg60=0.00 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=678\n")
		}
		seen := rel
		if inPod {
			seen = "/../.." + strings.TrimPrefix(rel, "/kubepods.slice/kubepods-burstable.slice")
		}
		for j := 0; j < perContainer; j++ {
			write(fmt.Sprintf("%s/%d/cgroup", proc, pid), "0::"+seen+"\n")
			pid++
		}
	}
	if inPod {
		agent := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podagent.slice/cri-containerd-agent.scope"
		write(cg+agent+"/cgroup.procs", "999\n")
		write(proc+"/999/cgroup", "0::/\n")
		if err := os.Symlink("999", proc+"/self"); err != nil {
			tb.Fatal(err)
		}
	}
	return cgroups.Config{Enabled: true, Root: cg, ProcRoot: proc}
}

func benchRegistry(b *testing.B) *Registry {
	b.Helper()
	return benchRegistrySeenFrom(b, false)
}

func benchRegistrySeenFrom(b *testing.B, inPod bool) *Registry {
	b.Helper()
	cgCfg := genHostSeenFrom(b, 500, 10, inPod)
	cfg := testConfig()
	r := &Registry{}
	if err := r.Start(cfg, cgCfg, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	r.Scan()
	const want = 500 // the agent's own cgroup in the pod case has no container id: not one
	if n := len(r.Containers()); n != want || r.Stats().NamespaceSkipped != 0 {
		b.Fatalf("%d containers, want %d; %+v", n, want, r.Stats())
	}
	return r
}

// BenchmarkCollect is one collection cycle's container work: read every container's
// resources on a host of 500 containers.
func BenchmarkCollect(b *testing.B) {
	r := benchRegistry(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, c := range r.Containers() {
			if _, err := c.Resources(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkFullScan re-attributes 5,000 processes of 500 containers (the scan_interval work).
func BenchmarkFullScan(b *testing.B) {
	r := benchRegistry(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Scan()
	}
}

// BenchmarkFullScanInPod is BenchmarkFullScan as an agent in a pod with a private cgroup
// namespace sees the host: every path is joined to the namespace root.
func BenchmarkFullScanInPod(b *testing.B) {
	r := benchRegistrySeenFrom(b, true)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Scan()
	}
}

// BenchmarkLookupByCgroupID is the per-event cost on the eBPF path.
func BenchmarkLookupByCgroupID(b *testing.B) {
	r := benchRegistry(b)
	c := r.Containers()[0]
	var ino uint64
	r.mu.RLock()
	for id, e := range r.byCgroupID {
		if e.cur.Load().ID == c.ID {
			ino = id
		}
	}
	r.mu.RUnlock()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := r.ContainerByCgroupID(ino); !ok {
			b.Fatal("miss")
		}
	}
}

func TestBenchHostShape(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 500-container host")
	}
	start := time.Now()
	cgCfg := genHost(t, 50, 10)
	r := &Registry{}
	if err := r.Start(testConfig(), cgCfg, nil); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Scan()
	cs := r.Containers()
	if len(cs) != 50 || cs[0].Processes() != 10 {
		t.Fatalf("%d containers, first has %d processes", len(cs), cs[0].Processes())
	}
	s, err := cs[0].Resources()
	if err != nil || s.CPU.LimitCores != 0.5 || len(s.IO) != 1 || s.IO[0].Device != "nvme0n1" {
		t.Fatalf("%+v %v", s, err)
	}
	t.Logf("generated and scanned in %v", time.Since(start))
}
