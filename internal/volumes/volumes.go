package volumes

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/codexray/codexray-node-agent/internal/nodestats"
	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// Volume is one file system mounted into a container, with its space.
type Volume struct {
	MountPoint   string // in the container, e.g. /var/lib/postgresql/data
	Major, Minor uint32
	Device       string // the whole disk it lives on (sda for sda1), "" when unknown
	Volume       string // Kubernetes or docker volume name, "" for a plain bind mount
	Source       string // the mounted path on the host, "" when the host's mount table lacks it

	SizeBytes     uint64 // the file system's size
	UsedBytes     uint64 // size minus free
	ReservedBytes uint64 // free but reserved for root (ext4's 5%): used + available + reserved = size
}

// Reader reads containers' volumes below a procfs root. One Reader is not safe for concurrent
// use.
type Reader struct {
	procRoot string
	buf      []byte
}

// New reads below procRoot ("" means /proc).
func New(procRoot string) *Reader {
	return &Reader{procRoot: procfs.Root(procRoot), buf: make([]byte, 0, 16<<10)}
}

// HostMounts is the host's mount table: where each file system subtree is mounted on the host.
// Read it once per collection and pass it to every Container call.
type HostMounts struct {
	byDevice map[[2]uint32][]mount
}

// HostMounts reads pid 1's mountinfo (the host's mount namespace), or the agent's own when
// pid 1's cannot be read.
func (r *Reader) HostMounts() (HostMounts, error) {
	b, err := procfs.ReadFile(r.procRoot+"/1/mountinfo", &r.buf)
	if err != nil {
		if b, err = procfs.ReadFile(r.procRoot+"/self/mountinfo", &r.buf); err != nil {
			return HostMounts{}, err
		}
	}
	ms, err := parseMountinfo(b, nil)
	h := HostMounts{byDevice: map[[2]uint32][]mount{}}
	for _, m := range ms {
		k := [2]uint32{m.major, m.minor}
		h.byDevice[k] = append(h.byDevice[k], m)
	}
	return h, err
}

