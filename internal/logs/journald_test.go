//go:build cgo && linux

package logs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

const journalRemote = "/lib/systemd/systemd-journal-remote"

// fixtureJournal turns the committed export-format fixture testdata/journal.export into a
// .journal file.
func fixtureJournal(t *testing.T) string {
	t.Helper()
	return fixtureJournalFrom(t, "testdata/journal.export")
}

// fixtureJournalFrom turns an export-format fixture into a .journal file.
func fixtureJournalFrom(t *testing.T, export string) string {
	t.Helper()
	_, err := os.Stat(journalRemote)
	testutil.SkipUnlessPrivileged(t, err == nil, "%s not installed (package systemd-journal-remote): %v", journalRemote, err)
	out := filepath.Join(t.TempDir(), "fixture.journal")
	if b, err := exec.Command(journalRemote, "--output="+out, export).CombinedOutput(); err != nil {
		t.Fatalf("journal-remote: %v: %s", err, b)
	}
	return out
}

func startJournalReader(t *testing.T, cfg Config, files []string, lookup ContainerLookup, sink Sink, store CheckpointStore) *Reader {
	t.Helper()
	r := NewReader(cfg, lookup, sink, nil)
	r.journaldFiles, r.journaldFromHead = files, true
	if err := r.Start(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Shutdown)
	return r
}

func TestJournaldFixtureAttribution(t *testing.T) {
	file := fixtureJournal(t)
	cfg := testConfig()
	cfg.Journald.Enabled = true
	cfg.Exclude = []string{"cron.service"}
	lookup := &fakeLookup{byRuntime: map[string]*containers.Container{
		testDockerID: {ID: "/docker/" + testDockerID, Name: "web"},
	}}
	rec := &recorder{}
	store := newMemStore()
	r := startJournalReader(t, cfg, []string{file}, lookup, rec, store)
	waitFor(t, 5*time.Second, "5 entries", func() bool { return r.Stats().JournalEntries.Load() == 5 })
	time.Sleep(50 * time.Millisecond)

	var got []string
	for _, m := range rec.snapshot() {
		got = append(got, fmt.Sprintf("%s|%s|%s|%s", m.Container, m.Source, m.Level, m.Text))
	}
	want := []string{
		"/system.slice/nginx.service|journald|error|upstream timed out while reading response header",
		"/system.slice/nginx.service|journald|info|reloading configuration",
		"/docker/" + testDockerID + "|journald|unknown|GET /health 200", // driver PRIORITY is the stream
		"|journald|warning|disk almost full",                            // no unit, no known container: the node
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got\n%v\nwant\n%v", got, want)
	}
	if m := rec.snapshot()[0]; !m.Time.Equal(time.UnixMicro(1704164645000000)) {
		t.Errorf("time %v", m.Time)
	}

	// A checkpoint while it runs saves the cursor of the last entry read, while the source
	// waits.
	var saved []byte
	r.Checkpoint(func() { saved, _ = store.Get(context.Background(), journaldCursorKey) })
	if len(saved) == 0 {
		t.Fatal("no cursor saved by the checkpoint")
	}

	// A restart with the same store resumes after the last entry: nothing is read twice.
	r.Shutdown()
	if b, _ := store.Get(context.Background(), journaldCursorKey); len(b) == 0 {
		t.Fatal("no cursor saved")
	}
	rec2 := &recorder{}
	r2 := startJournalReader(t, cfg, []string{file}, lookup, rec2, store)
	time.Sleep(300 * time.Millisecond)
	if n := r2.Stats().JournalEntries.Load(); n != 0 {
		t.Fatalf("restart re-read %d entries", n)
	}
}

