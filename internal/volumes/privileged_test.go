package volumes

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/nodestats"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDockerContainerVolumes runs a real container with a named volume, a bind mount and a
// tmpfs, and reads its volumes from the host through /proc, before and after a restart (a new
// pid, the same volumes).
func TestDockerContainerVolumes(t *testing.T) {
	testutil.RequireDocker(t)
	name := "codexray14a-volumes-" + strconv.Itoa(os.Getpid())
	vol := name + "-data"
	bind := t.TempDir()
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", name).Run()
		_ = exec.Command("docker", "volume", "rm", "-f", vol).Run()
	})
	docker(t, "run", "-d", "--name", name, "--network", "none", "-v", vol+":/data", "-v", bind+":/bind",
		"--tmpfs", "/scratch", testutil.DockerImage, "sleep", "3600")
	volPath := docker(t, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)

	r := New("")
	disks, err := nodestats.ReadBlockDevices("")
	if err != nil {
		t.Fatal(err)
	}
	check := func(round string) {
		pid, err := strconv.Atoi(docker(t, "inspect", "-f", "{{.State.Pid}}", name))
		if err != nil || pid == 0 {
			t.Fatalf("%s: container pid %q: %v", round, docker(t, "inspect", "-f", "{{.State.Pid}}", name), err)
		}
		host, err := r.HostMounts()
		if err != nil {
			t.Fatal(err)
		}
		vs, err := r.Container(uint32(pid), host, disks, nil)
		if err != nil {
			t.Fatalf("%s: %v", round, err)
		}
		byPoint := map[string]Volume{}
		for _, v := range vs {
			byPoint[v.MountPoint] = v
		}
		for _, absent := range []string{"/", "/scratch", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/proc", "/dev"} {
			if v, ok := byPoint[absent]; ok {
				t.Errorf("%s: %s reported: %v", round, absent, v)
			}
		}
		for point, want := range map[string]struct{ volume, source string }{
			"/data": {vol, volPath},
			"/bind": {"", bind},
		} {
			v, ok := byPoint[point]
			if !ok {
				t.Errorf("%s: %s missing from %v", round, point, vs)
				continue
			}
			var st syscall.Stat_t
			var fs syscall.Statfs_t
			if err := syscall.Stat(want.source, &st); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Statfs(want.source, &fs); err != nil {
				t.Fatal(err)
			}
			size, used, _ := space(fs)
			wantDev := disks.Disk(unix.Major(st.Dev), unix.Minor(st.Dev))
			if v.Volume != want.volume || v.Source != want.source || v.Device != wantDev || wantDev == "" ||
				v.Major != unix.Major(st.Dev) || v.Minor != unix.Minor(st.Dev) {
				t.Errorf("%s: %s = %v; want volume %q, source %q, device %q", round, point, v, want.volume, want.source, wantDev)
			}
			// The same file system seen from the host: the same size; used moves with other
			// writers on this machine, so within 256 MiB.
			if diff := int64(v.UsedBytes) - int64(used); v.SizeBytes != size || diff > 256<<20 || diff < -256<<20 {
				t.Errorf("%s: %s size %d used %d; the host sees size %d used %d", round, point, v.SizeBytes, v.UsedBytes, size, used)
			}
		}
	}
	check("running")

	// Data written through the volume shows in the host's file; the container restarts with a
	// new pid and the same volumes.
	if err := os.WriteFile(filepath.Join(bind, "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldPid := docker(t, "inspect", "-f", "{{.State.Pid}}", name)
	docker(t, "restart", "-t", "0", name)
	deadline := time.Now().Add(20 * time.Second)
	for docker(t, "inspect", "-f", "{{.State.Pid}}", name) == oldPid && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	check("restarted")
	if out := docker(t, "exec", name, "cat", "/bind/marker"); out != "x" {
		t.Errorf("bind mount content %q", out)
	}
}
