package apptype

import (
	"os"
	"syscall"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// maxCachedExecutables bounds the ELF facts cache; a node runs far fewer distinct binaries.
// When full, the cache starts over (a re-read costs one small ELF header read per binary).
const maxCachedExecutables = 4096

// exeKey identifies an executable file's content well enough: the same inode rewritten in
// place changes size or mtime.
type exeKey struct {
	dev, ino uint64
	size     int64
	mtimeNs  int64
}

// Detector tells the types of processes. One Detector is not safe for concurrent use.
type Detector struct {
	procRoot string
	facts    map[exeKey]elfFacts
	maxFacts int
	buf      []byte
	// elfReads counts executables opened (cache misses), for tests and benchmarks.
	elfReads int
}

// NewDetector reads processes below procRoot ("" means /proc).
func NewDetector(procRoot string) *Detector {
	return &Detector{procRoot: procfs.Root(procRoot), facts: map[exeKey]elfFacts{}, maxFacts: maxCachedExecutables, buf: make([]byte, 0, 4096)}
}

// Process returns the types of process pid, most specific first: the program (FromCmdline),
// then "golang" for a Go binary and "dotnet" for a .NET one — a Go program such as consul is
// both "consul" and "golang", as coroot-node-agent reports it. It returns nil for a kernel
// thread or an unknown program. The error is from reading the command line: procfs.Gone(err)
// when the process exited. An executable that cannot be read (the process exiting meanwhile,
// another user's binary when the agent is unprivileged) only costs the ELF facts.
func (d *Detector) Process(pid uint32) ([]string, error) {
	cmdline, err := procfs.ReadFile(procfs.PidPath(d.procRoot, pid, "cmdline"), &d.buf)
	if err != nil {
		return nil, err
	}
	if len(cmdline) == 0 {
		return nil, nil // kernel thread, or a zombie
	}
	var types []string
	if t := FromCmdline(cmdline); t != "" {
		types = append(types, t)
	}
	dotnet := dotnetHost(cmdline) || (len(types) > 0 && types[0] == "dotnet")
	facts := d.exeFacts(pid)
	if facts.golang {
		types = append(types, "golang")
	}
	if (dotnet || facts.dotnetApphost) && (len(types) == 0 || types[0] != "dotnet") {
		types = append(types, "dotnet")
	}
	return types, nil
}

// exeFacts returns the ELF facts of pid's executable, from the cache when the file was read
// before; none when it cannot be read.
func (d *Detector) exeFacts(pid uint32) elfFacts {
	exe := procfs.PidPath(d.procRoot, pid, "exe")
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		return elfFacts{}
	}
	key := exeKey{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtimeNs: st.Mtim.Nano()} //nolint:unconvert // Dev is uint32 on some architectures
	if f, ok := d.facts[key]; ok {
		return f
	}
	f, err := os.Open(exe)
	if err != nil {
		return elfFacts{}
	}
	defer f.Close()
	d.elfReads++
	facts := readELFFacts(f)
	if len(d.facts) >= d.maxFacts {
		clear(d.facts)
	}
	d.facts[key] = facts
	return facts
}
