package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// The end-to-end workloads run testdata/cxworkload (an HTTP server, an HTTP client, the OTel
// SDK's container detector) inside docker and CRI containers that mount the host-built binary.

var (
	workloadOnce sync.Once
	workloadBin  string
	workloadErr  error
)

// workloadBinary builds testdata/cxworkload once per test binary, statically.
func workloadBinary(t testing.TB) string {
	t.Helper()
	workloadOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cxworkload")
		if err != nil {
			workloadErr = err
			return
		}
		workloadBin = filepath.Join(dir, "cxworkload")
		cmd := exec.Command("go", "build", "-o", workloadBin, "./test/e2e/testdata/cxworkload")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			workloadErr = fmt.Errorf("building cxworkload: %w\n%s", err, out)
		}
	})
	if workloadErr != nil {
		t.Fatal(workloadErr)
	}
	return workloadBin
}

// freeServicePort returns a port nobody listens on, below the kernel's ephemeral range: the
// agent reports a listener on an ephemeral port with port 0 (a client's outgoing ports come from
// that range), so a server that must be found by its port listens on another. Chosen at random
// and checked free on every address, never fixed.
func freeServicePort(t testing.TB) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(b), &low)
	}
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatalf("no free port below the ephemeral range (from %d)", low)
	return 0
}

// dockerWorkload runs cxworkload in a named docker container on the host's network (removed at
// cleanup) and returns its 64-hex id. extra are docker run options.
func dockerWorkload(t testing.TB, name string, extra []string, args ...string) string {
	t.Helper()
	opts := append([]string{"--name", name, "--network", "host", "-v", workloadBinary(t) + ":/cxworkload:ro"}, extra...)
	return dockerRun(t, append(append(opts, testutil.DockerImage, "/cxworkload"), args...)...)
}

// hostBinaries are the docker run options that let a busybox container run the host's own
// programs (redis-server, postgres, psql, memcached, dnsmasq from Debian's packages): the host's
// /usr, /lib and /lib64 and its users, read-only.
var hostBinaries = []string{
	"-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro",
	"-v", "/etc/passwd:/etc/passwd:ro", "-v", "/etc/group:/etc/group:ro",
}

// hostProgramContainer runs a host program in a named docker container on the host's network
// (removed at cleanup) and returns its 64-hex id.
func hostProgramContainer(t testing.TB, name string, extra []string, args ...string) string {
	t.Helper()
	return dockerRun(t, hostProgram(name, extra, args...)...)
}

// hostProgram is the docker run arguments of hostProgramContainer.
func hostProgram(name string, extra []string, args ...string) []string {
	opts := append(append([]string{"--name", name, "--network", "host"}, hostBinaries...), extra...)
	return append(append(opts, testutil.DockerImage), args...)
}

// waitListening waits until something accepts TCP connections at addr.
func waitListening(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s after %s: %v", addr, timeout, err)
		}
	}
}

// criPod is a pod sandbox of the testbed containerd on the host's network, in the kubepods
// cgroup layout, its logs below logDir (a kubelet's /var/log/pods).
type criPod struct {
	id, name, namespace, uid, dir string
}

func startCRIPod(t testing.TB, name, namespace, logDir string) *criPod {
	t.Helper()
	uid := fmt.Sprintf("c0de0014-0000-4000-8000-%012d", os.Getpid())
	p := &criPod{name: name, namespace: namespace, uid: uid, dir: t.TempDir()}
	pod := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": namespace, "uid": uid, "attempt": 0},
		"log_directory": filepath.Join(logDir, namespace+"_"+name+"_"+uid),
		"labels":        map[string]string{"codexray-test": "1"},
		"linux": map[string]any{
			"cgroup_parent":    "/kubepods/burstable/pod" + uid,
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}},
		},
	}
	p.id = testutil.CrictlOutput(t, "runp", writeJSON(t, p.dir, "pod.json", pod))
	t.Cleanup(func() {
		_ = testutil.Crictl("stopp", p.id).Run()
		_ = testutil.Crictl("rmp", "-f", p.id).Run()
	})
	return p
}

// run starts a container of cxworkload in the pod and returns its runtime id.
func (p *criPod) run(t testing.TB, container string, args ...string) string {
	t.Helper()
	ctr := map[string]any{
		"metadata": map[string]any{"name": container, "attempt": 0},
		"image":    map[string]any{"image": "docker.io/" + testutil.DockerImage},
		"command":  append([]string{"/cxworkload"}, args...),
		"log_path": container + "/0.log",
		"labels":   map[string]string{"codexray-test": "1"},
		"mounts":   []map[string]any{{"container_path": "/cxworkload", "host_path": workloadBinary(t), "readonly": true}},
	}
	podFile := filepath.Join(p.dir, "pod.json")
	id := testutil.CrictlOutput(t, "create", p.id, writeJSON(t, p.dir, container+".json", ctr), podFile)
	testutil.CrictlOutput(t, "start", id)
	return id
}

func writeJSON(t testing.TB, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
