package logs

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// countsOf renders a container's message counts as "source/level/count template" lines, the
// template looked up through a flush of the same Patterns.
func countsOf(p *Patterns, id containers.ID) []string {
	templates := map[string]string{}
	p.FlushPatterns(nil, func(r PatternRecord) {
		if r.Container == id {
			templates[r.Hash] = r.Template
		}
	})
	var out []string
	p.Counts(id, func(c MessageCount) {
		tpl := templates[c.PatternHash]
		if len(tpl) > 100 {
			tpl = "<long>"
		}
		out = append(out, fmt.Sprintf("%s/%s/%d %s", c.Source, c.Level, c.Count, tpl))
	})
	sort.Strings(out)
	return out
}

// runScript runs a shell script in a test container and returns the container's ID.
func runScript(t *testing.T, script string) containers.ID {
	t.Helper()
	out, err := exec.Command("docker", "run", "-d", "--network", "none", "--label", "codexray-test=1",
		testutil.DockerImage, "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	return containers.ID("/docker/" + id)
}

func TestDockerContainerLogs(t *testing.T) {
	testutil.RequireDocker(t)
	cfg := testConfig()
	cfg.Docker.Enabled = true
	pats := newTestPatterns()
	rec := &recorder{}
	r := startReader(t, cfg, nil, SinkFunc(func(m *Message) { rec.Message(m); pats.Message(m) }), nil)

	script := `sleep 1
for i in 1 2 3; do echo "INFO worker $i started"; done
for i in 1 2; do echo "ERROR cannot reach db-$i: connection refused" >&2; done
head -c 40000 /dev/zero | tr '\0' x; echo
sleep 30`
	cid := runScript(t, script)

	var msgs uint64
	waitFor(t, 20*time.Second, "6 docker messages", func() bool {
		msgs = 0
		pats.Tick(time.Now())
		pats.Counts(cid, func(c MessageCount) { msgs += c.Count })
		return msgs >= 6
	})
	time.Sleep(100 * time.Millisecond)
	got := countsOf(pats, cid)
	want := []string{
		"stdout/stderr/error/2 cannot reach <*>: connection refused", // the level word is the header
		"stdout/stderr/info/3 worker <*> started",
		"stdout/stderr/unknown/1 <long>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	long := 0
	for _, m := range rec.snapshot() {
		if m.Container == cid && m.Text == strings.Repeat("x", 40000) {
			long++
		}
	}
	if long != 1 {
		t.Fatalf("the 40000-byte line was not joined from dockerd's 16 KiB chunks exactly once (%d)", long)
	}
	if r.Stats().ParseErrors.Load() != 0 {
		t.Fatalf("parse errors: %d", r.Stats().ParseErrors.Load())
	}
}

// Random binary data on a container's stdout (through dockerd's json-file driver, which turns
// invalid bytes into U+FFFD) is counted and skipped line by line: none of it joins the text
// lines as a multi-line continuation, whatever byte it starts with. Before, about an eighth of
// such lines (those starting with a control character, made a space) were joined silently.
func TestDockerBinaryOutputIsCountedNotMerged(t *testing.T) {
	testutil.RequireDocker(t)
	cfg := testConfig()
	cfg.Docker.Enabled = true
	pats := newTestPatterns()
	r := startReader(t, cfg, nil, pats, nil)

	const n = 400
	script := fmt.Sprintf(`sleep 1
for i in $(seq %d); do echo "INFO text line $i"; head -c 160 /dev/urandom | tr -d '\n'; echo; done
sleep 30`, n)
	cid := runScript(t, script)

	waitFor(t, 30*time.Second, fmt.Sprintf("%d binary lines", n), func() bool { return r.Stats().BinaryLines.Load() >= n })
	time.Sleep(200 * time.Millisecond)
	pats.FlushJoiners()
	if got := countsOf(pats, cid); len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("stdout/stderr/info/%d ", n)) {
		t.Fatalf("counts %q: want the %d text lines, each a message of its own, in one pattern", got, n)
	}
	if got := r.Stats().BinaryLines.Load(); got != n {
		t.Fatalf("%d binary lines counted, %d written", got, n)
	}
}

func TestCRIPodLogs(t *testing.T) {
	testutil.RequireContainerd(t)
	podsDir := t.TempDir()
	cfg := testConfig()
	cfg.CRI.Enabled, cfg.CRI.PodsDir = true, podsDir
	rec := &recorder{}
	pats := newTestPatterns()
	startReader(t, cfg, nil, SinkFunc(func(m *Message) { rec.Message(m); pats.Message(m) }), nil)

	uid := fmt.Sprintf("uid-%d", time.Now().UnixNano())
	pod := map[string]any{
		"metadata":      map[string]any{"name": "logpod", "namespace": "logtest", "uid": uid},
		"log_directory": filepath.Join(podsDir, "logtest_logpod_"+uid),
		"labels":        map[string]string{"codexray-test": "1"},
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	}
	ctr := map[string]any{
		"metadata": map[string]any{"name": "app"},
		"image":    map[string]any{"image": "docker.io/" + testutil.DockerImage},
		"command": []string{"sh", "-c", `sleep 1; head -c 40000 /dev/zero | tr '\0' a; echo
for i in 1 2 3 4; do echo "WARN slow query took ${i}00ms"; done; echo "ERROR upstream closed the connection" >&2; sleep 30`},
		"log_path": "app/0.log",
		"labels":   map[string]string{"codexray-test": "1"},
		"linux":    map[string]any{},
	}
	dir := t.TempDir()
	write := func(name string, v any) string {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	podJSON, ctrJSON := write("pod.json", pod), write("ctr.json", ctr)
	crictl := func(args ...string) string {
		out, err := testutil.Crictl(args...).Output()
		if err != nil {
			t.Fatalf("crictl %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	podID := crictl("runp", podJSON)
	t.Cleanup(func() {
		_ = testutil.Crictl("stopp", podID).Run()
		_ = testutil.Crictl("rmp", podID).Run()
	})
	ctrID := crictl("create", podID, ctrJSON, podJSON)
	crictl("start", ctrID)

	cid := containers.ID("/k8s/logtest/logpod/app")
	waitFor(t, 20*time.Second, "6 CRI messages counted", func() bool {
		var n uint64
		pats.Tick(time.Now()) // the joiners' clock: counted after the multi-line timeout
		pats.Counts(cid, func(c MessageCount) { n += c.Count })
		return len(rec.snapshot()) >= 6 && n >= 6
	})
	time.Sleep(100 * time.Millisecond)
	msgs := rec.snapshot()
	if len(msgs) != 6 {
		t.Fatalf("got %d messages", len(msgs))
	}
	// containerd copies stdout and stderr separately: their order in the file is not fixed.
	long := 0
	for _, m := range msgs {
		if m.Container != cid {
			t.Fatalf("message attributed to %q", m.Container)
		}
		if m.Text == strings.Repeat("a", 40000) && m.Stream == "stdout" {
			long++
		}
	}
	if long != 1 {
		t.Fatalf("the 40000-byte line was not joined from its P chunks exactly once (%d)", long)
	}
	got := countsOf(pats, cid)
	want := []string{
		"stdout/stderr/error/1 upstream closed the connection", // the level word is the header
		"stdout/stderr/unknown/1 <*>",
		"stdout/stderr/warning/4 slow query took <*>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestHostFileAttributedToWriter(t *testing.T) {
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("/var/log", "codexray-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "billing.log")
	cfg := testConfig()
	cfg.Files.Enabled = true
	cfg.Files.Include = []string{filepath.Join(dir, "*.log")}
	lookup := &fakeLookup{byPID: map[uint32]*containers.Container{}}
	pats := newTestPatterns()
	startReader(t, cfg, lookup, pats, nil)

	// The writer opens its log only after the fake registry knows its pid, as a real
	// service's process is known to the registry before it logs.
	cmd := exec.Command("sh", "-c", `sleep 0.3; exec >>`+path+`
for i in 1 2 3 4 5; do echo "invoice $i processed in 12ms"; sleep 0.05; done
echo "ERROR payment gateway timeout"; sleep 2`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	const unit containers.ID = "/system.slice/billing.service"
	lookup.mu.Lock()
	lookup.byPID[uint32(cmd.Process.Pid)] = &containers.Container{ID: unit, Name: "billing.service"}
	lookup.mu.Unlock()

	var n uint64
	waitFor(t, 10*time.Second, "6 messages attributed to the writer's unit", func() bool {
		n = 0
		pats.Tick(time.Now())
		pats.Counts(unit, func(c MessageCount) { n += c.Count })
		return n >= 6
	})
	got := countsOf(pats, unit)
	want := []string{
		"/var/log/" + filepath.Base(dir) + "/billing.log/error/1 ERROR payment gateway timeout",
		"/var/log/" + filepath.Base(dir) + "/billing.log/unknown/5 invoice <*> processed in <*>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if len(countsOf(pats, NodeID)) != 0 {
		t.Fatal("some messages were attributed to the node")
	}
}
