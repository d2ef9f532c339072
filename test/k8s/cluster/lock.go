package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// LockFile is the lock a run of the node holds from Start to Stop. One for the machine, not
// per root: the socket, pod log directory, bridge, cgroup root and Cleanup are machine-wide.
const LockFile = "/run/cxk8s.lock"

// lockMachine takes the exclusive lock at path, waiting while another run holds it. The kernel
// releases it when the holder exits, so a run that died never blocks the next one.
func lockMachine(ctx context.Context, path string, logf func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node lock: %w", err)
	}
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("node lock %s: %w", path, err)
		}
		if !waiting {
			logf("another run of the node holds %s: waiting", path)
			waiting = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("node lock %s: %w", path, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// unlock releases the lock Start took; closing the file releases the flock.
func (c *Cluster) unlock() {
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
}
