package tracer

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ Min, Max uint16 }

func (r PortRange) contains(p uint16) bool { return r.Min != 0 && p >= r.Min && p <= r.Max }

// defaultEphemeralPorts is Linux's default net.ipv4.ip_local_port_range.
var defaultEphemeralPorts = PortRange{Min: 32768, Max: 60999}

// ReadEphemeralPorts reads net.ipv4.ip_local_port_range from procfs.
func ReadEphemeralPorts(path string) (PortRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PortRange{}, err
	}
	return parsePortRange(string(b))
}

func parsePortRange(s string) (PortRange, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return PortRange{}, fmt.Errorf("port range %q: want two numbers", s)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo == 0 || lo > hi {
		return PortRange{}, fmt.Errorf("port range %q: invalid", s)
	}
	return PortRange{Min: uint16(lo), Max: uint16(hi)}, nil
}
