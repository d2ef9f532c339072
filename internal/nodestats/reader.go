package nodestats

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// Snapshot is one collection of the node's resources. A part that could not be read is
// absent (Has* false, or a nil slice) and its error is in the error Collect returns.
type Snapshot struct {
	HasCPU       bool
	CPU          CPUTimes
	LogicalCores int

	HasMemory bool
	Memory    Memory

	Disks      []Disk      // whole disks only (WholeDisk)
	Interfaces []Interface // physical-like interfaces only (PhysicalInterface)

	HasUptime     bool
	UptimeSeconds float64
}

// Reader reads Snapshots. It keeps only reusable buffers between collections; one Reader is
// not safe for concurrent use.
type Reader struct {
	procRoot, sysRoot string
	addresses         AddressLister
	buf               []byte
}

// New returns a Reader of the node cfg describes. addresses lists interface addresses; nil
// means the agent's own network namespace (see ownAddresses).
func New(cfg Config, addresses AddressLister) *Reader {
	if addresses == nil {
		addresses = ownAddresses
	}
	return &Reader{procRoot: cfg.procRoot(), sysRoot: cfg.sysRoot(), addresses: addresses, buf: make([]byte, 0, 16<<10)}
}

// Collect reads every part. The error joins what failed, each naming its file; the rest of the
// snapshot is still valid.
func (r *Reader) Collect() (Snapshot, error) {
	var s Snapshot
	var errs []error
	if b, err := r.read("stat"); err != nil {
		errs = append(errs, err)
	} else if s.CPU, s.LogicalCores, err = parseStat(b); err != nil {
		errs = append(errs, err)
	} else {
		s.HasCPU = true
	}
	if b, err := r.read("meminfo"); err != nil {
		errs = append(errs, err)
	} else if s.Memory, err = parseMeminfo(b); err != nil {
		errs = append(errs, err)
	} else {
		s.HasMemory = true
	}
	if b, err := r.read("uptime"); err != nil {
		errs = append(errs, err)
	} else if s.UptimeSeconds, err = parseUptime(b); err != nil {
		errs = append(errs, err)
	} else {
		s.HasUptime = true
	}
	if err := r.disks(&s); err != nil {
		errs = append(errs, err)
	}
	if err := r.interfaces(&s); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

func (r *Reader) read(name string) ([]byte, error) {
	b, err := procfs.ReadFile(r.procRoot+"/"+name, &r.buf)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (r *Reader) disks(s *Snapshot) error {
	b, err := r.read("diskstats")
	if err != nil {
		return err
	}
	all, err := parseDiskstats(b, nil)
	for _, d := range all {
		if WholeDisk(d.Name) {
			s.Disks = append(s.Disks, d)
		}
	}
	return err
}

// interfaces reads pid 1's net/dev (the node's network namespace from a hostPID pod or the
// host), falling back to the agent's own, keeps the physical-like interfaces, and adds their
// operstate from sysfs and their addresses.
func (r *Reader) interfaces(s *Snapshot) error {
	netPID := "1"
	b, err := r.read("1/net/dev")
	if err != nil {
		netPID = "self"
		if b, err = r.read("self/net/dev"); err != nil {
			return err
		}
	}
	all, err := parseNetDev(b, nil)
	if err != nil {
		return err
	}
	var names []string
	for _, ifc := range all {
		if !PhysicalInterface(ifc.Name) {
			continue
		}
		ifc.Up = r.operUp(ifc.Name)
		s.Interfaces = append(s.Interfaces, ifc)
		names = append(names, ifc.Name)
	}
	if len(names) == 0 {
		return nil
	}
	if netPID == "1" && !sameNetNS(filepath.Join(r.procRoot, "1/ns/net")) {
		for i := range s.Interfaces {
			s.Interfaces[i].AddressesUnavailable = true
		}
		return fmt.Errorf("interface addresses: %w", errOtherNamespace)
	}
	addrs, err := r.addresses(names)
	for i := range s.Interfaces {
		s.Interfaces[i].Addresses = addrs[s.Interfaces[i].Name]
	}
	if err != nil {
		return fmt.Errorf("interface addresses: %w", err)
	}
	return nil
}

// operUp reads sysfs operstate: "up" is up; "down", "dormant", "lowerlayerdown" and "unknown"
// (e.g. interfaces without carrier reporting) are not, as in coroot-node-agent.
func (r *Reader) operUp(name string) bool {
	b, err := procfs.ReadFile(r.sysRoot+"/class/net/"+name+"/operstate", &r.buf)
	return err == nil && string(bytes.TrimSpace(b)) == "up"
}

// parseUptime parses /proc/uptime: "<seconds since boot> <idle seconds>".
func parseUptime(b []byte) (float64, error) {
	fs := fields(b, nil)
	if len(fs) == 0 {
		return 0, fmt.Errorf("parsing /proc/uptime: empty")
	}
	v, err := strconv.ParseFloat(string(fs[0]), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("parsing /proc/uptime: %q is not a non-negative number", fs[0])
	}
	return v, nil
}
