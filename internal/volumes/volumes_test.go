package volumes

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/nodestats"
	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// procFixture builds a proc root: pid 1 with the host's mountinfo, and each container pid
// with its mountinfo and a root directory holding its mount points (directories, or files for
// the runtime's single-file bind mounts), so statfs through <pid>/root works.
func procFixture(t testing.TB, containers map[uint32]string) string {
	t.Helper()
	root := t.TempDir()
	write := func(p string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write(filepath.Join(root, "1/mountinfo"), read("host.mountinfo"))
	write(filepath.Join(root, "diskstats"), read("diskstats"))
	for pid, file := range containers {
		b := read(file)
		dir := filepath.Join(root, strconv.Itoa(int(pid)))
		write(filepath.Join(dir, "mountinfo"), b)
		ms, err := parseMountinfo(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			p := filepath.Join(dir, "root", m.point)
			if strings.HasPrefix(m.point, "/etc/hosts") || strings.HasPrefix(m.point, "/dev/termination-log") {
				write(p, []byte("127.0.0.1 localhost\n"))
			} else if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestContainerFixtures(t *testing.T) {
	root := procFixture(t, map[uint32]string{100: "docker.mountinfo", 200: "pod.mountinfo"})
	r := New(root)
	host, err := r.HostMounts()
	if err != nil {
		t.Fatal(err)
	}
	disks, err := nodestats.ReadBlockDevices(root)
	if err != nil {
		t.Fatal(err)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(root, &fs); err != nil {
		t.Fatal(err)
	}
	size, _, _ := space(fs)

	const pod = "/var/lib/kubelet/pods/0f6a6a4e-1111-2222-3333-444455556666"
	for _, tc := range []struct {
		pid  uint32
		want []Volume
	}{
		{100, []Volume{
			{MountPoint: "/var/lib/postgresql/data", Major: 8, Minor: 16, Device: "sdb", Volume: "pgdata", Source: "/var/lib/docker/volumes/pgdata/_data"},
			{MountPoint: "/config", Major: 8, Minor: 1, Device: "sda", Source: "/srv/app config"},
			{MountPoint: "/data", Major: 8, Minor: 1, Device: "sda", Source: "/srv/new"},
			{MountPoint: "/tank", Minor: 60},
			{MountPoint: "/btr", Minor: 61},
		}},
		{200, []Volume{
			{
				MountPoint: "/data", Major: 8, Minor: 32, Device: "sdc", Volume: "pvc-90af9c02-ec70-446a-a16a-3ce17d4f42b4",
				Source: pod + "/volumes/kubernetes.io~csi/pvc-90af9c02-ec70-446a-a16a-3ce17d4f42b4/mount",
			},
			{MountPoint: "/cache", Major: 8, Minor: 1, Device: "sda", Volume: "cache", Source: pod + "/volumes/kubernetes.io~empty-dir/cache"},
			{MountPoint: "/etc/app", Major: 8, Minor: 1, Device: "sda", Volume: "config", Source: pod + "/volume-subpaths/config/app/0"},
		}},
	} {
		got, err := r.Container(tc.pid, host, disks, nil)
		if err != nil {
			t.Fatalf("pid %d: %v", tc.pid, err)
		}
		for i := range got {
			if got[i].SizeBytes != size || got[i].UsedBytes > size || got[i].UsedBytes+got[i].ReservedBytes > size {
				t.Errorf("pid %d %s: size %d used %d reserved %d, the file system has %d", tc.pid, got[i].MountPoint, got[i].SizeBytes, got[i].UsedBytes, got[i].ReservedBytes, size)
			}
			got[i].SizeBytes, got[i].UsedBytes, got[i].ReservedBytes = 0, 0, 0
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("pid %d:\n got %v\nwant %v", tc.pid, got, tc.want)
		}
	}

	// A runtime's word for a mount's source wins over the host's mount table.
	got, err := r.Container(100, host, disks, map[string]string{"/config": "/var/lib/docker/volumes/cfg/_data"})
	if err != nil || got[1].Volume != "cfg" || got[1].Source != "/var/lib/docker/volumes/cfg/_data" {
		t.Errorf("with sources: %v, %v", got, err)
	}

	if _, err := r.Container(999, host, disks, nil); !procfs.Gone(err) {
		t.Errorf("missing process: %v, want a Gone error", err)
	}
	vs, err := r.ContainerOf([]uint32{999, 200}, host, disks, nil)
	if err != nil || len(vs) != 3 {
		t.Errorf("ContainerOf skipping a gone pid: %v, %v", vs, err)
	}
	if vs, err := r.ContainerOf([]uint32{998, 999}, host, disks, nil); vs != nil || err != nil {
		t.Errorf("ContainerOf of exited processes only: %v, %v; want none and no error", vs, err)
	}
}

// Without the host's mount table the source is unknown, but a docker volume below a separately
// mounted /var/lib/docker is still named from the mount's root.
func TestContainerWithoutHostMounts(t *testing.T) {
	root := procFixture(t, map[uint32]string{100: "docker.mountinfo"})
	vs, err := New(root).Container(100, HostMounts{}, nodestats.BlockDevices{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vs[0].Volume != "pgdata" || vs[0].Source != "" || vs[0].Device != "" {
		t.Errorf("got %v", vs[0])
	}
}

func TestHostMountNamespace(t *testing.T) {
	root := procFixture(t, map[uint32]string{100: "docker.mountinfo", 300: "docker.mountinfo"})
	for pid, target := range map[string]string{"1": "mnt:[4026531841]", "300": "mnt:[4026531841]", "100": "mnt:[4026532999]"} {
		if err := os.MkdirAll(filepath.Join(root, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, pid, "ns/mnt")); err != nil {
			t.Fatal(err)
		}
	}
	r := New(root)
	if vs, err := r.Container(300, HostMounts{}, nodestats.BlockDevices{}, nil); err != nil || vs != nil {
		t.Errorf("host process: %v, %v; want none", vs, err)
	}
	if vs, err := r.Container(100, HostMounts{}, nodestats.BlockDevices{}, nil); err != nil || len(vs) != 5 {
		t.Errorf("container: %v, %v", vs, err)
	}
}

func TestVolumeName(t *testing.T) {
	for path, want := range map[string]string{
		"/var/lib/kubelet/pods/ed56844b-2ad5-4858-9305-abea47bd39fc/volumes/kubernetes.io~csi/pvc-90af9c02-ec70-446a-a16a-3ce17d4f42b4/mount": "pvc-90af9c02-ec70-446a-a16a-3ce17d4f42b4",
		"/var/lib/kubelet/pods/adf669ca/volume-subpaths/pvc-0307b722-e448-4d73-9d75-091ebf367264/pg/0":                                        "pvc-0307b722-e448-4d73-9d75-091ebf367264",
		"/var/lib/rancher/k3s/storage/pvc-d0c0cc92-ef36-4b4f-90c0-5c5ed489df0b_default_mongod-data":                                           "pvc-d0c0cc92-ef36-4b4f-90c0-5c5ed489df0b",
		"/var/snap/microk8s/common/default-storage/coroot-data-pvc-4bf620ab-bb10-4cd6-803a-5be8735ccaf6":                                      "pvc-4bf620ab-bb10-4cd6-803a-5be8735ccaf6",
		"/var/lib/kubelet/pods/7cac0d4b/volumes/kubernetes.io~aws-ebs/my-static-pv":                                                           "my-static-pv",
		"/var/lib/kubelet/pods/7cac0d4b/volumes/kubernetes.io~empty-dir/cache":                                                                "cache",
		"/var/lib/kubelet/pods/7cac0d4b/volumes/kubernetes.io~configmap/config-volume/..data":                                                 "config-volume",
		"/var/lib/kubelet/pods/7cac0d4b/volume-subpaths/config/app/0":                                                                         "config",
		"/var/lib/kubelet/pods/7cac0d4b/etc-hosts":                                                                                            "",
		"/var/lib/docker/volumes/pgdata/_data":                                                                                                "pgdata",
		"/var/lib/docker/volumes/pgdata/_data/sub":                                                                                            "pgdata",
		"/volumes/0123abcd/_data":                       "0123abcd",
		"/var/lib/containers/storage/volumes/web/_data": "web",
		"/var/lib/docker/volumes/pgdata":                "",
		"/srv/app":                                      "",
		"":                                              "",
	} {
		if got := volumeName(path); got != want {
			t.Errorf("volumeName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParseMountinfoErrors(t *testing.T) {
	for _, line := range []string{
		"1 2 3:4 / /",                             // short
		"1 2 34 / /x rw - ext4 /dev/x rw",         // no colon
		"1 2 3:x / /x rw - ext4 /dev/x rw",        // minor
		"1 2 3:4 / /x rw shared:1 ext4 /dev/x rw", // no separator
		"1 2 3:4 / /x rw -",                       // no fstype
		"1 2 3:4 / x rw - ext4 /dev/x rw",         // relative mount point
		"1 2 99999999999:4 / /x rw - ext4 /dev/x", // major beyond 32 bits
	} {
		if _, err := parseMountinfo([]byte(line), nil); err == nil {
			t.Errorf("accepted %q", line)
		}
	}
	ms, err := parseMountinfo([]byte("36 35 98:0 /mnt1 /mnt\\0402\\134x rw,noatime master:1 - ext3 /dev/root rw\n\n"+
		"52 27 0:4 net:[4026531833] /run/docker/netns/default rw - nsfs nsfs rw\n"), nil)
	if err != nil || len(ms) != 2 || ms[0] != (mount{major: 98, root: "/mnt1", point: "/mnt 2\\x", fsType: "ext3"}) || ms[1].root != "net:[4026531833]" {
		t.Errorf("got %+v, %v", ms, err)
	}
	// A bad line among good ones: the good ones are kept, the error counts the bad.
	ms, err = parseMountinfo([]byte("1 2 3:4 / /a rw - ext4 x rw\nbroken\n5 6 7:8 / /b rw - xfs y rw\nalso broken\n"), nil)
	if len(ms) != 2 || err == nil || !strings.Contains(err.Error(), "2 malformed") {
		t.Errorf("got %+v, %v", ms, err)
	}
}

func FuzzParseMountinfo(f *testing.F) {
	for _, name := range []string{"host.mountinfo", "docker.mountinfo", "pod.mountinfo"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, _ := parseMountinfo(b, nil)
		for _, m := range ms {
			if m.root == "" || !strings.HasPrefix(m.point, "/") || m.fsType == "" {
				t.Fatalf("%+v", m)
			}
			volumeName(m.root)
		}
	})
}

func BenchmarkContainer(b *testing.B) {
	root := procFixture(b, map[uint32]string{200: "pod.mountinfo"})
	r := New(root)
	host, _ := r.HostMounts()
	disks, _ := nodestats.ReadBlockDevices(root)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Container(200, host, disks, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// A process in the host's mount namespace (a systemd service) has no volumes of its own: the
// host is pid 1's namespace, or the agent's own where pid 1's cannot be read.
func TestHostMountNamespaceHasNoVolumes(t *testing.T) {
	for _, pid1Readable := range []bool{true, false} {
		root := procFixture(t, map[uint32]string{100: "docker.mountinfo", 200: "docker.mountinfo"})
		self := filepath.Join(t.TempDir(), "mnt")
		require := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		require(os.Symlink("mnt:[4026531841]", self))
		if pid1Readable {
			require(os.MkdirAll(filepath.Join(root, "1", "ns"), 0o755))
			require(os.Symlink("mnt:[4026531841]", filepath.Join(root, "1", "ns", "mnt")))
		}
		old := selfMountNS
		selfMountNS = self
		t.Cleanup(func() { selfMountNS = old })
		for pid, ns := range map[uint32]string{100: "mnt:[4026531841]", 200: "mnt:[4026532999]"} {
			require(os.MkdirAll(filepath.Join(root, strconv.Itoa(int(pid)), "ns"), 0o755))
			require(os.Symlink(ns, filepath.Join(root, strconv.Itoa(int(pid)), "ns", "mnt")))
		}
		r := New(root)
		host, _ := r.HostMounts()
		disks, _ := nodestats.ReadBlockDevices(root)
		if vs, err := r.Container(100, host, disks, nil); vs != nil || err != nil {
			t.Errorf("pid 1 readable %v: a process of the host's namespace has volumes %v, %v", pid1Readable, vs, err)
		}
		if vs, err := r.Container(200, host, disks, nil); len(vs) == 0 || err != nil {
			t.Errorf("pid 1 readable %v: a container's volumes: %v, %v", pid1Readable, vs, err)
		}
	}
}
