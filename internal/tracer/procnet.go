package tracer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// TCP states as /proc/net/tcp prints them in its st column (include/net/tcp_states.h).
const (
	tcpEstablished = 0x01
	tcpSynSent     = 0x02
	tcpSynRecv     = 0x03
	tcpFinWait1    = 0x04
	tcpFinWait2    = 0x05
	tcpTimeWait    = 0x06
	tcpClose       = 0x07
	tcpCloseWait   = 0x08
	tcpLastAck     = 0x09
	tcpListen      = 0x0A
	tcpClosing     = 0x0B
)

// openConnectionState reports whether a socket in state st is a connection the kernel side
// would still count as open: from ESTABLISHED until it reaches CLOSE (TIME_WAIT is a separate
// socket; the original has closed by then).
func openConnectionState(st uint8) bool {
	switch st {
	case tcpEstablished, tcpFinWait1, tcpFinWait2, tcpCloseWait, tcpLastAck, tcpClosing:
		return true
	}
	return false
}

// procSocket is one line of /proc/<pid>/net/tcp or tcp6. Addresses are as the socket holds
// them: an IPv6 socket connected to an IPv4 peer keeps its v4-mapped addresses.
type procSocket struct {
	local, remote netip.AddrPort
	state         uint8
	inode         uint64
}

var errProcNetLine = errors.New("malformed /proc/net/tcp line")

// parseProcNetLine parses one socket line of /proc/net/tcp (v6 false) or /proc/net/tcp6
// (v6 true), e.g.
//
//	0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0  0 14126 1 ...
//
// Addresses are the kernel's 32-bit words printed in host byte order, ports in host order.
// It does not allocate.
func parseProcNetLine(line []byte, v6 bool) (procSocket, error) {
	var s procSocket
	var field [10][]byte
	n := 0
	for i := 0; i < len(line) && n < len(field); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		start := i
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		if i > start {
			field[n] = line[start:i]
			n++
		}
	}
	// sl local remote st tx:rx tr:when retrnsmt uid timeout inode
	if n < len(field) || len(field[0]) < 2 || field[0][len(field[0])-1] != ':' {
		return s, errProcNetLine
	}
	var ok bool
	if s.local, ok = parseProcNetAddr(field[1], v6); !ok {
		return s, fmt.Errorf("%w: local address %q", errProcNetLine, field[1])
	}
	if s.remote, ok = parseProcNetAddr(field[2], v6); !ok {
		return s, fmt.Errorf("%w: remote address %q", errProcNetLine, field[2])
	}
	st, ok := parseHex(field[3], 2)
	if !ok || st == 0 || st > tcpClosing {
		return s, fmt.Errorf("%w: state %q", errProcNetLine, field[3])
	}
	s.state = uint8(st)
	if s.inode, ok = parseDecimal(field[9]); !ok {
		return s, fmt.Errorf("%w: inode %q", errProcNetLine, field[9])
	}
	return s, nil
}

// parseProcNetAddr parses "0100007F:1F90" (IPv4) or 32 hex digits and a port (IPv6).
func parseProcNetAddr(b []byte, v6 bool) (netip.AddrPort, bool) {
	words := 1
	if v6 {
		words = 4
	}
	if len(b) != words*8+5 || b[words*8] != ':' {
		return netip.AddrPort{}, false
	}
	var raw [16]byte
	for i := 0; i < words; i++ {
		w, ok := parseHex(b[i*8:i*8+8], 8)
		if !ok {
			return netip.AddrPort{}, false
		}
		binary.NativeEndian.PutUint32(raw[i*4:], uint32(w))
	}
	port, ok := parseHex(b[words*8+1:], 4)
	if !ok {
		return netip.AddrPort{}, false
	}
	var addr netip.Addr
	if v6 {
		addr = netip.AddrFrom16(raw)
	} else {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}

// parseHex parses exactly digits hex digits.
func parseHex(b []byte, digits int) (uint64, bool) {
	if len(b) != digits {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// readProcNet reads a whole /proc/<pid>/net/tcp{,6} file into *buf (reused between calls) and
// calls fn for each socket line. Lines that do not parse are counted and skipped.
func readProcNet(path string, v6 bool, buf *[]byte, fn func(*procSocket)) (malformed int, err error) {
	b, err := procfs.ReadFile(path, buf)
	if err != nil {
		return 0, err
	}
	first := true
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if first && bytes.Contains(line, []byte("local_address")) { // the column header
			first = false
			continue
		}
		first = false
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s, err := parseProcNetLine(line, v6)
		if err != nil {
			malformed++
			continue
		}
		fn(&s)
	}
	return malformed, nil
}
