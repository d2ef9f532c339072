package procfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// DefaultRoot is where procfs is mounted unless configured otherwise.
const DefaultRoot = "/proc"

// Root is the proc root to read: configured, or DefaultRoot when configured is empty. Config
// sections leave proc_root empty to mean "the agent's one procfs setting" (the receiver's
// node.proc_root); a package used on its own reads /proc then.
func Root(configured string) string {
	if configured == "" {
		return DefaultRoot
	}
	return configured
}

// Pids appends the processes listed under root (one decimal directory per thread group) to dst,
// in the order the directory lists them: ascending on a real procfs. Entries that are not pids
// ("self", "net", "sys", …) are skipped. A process that exits while root is being listed is
// simply listed or not; its files then fail with an error Gone recognises. Only failing to read
// root itself is an error.
func Pids(root string, dst []uint32) ([]uint32, error) {
	d, err := os.Open(root)
	if err != nil {
		return dst, err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(512)
		for _, n := range names {
			if pid, ok := parsePid(n); ok {
				dst = append(dst, pid)
			}
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// parsePid accepts the decimal names of process directories: no sign, no leading zero, within
// 32 bits. The first-byte check skips the non-pid entries without a failed parse each.
func parsePid(name string) (uint32, bool) {
	if name == "" || name[0] < '1' || name[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(name, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

// PidPath is the path of name (e.g. "cgroup", "net/tcp", "fd") in pid's directory below root.
func PidPath(root string, pid uint32, name string) string {
	return root + "/" + strconv.FormatUint(uint64(pid), 10) + "/" + name
}

// Gone reports whether err, from reading a process's files, means the process (or the file
// descriptor) no longer exists: ENOENT once it is reaped, ESRCH while it is being reaped.
func Gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// EachFD calls fn for every open file descriptor of pid with the target of its link
// ("socket:[41234]", "pipe:[12]", "anon_inode:[eventfd]", "/var/log/app.log"). target is valid
// only during the call: it lives in *buf, which is reused and grown as needed (nil is fine). A
// descriptor closed between the listing and its readlink is skipped. The error is from opening
// or listing pid's fd directory: Gone(err) when the process exited; EACCES for another user's
// process when the agent is not privileged.
func EachFD(root string, pid uint32, buf *[]byte, fn func(fd int, target []byte)) error {
	dir := PidPath(root, pid, "fd")
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		target, err := ReadLink(dir+"/"+name, buf)
		if err != nil {
			continue // closed since the listing
		}
		fn(fd, target)
	}
	return nil
}

// ReadLink reads the target of the symbolic link at path into *buf, growing it as needed (nil
// is fine), and returns it; it stays valid until *buf is used again.
func ReadLink(path string, buf *[]byte) ([]byte, error) {
	if len(*buf) == 0 {
		*buf = make([]byte, 256)
	}
	for {
		n, err := syscall.Readlink(path, *buf)
		if err != nil {
			return nil, &fs.PathError{Op: "readlink", Path: path, Err: err}
		}
		if n < len(*buf) {
			return (*buf)[:n], nil
		}
		*buf = make([]byte, 2*len(*buf))
	}
}

// ReadFile reads a whole small virtual file (procfs, and the same way cgroupfs or sysfs) into
// *bp, growing it as needed, and returns its contents; they stay valid until *bp is used again.
// It uses raw syscalls: os.Open would allocate an *os.File and register the descriptor with the
// poller, which is measurable when a cycle reads thousands of such files. Errors are
// *fs.PathError.
func ReadFile(path string, bp *[]byte) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer func() { _ = syscall.Close(fd) }()
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := syscall.Read(fd, b[len(b):cap(b)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			*bp = b
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n <= 0 {
			break
		}
		b = b[:len(b)+n]
	}
	*bp = b
	return b, nil
}
