package cluster

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// The DaemonSet mounts the host's / and /run with mountPropagation: HostToContainer, which
// the runtime accepts only when the host mount is shared (or a slave). systemd makes / shared
// at boot, so it is on real nodes; these machines boot without systemd and / is private. The
// node makes / (that mount alone, not the mounts below it) shared while it runs, and private
// again when it stops.

// rootShared reports whether the mount at / of this mount namespace is shared.
func rootShared() (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[4] != "/" {
			continue
		}
		shared := false
		for _, opt := range f[6:] {
			if opt == "-" {
				break
			}
			shared = shared || strings.HasPrefix(opt, "shared:")
		}
		return shared, nil // the first mount at / is the root of this namespace
	}
	return false, fmt.Errorf("no mount at / in /proc/self/mountinfo")
}

// shareRoot makes / shared, recording in file that it was private.
func shareRoot(file string) error {
	shared, err := rootShared()
	if err != nil || shared {
		return err
	}
	if err := os.WriteFile(file, []byte("private\n"), 0o644); err != nil {
		return err
	}
	if err := syscall.Mount("", "/", "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("making / a shared mount: %w", err)
	}
	return nil
}

// unshareRoot makes / private again if shareRoot changed it.
func unshareRoot(file string) error {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := syscall.Mount("", "/", "", syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private again: %w", err)
	}
	return os.Remove(file)
}
