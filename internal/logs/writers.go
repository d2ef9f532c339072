package logs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// findWriters scans <procfs>/*/fd for descriptors open for writing on one of paths and returns
// the pid of a writer for each path it finds. Unreadable processes (gone, or not ours when not
// root) are skipped: attribution is best effort and the file then belongs to the node.
func findWriters(procfs string, paths []string) map[string]uint32 {
	want := make(map[string]string, len(paths)) // resolved path -> configured path
	for _, p := range paths {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			want[real] = p
		} else {
			want[p] = p
		}
	}
	found := map[string]uint32{}
	procs, err := os.ReadDir(procfs)
	if err != nil {
		return found
	}
	for _, proc := range procs {
		pid, err := strconv.ParseUint(proc.Name(), 10, 32)
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procfs, proc.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || len(target) == 0 || target[0] != '/' {
				continue // sockets, pipes, anon inodes
			}
			p, ok := want[target]
			if !ok {
				continue
			}
			if _, done := found[p]; done || !openForWriting(filepath.Join(procfs, proc.Name(), "fdinfo", fd.Name())) {
				continue
			}
			found[p] = uint32(pid)
		}
		if len(found) == len(want) {
			break
		}
	}
	return found
}

// openForWriting reads the "flags:" line of a /proc/<pid>/fdinfo/<fd> file (octal open flags)
// and reports O_WRONLY or O_RDWR.
func openForWriting(fdinfo string) bool {
	b, err := os.ReadFile(fdinfo)
	if err != nil {
		return false
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		v, ok := bytes.CutPrefix(line, []byte("flags:"))
		if !ok {
			continue
		}
		flags, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 64)
		if err != nil {
			return false
		}
		const accMode, wrOnly, rdWr = 0o3, 0o1, 0o2
		return flags&accMode == wrOnly || flags&accMode == rdWr
	}
	return false
}