// Container returns the volumes of the container that process pid runs in, in the order of
// its mount table (a mount point mounted over reports the top mount). A process in the host's
// own mount namespace (a systemd service, the host's shells) has no volumes of its own: nil. disks names devices (nodestats.ReadBlockDevices, once per collection).
// sources optionally maps container mount points to host paths a container runtime reported;
// they take precedence over what the host's mount table suggests. A mount whose statfs fails
// (unmounted meanwhile) is skipped. The error is from reading the process's mountinfo
// (procfs.Gone(err) when it exited), or names its malformed lines while the volumes of the
// others are returned.
func (r *Reader) Container(pid uint32, host HostMounts, disks nodestats.BlockDevices, sources map[string]string) ([]Volume, error) {
	if r.hostMountNS(pid) {
		return nil, nil // checked first: a systemd service costs two readlinks, no parse
	}
	b, err := procfs.ReadFile(procfs.PidPath(r.procRoot, pid, "mountinfo"), &r.buf)
	if err != nil {
		return nil, err
	}
	ms, perr := parseMountinfo(b, nil)
	// The top mount at each point wins: later lines are mounted over earlier ones.
	top := make(map[string]int, len(ms))
	for i, m := range ms {
		top[m.point] = i
	}
	root := procfs.PidPath(r.procRoot, pid, "root")
	var res []Volume
	for i, m := range ms {
		if top[m.point] != i || !keep(m) {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(root+m.point, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			continue // files bind-mounted by runtimes: /etc/hosts, /etc/resolv.conf, /dev/termination-log
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(root+m.point, &fs); err != nil {
			continue
		}
		v := Volume{MountPoint: m.point, Major: m.major, Minor: m.minor, Device: disks.Disk(m.major, m.minor)}
		v.SizeBytes, v.UsedBytes, v.ReservedBytes = space(fs)
		if src, ok := sources[m.point]; ok {
			v.Source = src
		} else {
			v.Source = host.source(m)
		}
		v.Volume = volumeName(v.Source)
		if v.Volume == "" && v.Source == "" {
			v.Volume = volumeName(m.root) // e.g. /volumes/<name>/_data below a separate /var/lib/docker
		}
		res = append(res, v)
	}
	if perr != nil {
		return res, perr
	}
	return res, nil
}

// hostMountNS reports whether pid shares the host's mount namespace: pid 1's, or, where pid
// 1's namespaces cannot be read (some sandboxes deny them even to root), the agent's own, which
// is the host's when the agent runs on the host (in a pod, hostPID makes pid 1's readable).
// When pid's own link cannot be read it cannot tell and says no.
func (r *Reader) hostMountNS(pid uint32) bool {
	var b1, b2 []byte
	host, err1 := procfs.ReadLink(r.procRoot+"/1/ns/mnt", &b1)
	if err1 != nil {
		host, err1 = procfs.ReadLink(selfMountNS, &b1)
	}
	own, err2 := procfs.ReadLink(procfs.PidPath(r.procRoot, pid, "ns/mnt"), &b2)
	return err1 == nil && err2 == nil && bytes.Equal(host, own)
}

// selfMountNS is the agent's own mount namespace link (a variable for tests).
var selfMountNS = "/proc/self/ns/mnt"

// keep decides which mounts are volumes: those of a block device (major number other than 0).
// Pseudo and virtual file systems (proc, sysfs, tmpfs, cgroup, mqueue, devpts), the overlay
// root of a container and network file systems (NFS, CIFS, FUSE) have major 0 and are not
// volumes, as in coroot-node-agent, which keeps only ZFS among them. Btrfs reports major 0 for
// every subvolume too: it is kept here as well (a difference: coroot-node-agent drops it).
func keep(m mount) bool {
	return m.major != 0 || m.fsType == "zfs" || m.fsType == "btrfs"
}

// space converts statfs's block counts to bytes. Counts are in units of the fragment size
// (f_frsize); coroot-node-agent multiplies by f_bsize, which is the same on ext4, xfs and
// btrfs but not on every file system.
func space(fs syscall.Statfs_t) (size, used, reserved uint64) {
	unit := uint64(fs.Frsize)
	if unit == 0 {
		unit = uint64(fs.Bsize)
	}
	size = fs.Blocks * unit
	if fs.Bfree <= fs.Blocks {
		used = (fs.Blocks - fs.Bfree) * unit
	}
	if fs.Bavail <= fs.Bfree {
		reserved = (fs.Bfree - fs.Bavail) * unit
	}
	return size, used, reserved
}

// source is the host path a container mount shows: the host mount of the same device whose
// root contains the container mount's root, joined with the rest of that root. Of several
// candidates the most specific root wins, then a kubelet pod volume directory (the same
// persistent volume is also mounted at kubelet's global mount point). "" when the host's table
// has no such mount (e.g. the agent cannot read pid 1's mount namespace and the file system is
// mounted only in another one).
func (h HostMounts) source(m mount) string {
	best, bestLen, bestKubelet := "", -1, false
	for _, hm := range h.byDevice[[2]uint32{m.major, m.minor}] {
		rest, ok := within(m.root, hm.root)
		if !ok {
			continue
		}
		p := joinPath(hm.point, rest)
		kubelet := strings.Contains(p, "/pods/") && (strings.Contains(p, "/volumes/") || strings.Contains(p, "/volume-subpaths/"))
		if len(hm.root) > bestLen || len(hm.root) == bestLen && kubelet && !bestKubelet {
			best, bestLen, bestKubelet = p, len(hm.root), kubelet
		}
	}
	return best
}

// within reports whether path is dir or below it, and the remainder ("" or "/a/b").
func within(path, dir string) (string, bool) {
	if dir == "/" {
		if path == "/" {
			return "", true
		}
		return path, true
	}
	if path == dir {
		return "", true
	}
	if strings.HasPrefix(path, dir) && path[len(dir)] == '/' {
		return path[len(dir):], true
	}
	return "", false
}

func joinPath(point, rest string) string {
	if point == "/" && rest != "" {
		return rest
	}
	return point + rest
}

var (
	// A dynamically provisioned persistent volume's name anywhere in the path: kubelet's CSI and
	// in-tree mounts, the k3s local-path provisioner (…/storage/pvc-<uuid>_<ns>_<claim>) and
	// microk8s's hostpath storage (…/<ns>-<claim>-pvc-<uuid>). coroot-node-agent checks it first.
	pvcName = regexp.MustCompile(`pvc-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	// kubelet's per-pod volume directories: …/pods/<uid>/volumes/<plugin>/<name> (the pod's
	// volume name, or the persistent volume's name for persistent plugins) and
	// …/pods/<uid>/volume-subpaths/<name>/<container>/<index> for subPath mounts.
	kubeletVolume  = regexp.MustCompile(`/pods/[^/]+/volumes/[^/]+/([^/]+)`)
	kubeletSubpath = regexp.MustCompile(`/pods/[^/]+/volume-subpaths/([^/]+)/`)
	// docker's and podman's local volumes: …/volumes/<name>/_data.
	localVolume = regexp.MustCompile(`/volumes/([^/]+)/_data(/|$)`)
)

// volumeName names the volume a host path belongs to, "" for a plain bind mount.
//
// Difference: coroot-node-agent names only persistent volumes (pvc-<uuid> names and the
// persistent plugins' directories) and leaves emptyDir, configMap and docker volumes unnamed;
// here every kubelet volume directory gives the pod's volume name and docker and podman local
// volumes give theirs.
func volumeName(path string) string {
	if path == "" {
		return ""
	}
	if n := pvcName.FindString(path); n != "" {
		return n
	}
	for _, re := range []*regexp.Regexp{kubeletVolume, kubeletSubpath, localVolume} {
		if g := re.FindStringSubmatch(path); g != nil {
			return g[1]
		}
	}
	return ""
}

// ContainerOf returns the volumes of a container from the first of its processes that can be
// read (a process may exit between the listing and the read). A container whose processes all
// exited has none, and no error.
func (r *Reader) ContainerOf(pids []uint32, host HostMounts, disks nodestats.BlockDevices, sources map[string]string) ([]Volume, error) {
	for _, pid := range pids {
		vs, err := r.Container(pid, host, disks, sources)
		if err == nil || !procfs.Gone(err) {
			return vs, err
		}
	}
	return nil, nil
}

// String is a compact form for logs and test failures.
func (v Volume) String() string {
	return v.MountPoint + " " + strconv.Itoa(int(v.Major)) + ":" + strconv.Itoa(int(v.Minor)) + " dev=" + v.Device +
		" volume=" + v.Volume + " source=" + v.Source + " size=" + strconv.FormatUint(v.SizeBytes, 10) +
		" used=" + strconv.FormatUint(v.UsedBytes, 10) + " reserved=" + strconv.FormatUint(v.ReservedBytes, 10)
}
