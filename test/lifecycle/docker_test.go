package lifecycle

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// Containers of this suite carry the testbed's cleanup label and a name prefix of their own.
var prefix = fmt.Sprintf("cxlc-%d-", os.Getpid())

const (
	// logLoop writes a line twice a second: a container that logs.
	logLoop = `i=0; while :; do i=$((i+1)); echo "lifecycle tick $i"; sleep 0.5; done`
	// burnLoop spins a shell: a container that uses all the CPU its quota allows.
	burnLoop = `while :; do :; done`
)

type dockerRun struct {
	name     string
	memLimit uint64  // -m, bytes
	cpus     float64 // --cpus
	logs     bool
	tcp      string // "127.0.0.1:port": host networking, connecting there in a loop
	extra    []string
	script   string
}

func (d dockerRun) args() []string {
	args := []string{"run", "-d", "--name", prefix + d.name, "--label", "codexray-test=1"}
	if d.tcp != "" {
		args = append(args, "--network", "host")
	} else {
		args = append(args, "--network", "none")
	}
	if d.memLimit > 0 {
		args = append(args, "-m", fmt.Sprint(d.memLimit))
	}
	if d.cpus > 0 {
		args = append(args, "--cpus", fmt.Sprint(d.cpus))
	}
	args = append(args, d.extra...)
	return append(args, testutil.DockerImage, "sh", "-c", d.script)
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// start runs the container; the returned instance is its first run.
func (d dockerRun) start(t *testing.T) *instance {
	t.Helper()
	asked := time.Now()
	id := docker(t, d.args()...)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	return d.instance(t, id, asked)
}

type dockerState struct {
	RestartCount int
	State        struct {
		Running   bool
		Pid       int
		StartedAt time.Time
		OOMKilled bool
	}
}

func inspectDocker(t *testing.T, id string) dockerState {
	t.Helper()
	var st []dockerState
	if err := json.Unmarshal([]byte(docker(t, "inspect", id)), &st); err != nil || len(st) != 1 {
		t.Fatalf("docker inspect %s: %v", id, err)
	}
	return st[0]
}

// instance describes the container's current run, once its process runs; asked is when the
// test asked dockerd for it.
func (d dockerRun) instance(t *testing.T, id string, asked time.Time) *instance {
	t.Helper()
	var st dockerState
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st = inspectDocker(t, id)
		if st.State.Running && st.State.Pid > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker container %s does not run: %+v", d.name, st)
		}
	}
	cg, err := cgroupOf(st.State.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return &instance{
		name: "docker/" + d.name, id: "/docker/" + id, cgroup: cg, pid: st.State.Pid, started: st.State.StartedAt, notBefore: asked,
		memLimit: d.memLimit, cpuLimit: d.cpus, logs: d.logs, tcp: d.tcp, kernel: startSampler(t, cg),
	}
}

// listener accepts loopback connections and closes them at once, for containers to connect to.
func listener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	return l.Addr().String()
}

