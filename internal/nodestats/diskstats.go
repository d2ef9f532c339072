package nodestats

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// Disk is one block device's line of /proc/diskstats, in coroot-node-agent's units: counts,
// bytes (sectors of 512 bytes, whatever the device's sector size: the kernel counts in 512-byte
// units) and seconds (the kernel's milliseconds / 1000).
type Disk struct {
	Name         string
	Major, Minor uint32

	Reads, Writes           uint64 // completed requests
	ReadBytes, WrittenBytes uint64
	ReadTimeSeconds         float64 // time spent by reads
	WriteTimeSeconds        float64 // time spent by writes
	IOTimeSeconds           float64 // time the device had requests in flight (utilisation)
}

// diskName returns the whole-disk name a block device name starts with, and whether name is
// that whole disk. The names are coroot-node-agent's: device-mapper (dm-N), SCSI/SATA, IDE,
// virtio and Xen disks (sdX, hdX, vdX, xvdX), MD RAID (mdN), MMC (mmcblkN), NVMe namespaces
// (nvmeNnM) and Ceph RBD (rbdN). Partitions (sda1, nvme0n1p2, mmcblk0p1) are not whole disks
// and name their disk as the prefix; loop, ram, zram, nbd, sr and every other device are
// neither.
//
// Difference: coroot-node-agent matches one letter after sd/hd/vd/xvd, so on a host with more
// than 26 SCSI disks it drops sdaa… and names sdaa1's disk "sda". Here any run of letters
// counts: sdaa is a whole disk and the disk of sdaa1.
func diskName(name string) (disk string, whole bool) {
	n := wholeDiskPrefix(name)
	if n == 0 {
		return "", false
	}
	return name[:n], n == len(name)
}

func wholeDiskPrefix(s string) int {
	digits := func(from int) int { // end of the run of digits at from (from when none)
		i := from
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i
	}
	letters := func(from int) int {
		i := from
		for i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
			i++
		}
		return i
	}
	prefixed := func(p string) bool { return len(s) > len(p) && s[:len(p)] == p }
	switch {
	case prefixed("dm-"):
		if e := digits(3); e > 3 {
			return e
		}
	case prefixed("mmcblk"):
		if e := digits(6); e > 6 {
			return e
		}
	case prefixed("nvme"):
		if e := digits(4); e > 4 && e < len(s) && s[e] == 'n' {
			if e2 := digits(e + 1); e2 > e+1 {
				return e2
			}
		}
	case prefixed("rbd"):
		if e := digits(3); e > 3 {
			return e
		}
	case prefixed("md"):
		if e := digits(2); e > 2 {
			return e
		}
	case prefixed("xvd"):
		if e := letters(3); e > 3 {
			return e
		}
	case prefixed("sd"), prefixed("hd"), prefixed("vd"):
		if e := letters(2); e > 2 {
			return e
		}
	}
	return 0
}

// WholeDisk reports whether a block device name is a whole disk in the sense of diskName.
func WholeDisk(name string) bool {
	_, whole := diskName(name)
	return whole
}

// parseDiskstats appends every device of /proc/diskstats to dst. Lines with fewer than 14
// fields (kernels before 2.6.25 printed partitions with 7) are skipped, as coroot-node-agent
// does; a malformed number is an error naming the line.
func parseDiskstats(b []byte, dst []Disk) ([]Disk, error) {
	var fs [][]byte
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		fs = fields(line, fs)
		if len(fs) < 14 {
			continue
		}
		var v [10]uint64
		for i := range v {
			x, err := parseUint(fs[3+i])
			if err != nil {
				return dst, fmt.Errorf("parsing /proc/diskstats: %q: %w", line, err)
			}
			v[i] = x
		}
		major, err1 := parseUint(fs[0])
		minor, err2 := parseUint(fs[1])
		if err1 != nil || err2 != nil || major > 1<<32-1 || minor > 1<<32-1 {
			return dst, fmt.Errorf("parsing /proc/diskstats: device number in %q", line)
		}
		dst = append(dst, Disk{
			Name:             string(fs[2]),
			Major:            uint32(major),
			Minor:            uint32(minor),
			Reads:            v[0],
			ReadBytes:        v[2] * 512,
			ReadTimeSeconds:  float64(v[3]) / 1000,
			Writes:           v[4],
			WrittenBytes:     v[6] * 512,
			WriteTimeSeconds: float64(v[7]) / 1000,
			IOTimeSeconds:    float64(v[9]) / 1000,
		})
	}
	return dst, nil
}

// BlockDevices names block devices by number, as /proc/diskstats lists them: what a mount's
// major:minor is, and which whole disk it lives on.
type BlockDevices struct {
	byNumber map[[2]uint32]string
}

// ReadBlockDevices reads procRoot/diskstats.
func ReadBlockDevices(procRoot string) (BlockDevices, error) {
	b, err := os.ReadFile(filepath.Join(procfs.Root(procRoot), "diskstats"))
	if err != nil {
		return BlockDevices{}, err
	}
	disks, err := parseDiskstats(b, nil)
	bd := BlockDevices{byNumber: make(map[[2]uint32]string, len(disks))}
	for _, d := range disks {
		bd.byNumber[[2]uint32{d.Major, d.Minor}] = d.Name
	}
	return bd, err
}

// Disk returns the whole disk that device major:minor is or lives on (sda for sda1, dm-0 for
// dm-0), "" when the number is unknown or names no disk in the sense of diskName (a loop
// device, a network file system). coroot-node-agent labels container volumes with it.
func (bd BlockDevices) Disk(major, minor uint32) string {
	name, ok := bd.byNumber[[2]uint32{major, minor}]
	if !ok {
		return ""
	}
	disk, _ := diskName(name)
	return disk
}
