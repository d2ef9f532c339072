package logs

import (
	"bytes"
	"path/filepath"
	"strconv"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// findWriters scans <procRoot>/*/fd for descriptors open for writing on one of paths and returns
// the pid of a writer for each path it finds. Unreadable processes (gone, or not ours when not
// root) are skipped: attribution is best effort and the file then belongs to the node.
func findWriters(procRoot string, paths []string) map[string]uint32 {
	want := make(map[string]string, len(paths)) // resolved path -> configured path
	for _, p := range paths {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			want[resolved] = p
		} else {
			want[p] = p
		}
	}
	found := map[string]uint32{}
	pids, err := procfs.Pids(procRoot, nil)
	if err != nil {
		return found
	}
	var link, fdinfo []byte
	for _, pid := range pids {
		_ = procfs.EachFD(procRoot, pid, &link, func(fd int, target []byte) {
			if len(target) == 0 || target[0] != '/' {
				return // sockets, pipes, anon inodes
			}
			p, ok := want[string(target)]
			if !ok {
				return
			}
			if _, done := found[p]; done || !openForWriting(procfs.PidPath(procRoot, pid, "fdinfo/"+strconv.Itoa(fd)), &fdinfo) {
				return
			}
			found[p] = pid
		})
		if len(found) == len(want) {
			break
		}
	}
	return found
}

// openForWriting reads the "flags:" line of a /proc/<pid>/fdinfo/<fd> file (octal open flags)
// and reports O_WRONLY or O_RDWR.
func openForWriting(fdinfo string, buf *[]byte) bool {
	b, err := procfs.ReadFile(fdinfo, buf)
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
