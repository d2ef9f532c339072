package logs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gobwas/glob"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/logpatterns"
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
	// File is the log file the message was read from ("" for journald): a container the
	// registry never saw is described by it (containers.Registry.DescribeGone).
	File string
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

// containerOfCgroup attributes a cgroup path (journald's _SYSTEMD_CGROUP, or unitCgroupPath's
// approximation) the way the registry attributes a process in it: cgroups.Identify names the
// container; for a runtime's container, the registry's own entry when it knows the runtime id
// (its ID may carry Kubernetes names); otherwise the ID the registry gives a container without
// runtime metadata (see containers.ID). It returns NodeID and ok false for cgroups that are no
// container: the root, user sessions, init.scope, a pod's own cgroup, runtime helpers, and
// other cgroups unless otherCgroups (Config.OtherCgroups).
func containerOfCgroup(lookup ContainerLookup, path string, otherCgroups bool) (id containers.ID, c *containers.Container, ok bool) {
	ident := cgroups.Identify(path)
	switch ident.Kind {
	case cgroups.KindNone:
		return NodeID, nil, false
	case cgroups.KindOther:
		if !otherCgroups {
			return NodeID, nil, false
		}
	case cgroups.KindDocker, cgroups.KindContainerd, cgroups.KindCRIO, cgroups.KindPodman, cgroups.KindKubepods:
		if c, ok := lookup.ContainerByRuntimeID(ident.ID); ok {
			return c.ID, c, true
		}
	}
	// A systemd service, and any other cgroup, is its cgroup path (e.g.
	// "/system.slice/system-getty.slice/getty@tty1.service", "/machine.slice/machine-vm1.scope").
	// Other cgroups count as containers only with include_other_cgroups, here as in the
	// registry.
	return containers.IDOf(ident), nil, true
}

// unitCgroupPath approximates the cgroup of a systemd system unit from its name alone, for
// journal entries without _SYSTEMD_CGROUP whose sender the registry does not know. It is where
// systemd puts a unit by default: init.scope at the root; user managers and sessions under
// user.slice (no container); an instance of a template ("getty@tty1.service") in the
// template's slice "system-<escaped template>.slice"; any other unit directly in system.slice.
// A unit placed in another slice by its Slice= setting is not found this way.
func unitCgroupPath(unit string) string {
	switch {
	case unit == "init.scope":
		return "/init.scope"
	case strings.HasPrefix(unit, "session-") && strings.HasSuffix(unit, ".scope"),
		strings.HasPrefix(unit, "user@") && strings.HasSuffix(unit, ".service"),
		strings.HasPrefix(unit, "user-") && strings.HasSuffix(unit, ".slice"):
		return "/user.slice/" + unit
	}
	if template, _, ok := strings.Cut(unit, "@"); ok && template != "" {
		return "/system.slice/system-" + escapeUnitName(template) + ".slice/" + unit
	}
	return "/system.slice/" + unit
}

// escapeUnitName escapes a string for use in a unit name as systemd does (unit_name_escape):
// ASCII letters, digits, ':', '_' and '.' (but not a leading '.') stay; '/' becomes '-'; any
// other byte, '-' included, becomes "\xNN".
func escapeUnitName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

// nameFilter applies the include/exclude globs to the names a container or unit is known by.
// Globs use gobwas/glob syntax without separators, so "*" also spans the '/' of container ids
// ("/k8s/kube-system/*").
type nameFilter struct{ include, exclude []glob.Glob }

// newNameFilter compiles the globs, reporting every bad one by its option and index.
func newNameFilter(include, exclude []string) (nameFilter, error) {
	var f nameFilter
	var errs []error
	compile := func(option string, patterns []string) []glob.Glob {
		var out []glob.Glob
		for i, p := range patterns {
			g, err := glob.Compile(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: bad pattern %q: %w", option, i, p, err))
				continue
			}
			out = append(out, g)
		}
		return out
	}
	f.include = compile("logs.include", include)
	f.exclude = compile("logs.exclude", exclude)
	return f, errors.Join(errs...)
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

// messageText makes raw bytes the text of a message: valid UTF-8 (invalid sequences become
// U+FFFD), NUL and other C0 controls except tab become spaces so junk cannot break templates
// (leading ones are dropped: a colour code must not look like the indentation of a stack
// frame), and trailing CR/LF are dropped. binary reports a line that is no text at all
// (logpatterns.Binary): such a line is no message, and its source counts and skips it.
func messageText(b []byte) (text string, binary bool) {
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
		return string(b), false
	}
	s := string(b)
	if logpatterns.Binary(s) {
		return "", true
	}
	s = strings.TrimLeftFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' })
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' {
			return ' '
		}
		return r
	}, s), false
}
