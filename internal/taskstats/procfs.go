package taskstats

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// procReader lists processes and reads their start time under a proc root.
type procReader struct {
	root string
	buf  []byte
}

// TGIDs lists the numeric entries of the proc root: one per thread group.
func (p *procReader) TGIDs() ([]uint32, error) {
	pids, err := procfs.Pids(p.root, nil)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", p.root, err)
	}
	return pids, nil
}

// Start reads the state and start time (clock ticks since boot) from <root>/<pid>/stat.
func (p *procReader) Start(pid uint32) (uint64, bool, error) {
	if p.buf == nil {
		p.buf = make([]byte, 0, 1024)
	}
	b, err := procfs.ReadFile(procfs.PidPath(p.root, pid, "stat"), &p.buf)
	if err != nil {
		return 0, false, err
	}
	return parseStat(b)
}

var errBadStat = errors.New("malformed /proc/<pid>/stat")

// parseStat extracts the state (field 3) and starttime (field 22) of a /proc/<pid>/stat line.
// The command name (field 2) may contain spaces and parentheses, so fields are counted from
// its last closing parenthesis.
func parseStat(b []byte) (start uint64, zombie bool, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false, errBadStat
	}
	rest := b[i+2:]
	field := 3
	for len(rest) > 0 {
		j := bytes.IndexByte(rest, ' ')
		tok := rest
		if j >= 0 {
			tok = rest[:j]
		}
		switch field {
		case 3:
			if len(tok) != 1 {
				return 0, false, errBadStat
			}
			zombie = tok[0] == 'Z' || tok[0] == 'X'
		case 22:
			v, err := strconv.ParseUint(string(bytes.TrimSpace(tok)), 10, 64)
			if err != nil {
				return 0, false, errBadStat
			}
			return v, zombie, nil
		}
		if j < 0 {
			break
		}
		rest = rest[j+1:]
		field++
	}
	return 0, false, errBadStat
}
