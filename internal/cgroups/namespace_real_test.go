package cgroups

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// nsHelperEnv makes TestNamespaceHelper act as an agent inside a private cgroup namespace; its
// value is the pid of the process the helper attributes.
const nsHelperEnv = "CODEXRAY_CGROUPNS_HELPER_TARGET"

// nsHelperResult is what the helper reports on one line prefixed "NSRESULT ".
type nsHelperResult struct {
	Raw        string // /proc/<target>/cgroup as the helper reads it
	Namespaces []Namespace
	Target     Paths
	Identity   Identity
	CgroupID   uint64
	Self       Paths
	Err        string
}

// TestNamespaceHelper is not a test: TestRealPrivateNamespace runs the test binary with only
// this function, inside a cgroup namespace of its own, to play the agent of a pod.
func TestNamespaceHelper(t *testing.T) {
	target := os.Getenv(nsHelperEnv)
	if target == "" {
		t.Skip("helper process of TestRealPrivateNamespace")
	}
	var res nsHelperResult
	report := func() {
		out, _ := json.Marshal(res)
		fmt.Printf("NSRESULT %s\n", out)
	}
	defer report()
	pid, _ := strconv.Atoi(target)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	res.Raw = string(raw)
	if err != nil {
		res.Err = err.Error()
		return
	}
	f, err := Open(DefaultConfig())
	if err != nil {
		res.Err = err.Error()
		return
	}
	res.Namespaces = f.Namespaces()
	if res.Target, err = f.ProcessPaths(uint32(pid)); err != nil {
		res.Err = err.Error()
		return
	}
	res.Identity = res.Target.Identify()
	if res.CgroupID, err = f.CgroupID(res.Target.Unified); err != nil {
		res.Err = err.Error()
		return
	}
	if res.Self, err = f.ProcessPaths(uint32(os.Getpid())); err != nil {
		res.Err = err.Error()
	}
}

// TestRealPrivateNamespace reproduces a pod agent on this host: the helper runs in a cgroup of
// its own with `unshare -C`, so /proc/<target>/cgroup of a process in a sibling cgroup reads
// "0::/../target" to it. The helper must resolve that to the host path, whose inode is the
// cgroup id eBPF reports. The host process running the test must see the host namespace.
func TestRealPrivateNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	_, lookErr := exec.LookPath("unshare")
	testutil.SkipUnlessPrivileged(t, lookErr == nil, "unshare(1) (util-linux) not installed: %v", lookErr)
	f, err := Open(DefaultConfig())
	testutil.SkipUnlessPrivileged(t, err == nil, "no cgroup hierarchy: %v", err)
	testutil.SkipUnlessPrivileged(t, f.unified != "", "no cgroup v2 hierarchy on this host (layout %v)", f.Layout())
	for _, ns := range f.Namespaces() {
		if ns.State != NamespaceHost || ns.Root != "/" {
			t.Fatalf("the test process sees %+v, want the verified host namespace", ns)
		}
	}

	name := fmt.Sprintf("/codexray-test-ns-%d", os.Getpid())
	base := f.unified + name
	for _, d := range []string{base, base + "/agent", base + "/target"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{base + "/agent", base + "/target", base} {
			for i := 0; i < 50 && os.Remove(d) != nil && !os.IsNotExist(os.Remove(d)); i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	target := exec.Command("sleep", "60")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Process.Kill(); _ = target.Wait() })
	if err := os.WriteFile(base+"/target/cgroup.procs", []byte(strconv.Itoa(target.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	// sh moves itself into the agent cgroup, then becomes unshare, which becomes the helper:
	// one pid throughout, whose namespace root is base/agent.
	helper := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec unshare -C "$2" -test.run='^TestNamespaceHelper$' -test.v`,
		"sh", base+"/agent", os.Args[0])
	helper.Env = append(os.Environ(), nsHelperEnv+"="+strconv.Itoa(target.Process.Pid))
	var stderr bytes.Buffer
	helper.Stderr = &stderr
	out, err := helper.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s%s", err, out, stderr.String())
	}
	var res nsHelperResult
	found := false
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if line, ok := strings.CutPrefix(sc.Text(), "NSRESULT "); ok {
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("helper printed no result:\n%s%s", out, stderr.String())
	}
	if res.Err != "" {
		t.Fatalf("helper: %s (namespaces %+v, raw %q)", res.Err, res.Namespaces, res.Raw)
	}
	if !strings.Contains(res.Raw, "0::/../target\n") {
		t.Fatalf("the helper did not see the namespace-relative form: %q", res.Raw)
	}
	var unified Namespace
	for _, ns := range res.Namespaces {
		if ns.Hierarchy == "unified" {
			unified = ns
		}
	}
	if unified.State != NamespacePrivate || unified.Root != name+"/agent" {
		t.Fatalf("helper's unified namespace %+v, want private rooted at %s/agent (all: %+v)", unified, name, res.Namespaces)
	}
	if res.Target.Unified != name+"/target" || res.Identity != (Identity{Kind: KindOther, Path: name + "/target"}) {
		t.Fatalf("target resolved to %+v, identity %+v; want %s/target", res.Target, res.Identity, name)
	}
	if res.Self.Unified != name+"/agent" {
		t.Fatalf("helper's own \"/\" resolved to %q, want %s/agent", res.Self.Unified, name)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(base+"/target", &st); err != nil {
		t.Fatal(err)
	}
	if res.CgroupID != st.Ino {
		t.Fatalf("cgroup id %d, want the host inode %d", res.CgroupID, st.Ino)
	}
	// v1 hierarchies (hybrid) are namespaced too: the target inherited this process's memory
	// cgroup, which the helper sees as its own root "/" and must place where the host has it.
	if f.memoryDir != "" {
		own, err := f.ProcessPaths(uint32(os.Getpid()))
		if err != nil {
			t.Fatal(err)
		}
		if res.Target.Memory != own.Memory {
			t.Fatalf("target's memory cgroup resolved to %q, want %q", res.Target.Memory, own.Memory)
		}
		if _, err := os.Stat(filepath.Join(f.memoryDir, res.Target.Memory)); err != nil {
			t.Fatal(err)
		}
	}
}
