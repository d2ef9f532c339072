package logs

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gobwas/glob"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// Source labels, equal to coroot-node-agent's so dashboards keep working: container
// stdout/stderr (docker json-file and CRI) share one, the journal has one, and a plain file is
// labelled with its path.
const (
	SourceStdoutStderr = "stdout/stderr"
	SourceJournald     = "journald"
)

// NodeID is the container id of messages that belong to no container: host services whose
// writer is unknown. The receiver reports them on the node resource.
const NodeID containers.ID = ""

// Message is one log message, attributed to its container and ready for the pattern extractor.
type Message struct {
	Container containers.ID
	Source    string    // SourceStdoutStderr, SourceJournald or the file's path
	Stream    string    // "stdout", "stderr" or "" when the source has no streams
	Time      time.Time // when the runtime or journald stamped it; zero when unknown
	Text      string    // without the trailing newline, valid UTF-8, at most max_line_length
	Level     Level     // from the source (journald PRIORITY); LevelUnknown: detect from Text
}

// Sink receives messages. Sources call Message from their own goroutines, several at once;
// the Message must not be kept after the call returns (its Text may be reused).
type Sink interface {
	Message(m *Message)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(m *Message)

// Message calls f(m).
func (f SinkFunc) Message(m *Message) { f(m) }

// ContainerLookup is what the sources need from the container registry;
// *containers.Registry satisfies it.
type ContainerLookup interface {
	ContainerByPID(pid uint32) (*containers.Container, bool)
	ContainerByRuntimeID(id string) (*containers.Container, bool)
}

// noLookup knows no container: everything keeps its fallback id.
type noLookup struct{}

func (noLookup) ContainerByPID(uint32) (*containers.Container, bool)       { return nil, false }
func (noLookup) ContainerByRuntimeID(string) (*containers.Container, bool) { return nil, false }

// Fallback ids follow the registry's documented scheme, so counts keyed by them land on the
// same container once the registry knows it.
func dockerContainerID(runtimeID string) containers.ID { return containers.ID("/docker/" + runtimeID) }

func criContainerID(namespace, pod, container string) containers.ID {
	return containers.ID("/k8s/" + namespace + "/" + pod + "/" + container)
}

func systemdUnitID(unit string) containers.ID { return containers.ID("/system.slice/" + unit) }

// nameFilter applies the include/exclude globs to the names a container or unit is known by.
// Globs use gobwas/glob syntax without separators, so "*" also spans the '/' of container ids
// ("/k8s/kube-system/*").
type nameFilter struct{ include, exclude []glob.Glob }

func newNameFilter(include, exclude []string) (nameFilter, error) {
	var f nameFilter
	for _, p := range include {
		g, err := glob.Compile(p)
		if err != nil {
			return f, fmt.Errorf("logs.include: bad glob %q: %w", p, err)
		}
		f.include = append(f.include, g)
	}
	for _, p := range exclude {
		g, err := glob.Compile(p)
		if err != nil {
			return f, fmt.Errorf("logs.exclude: bad glob %q: %w", p, err)
		}
		f.exclude = append(f.exclude, g)
	}
	return f, nil
}

// allows reports whether a container known by any of names should be read.
func (f nameFilter) allows(names ...string) bool {
	for _, n := range names {
		if n != "" && matchGlobs(f.exclude, n) {
			return false
		}
	}
	if len(f.include) == 0 {
		return true
	}
	for _, n := range names {
		if n != "" && matchGlobs(f.include, n) {
			return true
		}
	}
	return false
}

func matchGlobs(globs []glob.Glob, name string) bool {
	for _, g := range globs {
		if g.Match(name) {
			return true
		}
	}
	return false
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := filepath.Match(g, name); ok {
			return true
		}
	}
	return false
}

// sanitizeText makes raw bytes a message: valid UTF-8 (invalid sequences become U+FFFD), NUL
// and other C0 controls except tab become spaces so binary junk cannot break templates, and
// trailing CR/LF are dropped.
func sanitizeText(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	clean := true
	for _, c := range b {
		if c < 0x20 && c != '\t' || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' {
			return ' '
		}
		return r
	}, s)
}
