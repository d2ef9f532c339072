package cgroups

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// deviceNames maps block device numbers to names using /proc/partitions, reloading it (at most
// every reloadEvery) when a device it does not know appears, e.g. a volume attached later.
type deviceNames struct {
	partitions string

	mu       sync.Mutex
	names    map[uint64]string
	loadedAt time.Time
}

const deviceReloadEvery = 10 * time.Second

func (d *deviceNames) name(maj, minor uint32) string {
	key := uint64(maj)<<32 | uint64(minor)
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.names[key]; ok {
		return n
	}
	if d.names == nil || time.Since(d.loadedAt) > deviceReloadEvery {
		d.load()
		if n, ok := d.names[key]; ok {
			return n
		}
	}
	// Unknown to /proc/partitions (e.g. device-mapper on some kernels): keep the number so
	// the series stays distinct.
	n := strconv.FormatUint(uint64(maj), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
	d.names[key] = n
	return n
}

func (d *deviceNames) load() {
	d.loadedAt = time.Now()
	names := make(map[uint64]string, len(d.names))
	data, err := os.ReadFile(d.partitions)
	if err == nil {
		names = parsePartitions(data, names)
	}
	d.names = names
}

// parsePartitions parses /proc/partitions: a header, then "major minor #blocks name" rows.
// Malformed rows are skipped: the file is only a naming aid.
func parsePartitions(data []byte, dst map[uint64]string) map[uint64]string {
	_ = forEachLine(data, func(_ int, line []byte) error {
		f := bytes.Fields(line)
		if len(f) != 4 {
			return nil
		}
		maj, err1 := strconv.ParseUint(string(f[0]), 10, 32)
		minor, err2 := strconv.ParseUint(string(f[1]), 10, 32)
		if err1 == nil && err2 == nil { // else the header or a malformed line
			dst[maj<<32|minor] = string(f[3])
		}
		return nil
	})
	return dst
}