// dockerScenarios are the docker lifecycles, each run in parallel with the others.
//
//nolint:thelper // the scenarios are subtest bodies (t.Run), not helpers: errors point into them
func dockerScenarios(a *agent) map[string]func(t *testing.T) {
	return map[string]func(t *testing.T){
		// Containers started one after another, a second apart.
		"one-after-another": func(t *testing.T) {
			for i := 0; i < 4; i++ {
				in := dockerRun{name: fmt.Sprintf("seq%d", i), memLimit: 64 << 20, cpus: 0.3, logs: true, script: logLoop}.start(t)
				a.awaitComplete(t, in)
			}
		},
		// Several containers started at the same instant.
		"same-instant": func(t *testing.T) {
			const n = 6
			ins := make([]*instance, n)
			asked := time.Now()
			var wg sync.WaitGroup
			errs := make(chan string, n)
			for i := range ins {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d := dockerRun{name: fmt.Sprintf("burst%d", i), memLimit: 48 << 20, cpus: 0.5, logs: true, script: logLoop}
					out, err := exec.Command("docker", d.args()...).CombinedOutput()
					if err != nil {
						errs <- fmt.Sprintf("docker run %s: %v %s", d.name, err, out)
						return
					}
					id := strings.TrimSpace(string(out))
					t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatal(e)
			}
			for i := range ins {
				d := dockerRun{name: fmt.Sprintf("burst%d", i), memLimit: 48 << 20, cpus: 0.5, logs: true}
				ins[i] = d.instance(t, docker(t, "inspect", "-f", "{{.Id}}", prefix+d.name), asked)
			}
			for _, in := range ins {
				a.awaitComplete(t, in)
			}
		},
		// A CPU burner under a low quota: throttled, usage growing by about the quota.
		"throttled-burner": func(t *testing.T) {
			in := dockerRun{name: "burner", memLimit: 32 << 20, cpus: 0.1, script: burnLoop}.start(t)
			first := a.awaitComplete(t, in)
			if first == nil {
				return
			}
			later := a.waitFor(first.at.Add(3*time.Second), 10*a.interval, func(*batch) bool { return true })
			if later == nil {
				t.Fatal("no collection 3 s later")
			}
			c0, c1 := first.containers[in.id], later.containers[in.id]
			grew := c1.values[mCPUUsage] - c0.values[mCPUUsage]
			elapsed := later.at.Sub(first.at).Seconds()
			if grew < 0.05*elapsed || grew > 0.15*elapsed {
				t.Errorf("burner under 0.1 cores used %.3f s of CPU in %.1f s", grew, elapsed)
			}
			if c1.values[mThrottled] <= c0.values[mThrottled] || c1.values[mThrottled] <= 0 {
				t.Errorf("burner's throttled time did not grow: %v -> %v", c0.values[mThrottled], c1.values[mThrottled])
			}
			if k := readKernel(in.cgroup); k.nrThrottled == 0 {
				t.Errorf("the kernel shows no throttled periods for the burner (%+v)", k)
			}
			in.checkValues(t, later)
		},
		// docker restart: the same container in a re-created cgroup.
		"restart": func(t *testing.T) {
			d := dockerRun{name: "restarted", memLimit: 40 << 20, cpus: 0.4, logs: true, script: logLoop}
			in := d.start(t)
			a.awaitComplete(t, in)
			asked := time.Now()
			docker(t, "restart", "-t", "1", prefix+d.name)
			again := d.instance(t, strings.TrimPrefix(in.id, "/docker/"), asked)
			again.name += " after docker restart"
			if again.pid == in.pid {
				t.Fatalf("docker restart kept pid %d", in.pid)
			}
			// dockerd counts only restarts by its policy (RestartCount stays 0 here).
			a.awaitComplete(t, again)
		},
		// Removed and re-created under the same name: a new container id.
		"re-created": func(t *testing.T) {
			d := dockerRun{name: "recreated", memLimit: 56 << 20, cpus: 0.2, logs: true, script: logLoop}
			in := d.start(t)
			a.awaitComplete(t, in)
			docker(t, "rm", "-f", prefix+d.name)
			again := d.start(t)
			again.name += " re-created"
			if again.id == in.id {
				t.Fatalf("re-created container kept its id %s", in.id)
			}
			a.awaitComplete(t, again)
		},
		// OOM-killed on its first run, restarted by its policy, then it stays up.
		"oom-restart": func(t *testing.T) {
			d := dockerRun{
				name: "oom", memLimit: 24 << 20, logs: true,
				extra:  []string{"--memory-swap", fmt.Sprint(24 << 20), "--restart", "on-failure:3"},
				script: `if [ ! -e /oomed ]; then touch /oomed; sleep 1; exec tail /dev/zero; fi; ` + logLoop,
			}
			asked := time.Now()
			id := docker(t, d.args()...)
			t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
			var st dockerState
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				st = inspectDocker(t, id)
				if st.RestartCount >= 1 && st.State.Running {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the OOM container was not restarted: %+v", st)
				}
			}
			in := d.instance(t, id, asked.Add(time.Second)) // its first run lives a second at least
			in.name += " after its OOM kill"
			in.oom = true
			if b := a.awaitComplete(t, in); b != nil {
				a.awaitValue(t, in, b, mRestarts, 1)
			}
		},
		// Host networking, connecting to a loopback listener the test owns.
		"tcp-client": func(t *testing.T) {
			addr := listener(t)
			host, port, _ := net.SplitHostPort(addr)
			in := dockerRun{
				name: "client", memLimit: 32 << 20, cpus: 0.3, tcp: addr,
				script: fmt.Sprintf(`while :; do nc %s %s </dev/null; sleep 0.2; done`, host, port),
			}.start(t)
			if b := a.awaitComplete(t, in); b != nil {
				if dst := strings.Join(b.containers[in.id].attrs[mConnects], " "); !strings.Contains(dst, "destination="+addr) {
					t.Errorf("connects of the client go to %q, want destination %s", dst, addr)
				}
			}
		},
	}
}
