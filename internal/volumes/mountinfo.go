package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// mount is one line of a mountinfo file (proc_pid_mountinfo(5)).
type mount struct {
	major, minor uint32
	root         string // the path within the file system that is mounted (bind mounts: a subtree)
	point        string // where, in the reading process's view
	fsType       string
}

var errMountinfo = errors.New("malformed mountinfo line")

// parseMountinfo appends the mounts of a mountinfo file to dst. Lines are
// "id parent major:minor root point options [optional…] - fstype source super-options". A
// malformed line is skipped; the error names the first and counts them, the other lines are
// still appended.
func parseMountinfo(b []byte, dst []mount) ([]mount, error) {
	var bad int
	var first error
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m, err := parseMountLine(line)
		if err != nil {
			bad++
			if first == nil {
				first = fmt.Errorf("%w: %q", err, line)
			}
			continue
		}
		dst = append(dst, m)
	}
	if first != nil {
		return dst, fmt.Errorf("%d malformed mountinfo lines, the first: %w", bad, first)
	}
	return dst, nil
}

func parseMountLine(line []byte) (mount, error) {
	fs := bytes.Fields(line)
	if len(fs) < 7 {
		return mount{}, errMountinfo
	}
	var m mount
	majS, minS, ok := bytes.Cut(fs[2], []byte(":"))
	if !ok {
		return mount{}, errMountinfo
	}
	var err1, err2 error
	m.major, err1 = parseU32(majS)
	m.minor, err2 = parseU32(minS)
	if err1 != nil || err2 != nil {
		return mount{}, errMountinfo
	}
	// The root is a path for file systems, but nsfs shows the namespace ("net:[4026531833]").
	m.root, m.point = unescape(fs[3]), unescape(fs[4])
	if m.root == "" || !strings.HasPrefix(m.point, "/") {
		return mount{}, errMountinfo
	}
	sep := -1
	for i := 6; i < len(fs); i++ {
		if string(fs[i]) == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+1 >= len(fs) {
		return mount{}, errMountinfo
	}
	m.fsType = string(fs[sep+1])
	return m, nil
}

func parseU32(b []byte) (uint32, error) {
	if len(b) == 0 || len(b) > 10 {
		return 0, errMountinfo
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errMountinfo
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 1<<32-1 {
		return 0, errMountinfo
	}
	return uint32(v), nil
}

// unescape undoes the kernel's octal escapes of space, tab, newline and backslash in paths
// (\040, \011, \012, \134).
func unescape(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+4 <= len(b) && isOctal(b[i+1:i+4]) {
			sb.WriteByte((b[i+1]-'0')<<6 | (b[i+2]-'0')<<3 | (b[i+3] - '0'))
			i += 3
			continue
		}
		sb.WriteByte(b[i])
	}
	return sb.String()
}

func isOctal(b []byte) bool {
	if len(b) != 3 || b[0] > '3' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}