// Entries carrying _SYSTEMD_CGROUP are attributed to the ID the registry gives the container
// of that cgroup: a templated unit in its own slice, a scope outside system.slice (with
// include_other_cgroups on), a CRI container by its registry ID, a session to the node; the
// cgroup wins over a reused _PID.
func TestJournaldCgroupAttribution(t *testing.T) {
	file := fixtureJournalFrom(t, "testdata/journal-cgroup.export")
	cfg := testConfig()
	cfg.Journald.Enabled = true
	cfg.OtherCgroups = true
	lookup := &fakeLookup{
		byRuntime: map[string]*containers.Container{testCgroupID: {ID: "/k8s/shop/api-1/api", Name: "api"}},
		// pid 4242 wrote as nginx, exited; the registry knows the pid as another container now.
		byPID: map[uint32]*containers.Container{4242: {ID: "/docker/stale", Name: "stale"}},
	}
	rec := &recorder{}
	r := startJournalReader(t, cfg, []string{file}, lookup, rec, nil)
	waitFor(t, 5*time.Second, "6 entries", func() bool { return r.Stats().JournalEntries.Load() == 6 })
	time.Sleep(50 * time.Millisecond)

	var got []string
	for _, m := range rec.snapshot() {
		got = append(got, fmt.Sprintf("%s|%s|%s", m.Container, m.Level, m.Text))
	}
	want := []string{
		"/system.slice/system-getty.slice/getty@tty1.service|info|getty on tty1 started",
		`/machine.slice/machine-qemu\x2d1\x2dvm1.scope|warning|vm1 guest agent not responding`,
		"/k8s/shop/api-1/api|error|api failed to reach db",
		"|info|user ran sudo",
		"/system.slice/nginx.service|info|worker ready",
		// No _SYSTEMD_CGROUP: the unit's default place, in its template's slice.
		`/system.slice/system-serial\x2dgetty.slice/serial-getty@ttyS0.service|info|getty on ttyS0 started`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got\n%v\nwant\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestJournaldLiveSystemdCat(t *testing.T) {
	testutil.RequireJournald(t)
	_, err := exec.LookPath("systemd-cat")
	testutil.SkipUnlessPrivileged(t, err == nil, "systemd-cat not installed: %v", err)
	cfg := testConfig()
	cfg.Journald.Enabled = true
	lookup := &fakeLookup{byPID: map[uint32]*containers.Container{}}
	pats := newTestPatterns()
	rec := &recorder{}
	sink := SinkFunc(func(m *Message) {
		if m.Container == "/system.slice/myservice.service" {
			rec.Message(m)
			pats.Message(m)
		}
	})
	r := NewReader(cfg, lookup, sink, nil)
	if err := r.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Shutdown)

	// The writer's pid is what journald records as _PID; the registry (faked here) knows it
	// as the myservice unit's process.
	cmd := exec.Command("systemd-cat", "-t", "myservice", "-p", "warning", "sh", "-c",
		"sleep 0.2; for i in 1 2 3; do echo disk almost full on /dev/sda$i; done; sleep 1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lookup.mu.Lock()
	lookup.byPID[uint32(cmd.Process.Pid)] = &containers.Container{ID: "/system.slice/myservice.service", Name: "myservice.service"}
	lookup.mu.Unlock()
	t.Cleanup(func() { _ = cmd.Wait() })
	waitFor(t, 10*time.Second, "3 messages from systemd-cat", func() bool { return len(rec.snapshot()) >= 3 })

	var counts []string
	pats.Counts("/system.slice/myservice.service", func(c MessageCount) {
		counts = append(counts, fmt.Sprintf("%s/%s/%d", c.Source, c.Level, c.Count))
	})
	if fmt.Sprint(counts) != "[journald/warning/3]" {
		t.Fatalf("counts %v", counts)
	}
	var templates []string
	pats.FlushPatterns(nil, func(p PatternRecord) { templates = append(templates, p.Template) })
	if fmt.Sprint(templates) != "[disk almost full on <*>]" {
		t.Fatalf("templates %v", templates)
	}
}

// A docker container using the journald log driver is attributed to the container, not to
// dockerd (the entry's _PID).
func TestJournaldDockerLogDriver(t *testing.T) {
	testutil.RequireJournald(t)
	testutil.RequireDocker(t)
	cfg := testConfig()
	cfg.Journald.Enabled = true
	rec := &recorder{}
	r := NewReader(cfg, nil, SinkFunc(func(m *Message) {
		if m.Source == SourceJournald && len(m.Container) > len("/docker/") && string(m.Container[:8]) == "/docker/" {
			rec.Message(m)
		}
	}), nil)
	if err := r.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Shutdown)
	out, err := exec.Command("docker", "run", "-d", "--network", "none", "--label", "codexray-test=1", "--log-driver", "journald",
		testutil.DockerImage, "sh", "-c", "echo 'ERROR disk quota exceeded for user 7'; echo 'INFO retrying' >&2; sleep 30").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	id := string(out[:64])
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	waitFor(t, 15*time.Second, "2 entries of the container", func() bool { return len(rec.snapshot()) >= 2 })
	got := map[string]string{}
	for _, m := range rec.snapshot() {
		got[m.Text] = fmt.Sprintf("%s|%s", m.Container, m.Level)
	}
	// The driver's PRIORITY is the stream (6 stdout, 3 stderr), not a severity: the level is
	// left to detection from the text.
	want := map[string]string{
		"ERROR disk quota exceeded for user 7": "/docker/" + id + "|unknown",
		"INFO retrying":                        "/docker/" + id + "|unknown",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}
