package apptype

import (
	"os"
	"slices"
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
	// procs caches each process's types while it runs the same executable (Processes); entries
	// not asked about since the previous Forget are dropped by the next.
	procs map[uint32]*cachedProcess
	// cmdlineReads counts command lines read (Processes cache misses), for tests.
	cmdlineReads int
}

type cachedProcess struct {
	exe   exeKey
	types []string
	used  bool
}

// NewDetector reads processes below procRoot ("" means /proc).
func NewDetector(procRoot string) *Detector {
	return &Detector{
		procRoot: procfs.Root(procRoot), facts: map[exeKey]elfFacts{}, maxFacts: maxCachedExecutables,
		buf: make([]byte, 0, 4096), procs: map[uint32]*cachedProcess{},
	}
}

// Processes appends to dst the union of the types of processes pids (a container's), sorted,
// each once, and returns how many of them could not be read although they still run (a process
// that exited meanwhile is no error). A process's types are kept while it runs the same
// executable file, so a repeated call costs one stat per process; an exec into another program
// is seen at the next call. Call Forget once per round of calls (a collection).
func (d *Detector) Processes(pids []uint32, dst []string) ([]string, int) {
	start, unreadable := len(dst), 0
	for _, pid := range pids {
		types, err := d.cachedTypes(pid)
		if err != nil {
			if !procfs.Gone(err) {
				unreadable++
			}
			continue
		}
		for _, t := range types {
			if !slices.Contains(dst[start:], t) {
				dst = append(dst, t)
			}
		}
	}
	slices.Sort(dst[start:])
	return dst, unreadable
}

// Forget drops the cached types of processes Processes was not asked about since the previous
// Forget (exited, or left the containers asked about), bounding the cache by the live processes.
func (d *Detector) Forget() {
	for pid, p := range d.procs {
		if !p.used {
			delete(d.procs, pid)
			continue
		}
		p.used = false
	}
}

func (d *Detector) cachedTypes(pid uint32) ([]string, error) {
	key, haveKey := d.exeKeyOf(pid)
	if p, ok := d.procs[pid]; ok && haveKey && p.exe == key {
		p.used = true
		return p.types, nil
	}
	d.cmdlineReads++
	types, err := d.Process(pid)
	if err != nil || !haveKey {
		delete(d.procs, pid)
		return types, err
	}
	d.procs[pid] = &cachedProcess{exe: key, types: types, used: true}
	return types, nil
}

// exeKeyOf identifies the executable process pid runs; false when it cannot be read (a kernel
// thread, another user's process to an unprivileged agent, an exited one).
func (d *Detector) exeKeyOf(pid uint32) (exeKey, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(procfs.PidPath(d.procRoot, pid, "exe"), &st); err != nil {
		return exeKey{}, false
	}
	return exeKey{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtimeNs: st.Mtim.Nano()}, true //nolint:unconvert // Dev is uint32 on some architectures
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
	key, ok := d.exeKeyOf(pid)
	if !ok {
		return elfFacts{}
	}
	if f, ok := d.facts[key]; ok {
		return f
	}
	f, err := os.Open(procfs.PidPath(d.procRoot, pid, "exe"))
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
