package tracer

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
)

// ProxyDockerd is the proxy label of a listen address a container is reached at through
// docker-proxy, dockerd's userland proxy of a published port: the value coroot-node-agent
// gives it (its name for the port bindings dockerd reports).
const ProxyDockerd = "dockerd"

// dockerProxy is what a docker-proxy process's command line says: the container address it
// forwards TCP to, and the host port it listens on (0 when not given).
type dockerProxy struct {
	to       netip.AddrPort
	hostPort uint16
}

// parseDockerProxy reads the command line of a process (/proc/<pid>/cmdline: arguments
// separated by NUL bytes) and tells whether it is docker-proxy forwarding TCP, and where to
// (-container-ip, -container-port; -host-port). Flags are accepted in every form Go's flag
// package accepts: -name value, --name value, -name=value, --name=value.
func parseDockerProxy(cmdline []byte) (dockerProxy, bool) {
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) < 2 {
		return dockerProxy{}, false
	}
	exe := args[0]
	if i := bytes.LastIndexByte(exe, '/'); i >= 0 {
		exe = exe[i+1:]
	}
	if string(exe) != "docker-proxy" {
		return dockerProxy{}, false
	}
	var ip, port, hostPort, proto string
	proto = "tcp" // docker-proxy's default
	for i := 1; i < len(args); i++ {
		arg := string(args[i])
		if len(arg) < 2 || arg[0] != '-' {
			continue
		}
		name := arg[1:]
		if name[0] == '-' {
			name = name[1:]
		}
		value, inline := "", false
		if eq := strings.IndexByte(name, '='); eq >= 0 {
			name, value, inline = name[:eq], name[eq+1:], true
		}
		switch name {
		case "container-ip", "container-port", "host-port", "proto":
		default:
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				return dockerProxy{}, false
			}
			i++
			value = string(args[i])
		}
		switch name {
		case "container-ip":
			ip = value
		case "container-port":
			port = value
		case "host-port":
			hostPort = value
		case "proto":
			proto = value
		}
	}
	if proto != "tcp" {
		return dockerProxy{}, false
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Zone() != "" {
		return dockerProxy{}, false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return dockerProxy{}, false
	}
	hp, _ := strconv.ParseUint(hostPort, 10, 16) // 0 when absent or invalid: the socket's port is used
	return dockerProxy{to: netip.AddrPortFrom(addr.Unmap(), uint16(p)), hostPort: uint16(hp)}, true
}
