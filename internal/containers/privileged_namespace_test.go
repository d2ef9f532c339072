package containers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// registryHelperEnv makes TestRegistryNamespaceHelper act as the agent of a pod; its value is
// "<pid>:<cgroup id>" of a docker container's process to look up.
const registryHelperEnv = "CODEXRAY_REGISTRY_NS_HELPER"

type registryHelperResult struct {
	Raw        string // /proc/<pid>/cgroup as the helper reads it
	ByPID      ID
	ByCgroupID ID
	CgroupPath string
	Skipped    uint64
	Err        string
}

// TestRegistryNamespaceHelper is not a test: TestRegistryInRealPrivateNamespace runs the test
// binary with only this function inside a cgroup namespace of its own.
func TestRegistryNamespaceHelper(t *testing.T) {
	arg := os.Getenv(registryHelperEnv)
	if arg == "" {
		t.Skip("helper process of TestRegistryInRealPrivateNamespace")
	}
	var res registryHelperResult
	defer func() {
		out, _ := json.Marshal(res)
		fmt.Printf("REGRESULT %s\n", out)
	}()
	pidStr, idStr, _ := strings.Cut(arg, ":")
	pid, _ := strconv.ParseUint(pidStr, 10, 32)
	cgid, _ := strconv.ParseUint(idStr, 10, 64)
	raw, _ := os.ReadFile("/proc/" + pidStr + "/cgroup")
	res.Raw = string(raw)
	cfg := DefaultConfig()
	cfg.CRISockets = nil
	cfg.ScanInterval = time.Hour
	r := &Registry{}
	if err := r.Start(cfg, cgroups.DefaultConfig(), nil); err != nil {
		res.Err = err.Error()
		return
	}
	defer r.Close()
	r.Scan()
	if c, ok := r.ContainerByPID(uint32(pid)); ok {
		res.ByPID, res.CgroupPath = c.ID, c.CgroupPath
	}
	if c, ok := r.ContainerByCgroupID(cgid); ok {
		res.ByCgroupID = c.ID
	}
	res.Skipped = r.Stats().NamespaceSkipped
}

// TestRegistryInRealPrivateNamespace: a registry started in a private cgroup namespace (as in
// a pod on a cgroup v2 node) finds a docker container by pid and by the cgroup id eBPF would
// report, with the container's host cgroup path, and skips nothing.
func TestRegistryInRealPrivateNamespace(t *testing.T) {
	testutil.RequireDocker(t)
	_, lookErr := exec.LookPath("unshare")
	testutil.SkipUnlessPrivileged(t, lookErr == nil, "unshare(1) (util-linux) not installed: %v", lookErr)
	f, err := cgroups.Open(cgroups.DefaultConfig())
	testutil.SkipUnlessPrivileged(t, err == nil && f.Layout() != cgroups.LayoutV1, "no cgroup v2 hierarchy: %v", err)
	unified := "/sys/fs/cgroup/unified"
	if f.Layout() == cgroups.LayoutV2 {
		unified = "/sys/fs/cgroup"
	}

	id := run(t, "docker", "run", "-d", "--label", "codexray-test=1", "--network", "none", testutil.DockerImage, "sleep", "600")
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	pid := run(t, "docker", "inspect", "-f", "{{.State.Pid}}", id)
	pid64, _ := strconv.ParseUint(pid, 10, 32)
	hostPaths, err := f.ProcessPaths(uint32(pid64))
	if err != nil {
		t.Fatal(err)
	}
	cgid, err := f.CgroupID(hostPaths.Unified)
	if err != nil {
		t.Fatal(err)
	}

	agent := fmt.Sprintf("%s/codexray-test-regns-%d", unified, os.Getpid())
	if err := os.Mkdir(agent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.Remove(agent) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	helper := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec unshare -C "$2" -test.run='^TestRegistryNamespaceHelper$'`,
		"sh", agent, os.Args[0])
	helper.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", registryHelperEnv, pid, cgid))
	var stderr bytes.Buffer
	helper.Stderr = &stderr
	out, err := helper.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s%s", err, out, stderr.String())
	}
	var res registryHelperResult
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if line, ok := strings.CutPrefix(sc.Text(), "REGRESULT "); ok {
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res.Err != "" {
		t.Fatalf("helper: %s", res.Err)
	}
	if !strings.Contains(res.Raw, "0::/../") {
		t.Fatalf("the helper did not see the namespace-relative form: %q", res.Raw)
	}
	want := ID("/docker/" + id)
	if res.ByPID != want || res.ByCgroupID != want || res.CgroupPath != hostPaths.Unified {
		t.Fatalf("from a private namespace: by pid %q, by cgroup id %q, cgroup %q; want %s in %s (raw %q)",
			res.ByPID, res.ByCgroupID, res.CgroupPath, want, hostPaths.Unified, res.Raw)
	}
	if res.Skipped != 0 {
		t.Fatalf("%d processes skipped although the namespace root was found", res.Skipped)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(unified+hostPaths.Unified, &st); err != nil || st.Ino != cgid {
		t.Fatalf("cgroup id %d is not the inode of %s (%v)", cgid, hostPaths.Unified, err)
	}
}
