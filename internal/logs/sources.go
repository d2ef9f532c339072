package logs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// rawLineAllowance is what a docker/CRI line carries beside its text: JSON escaping (up to 6
// bytes per control character is rare; double is generous) or the CRI prefix, around a chunk
// that runtimes cap at 16 KiB.
func rawLineAllowance(maxLine int) int { return 2*max(maxLine, 16<<10) + 1024 }

var dockerIDPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// containerLister is implemented by *containers.Registry. The runtimes' LogPath finds logs the
// directory scans miss (dockerd with another data-root, a kubelet with another pod log root).
type containerLister interface {
	Containers() []*containers.Container
}

// registryLogFiles returns the LogPath of the registry's containers of the given runtimes
// that the directory scan did not find.
func registryLogFiles(lookup ContainerLookup, seen map[string]bool, runtimes ...string) []*containers.Container {
	lister, ok := lookup.(containerLister)
	if !ok {
		return nil
	}
	var out []*containers.Container
	for _, c := range lister.Containers() {
		if c.LogPath == "" || seen[c.LogPath] {
			continue
		}
		for _, r := range runtimes {
			if c.Runtime == r {
				if fi, err := os.Stat(c.LogPath); err == nil && fi.Mode().IsRegular() {
					out = append(out, c)
				}
				break
			}
		}
	}
	return out
}

// discoverDocker lists <dir>/<id>/<id>-json.log of every container dockerd keeps.
func discoverDocker(cfg *Config, lookup ContainerLookup, filter nameFilter) []fileTarget {
	entries, _ := os.ReadDir(cfg.Docker.ContainersDir) // absent: only the registry's paths
	var out []fileTarget
	seen := map[string]bool{}
	newTarget := func(path string, cid containers.ID) fileTarget {
		seen[path] = true
		return fileTarget{
			path: path, container: cid, source: SourceStdoutStderr, maxRaw: rawLineAllowance(cfg.MaxLineLength),
			newDecoder: func() lineDecoder { return newDockerDecoder(cfg.MaxLineLength) },
		}
	}
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() || !dockerIDPattern.MatchString(id) {
			continue
		}
		path := filepath.Join(cfg.Docker.ContainersDir, id, id+"-json.log")
		if _, err := os.Stat(path); err != nil {
			continue // another log driver (journald, none), or not started yet
		}
		cid, name := dockerContainerID(id), ""
		if c, ok := lookup.ContainerByRuntimeID(id); ok {
			cid, name = c.ID, c.Name
		}
		if !filter.allows(name, string(cid), id) {
			continue
		}
		out = append(out, newTarget(path, cid))
	}
	for _, c := range registryLogFiles(lookup, seen, "docker") {
		if strings.HasSuffix(c.LogPath, "-json.log") && filter.allows(c.Name, string(c.ID), c.RuntimeID) {
			out = append(out, newTarget(c.LogPath, c.ID))
		}
	}
	return out
}

// criLogName is the current log of a container: <restart count>.log (rotated generations are
// <n>.log.<timestamp>[.gz]).
var criLogName = regexp.MustCompile(`^\d+\.log$`)

// discoverCRI lists <dir>/<namespace>_<pod>_<uid>/<container>/<n>.log. Each restart of a
// container writes a new <n>.log; all are followed (the older ones just stay quiet).
func discoverCRI(cfg *Config, lookup ContainerLookup, filter nameFilter) []fileTarget {
	pods, _ := os.ReadDir(cfg.CRI.PodsDir) // absent: only the registry's paths
	var out []fileTarget
	seen := map[string]bool{}
	for _, pod := range pods {
		ns, name, ok := parsePodDirName(pod.Name())
		if !ok || !pod.IsDir() {
			continue
		}
		podDir := filepath.Join(cfg.CRI.PodsDir, pod.Name())
		ctrs, err := os.ReadDir(podDir)
		if err != nil {
			continue
		}
		for _, ctr := range ctrs {
			if !ctr.IsDir() {
				continue
			}
			cid := criContainerID(ns, name, ctr.Name())
			if !filter.allows(ctr.Name(), string(cid), ns+"/"+name+"/"+ctr.Name()) {
				continue
			}
			files, err := os.ReadDir(filepath.Join(podDir, ctr.Name()))
			if err != nil {
				continue
			}
			for _, f := range files {
				if !criLogName.MatchString(f.Name()) {
					continue
				}
				path := filepath.Join(podDir, ctr.Name(), f.Name())
				seen[path] = true
				out = append(out, criTarget(cfg, path, cid))
			}
		}
	}
	for _, c := range registryLogFiles(lookup, seen, "containerd", "crio") {
		if filter.allows(c.Name, string(c.ID), c.ContainerName) {
			out = append(out, criTarget(cfg, c.LogPath, c.ID))
		}
	}
	return out
}

func criTarget(cfg *Config, path string, cid containers.ID) fileTarget {
	return fileTarget{
		path: path, container: cid, source: SourceStdoutStderr, maxRaw: rawLineAllowance(cfg.MaxLineLength),
		newDecoder: func() lineDecoder { return newCRIDecoder(cfg.MaxLineLength) },
	}
}

// parsePodDirName splits "<namespace>_<pod>_<uid>". Namespace and pod names are DNS labels
// (no '_'), so the split is unambiguous.
func parsePodDirName(dir string) (namespace, pod string, ok bool) {
	parts := strings.Split(dir, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// fileSourceDiscovery finds plain log files and attributes each to the container of the
// process writing it, or to the node.
type fileSourceDiscovery struct {
	cfg    *Config
	lookup ContainerLookup
	filter nameFilter
	procfs string
	// writers caches the writer attribution of a path for a few rounds: a /proc/*/fd scan is
	// not free on a busy node.
	writers   map[string]writerInfo
	round     int
	scanEvery int
}

type writerInfo struct {
	container containers.ID
	name      string
	round     int
}

func (d *fileSourceDiscovery) discover() []fileTarget {
	d.round++
	seen := map[string]bool{}
	var paths []string
	for _, g := range d.cfg.Files.Include {
		matches, _ := filepath.Glob(g)
		for _, p := range matches {
			if seen[p] || excludedFile(d.cfg.Files.Exclude, p) {
				continue
			}
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			seen[p] = true
			paths = append(paths, p)
		}
	}
	if d.cfg.Files.AttributeWriters {
		var stale []string
		for _, p := range paths {
			if w, ok := d.writers[p]; !ok || d.round-w.round >= d.scanEvery {
				stale = append(stale, p)
			}
		}
		if len(stale) > 0 {
			found := findWriters(d.procfs, stale)
			for _, p := range stale {
				info := writerInfo{round: d.round}
				if pid, ok := found[p]; ok {
					if c, ok := d.lookup.ContainerByPID(pid); ok {
						info.container, info.name = c.ID, c.Name
					}
				}
				d.writers[p] = info
			}
		}
		for p := range d.writers {
			if !seen[p] {
				delete(d.writers, p)
			}
		}
	}
	out := make([]fileTarget, 0, len(paths))
	for _, p := range paths {
		w := d.writers[p]
		if w.container != NodeID && !d.filter.allows(w.name, string(w.container)) {
			continue
		}
		out = append(out, fileTarget{
			path: p, container: w.container, source: p, maxRaw: d.cfg.MaxLineLength,
			newDecoder: func() lineDecoder { return plainDecoder{} },
		})
	}
	return out
}

func excludedFile(globs []string, path string) bool {
	return matchAny(globs, path) || matchAny(globs, filepath.Base(path))
}
