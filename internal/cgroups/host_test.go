package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// TestRealHostCgroup moves a child process into a cgroup it creates on the real host and
// checks the process is attributed to it and its cpu counters are read.
func TestRealHostCgroup(t *testing.T) {
	testutil.RequireRoot(t)
	cfg := DefaultConfig()
	f, err := Open(cfg)
	testutil.SkipUnlessPrivileged(t, err == nil, "no cgroup hierarchy at %s: %v", cfg.Root, err)

	name := fmt.Sprintf("/codexray-test-%d", os.Getpid())
	var dir, procsFile string
	switch f.Layout() {
	case LayoutV2:
		dir = cfg.Root + name
	default:
		dir = f.cpuacctDir + name
	}
	procsFile = filepath.Join(dir, "cgroup.procs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err := os.WriteFile(procsFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := f.ProcessPaths(uint32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	id := p.Identify()
	if id.Kind != KindOther || id.Path != name {
		t.Fatalf("identity = %+v, want other cgroup %s (paths %+v)", id, name, p)
	}
	time.Sleep(300 * time.Millisecond)
	s, err := f.Stats(p.ContainerPaths(id))
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasCPU || s.CPU.UsageSeconds < 0.05 {
		t.Fatalf("cpu usage of a busy loop after 300ms: %+v", s.CPU)
	}
	if f.Layout() != LayoutV1 {
		if _, err := f.CgroupID("/"); err != nil {
			t.Fatalf("CgroupID(/): %v", err)
		}
	}
}
