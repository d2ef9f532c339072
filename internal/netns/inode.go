package netns

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/codexray/codexray-node-agent/internal/procfs"
)

// ParseLink returns the inode number in a namespace link target, "net:[4026531840]": the number
// the kernel side reads from a socket's network namespace.
func ParseLink(target []byte) (uint32, error) {
	inner, ok := bytes.CutPrefix(target, []byte("net:["))
	if !ok || len(inner) < 2 || inner[len(inner)-1] != ']' {
		return 0, fmt.Errorf("unexpected network namespace link %q", target)
	}
	ino, err := strconv.ParseUint(string(inner[:len(inner)-1]), 10, 32)
	if err != nil || ino == 0 {
		return 0, fmt.Errorf("unexpected network namespace link %q", target)
	}
	return uint32(ino), nil
}

// Of returns the inode of pid's network namespace, read below procRoot. buf is reused (nil is
// fine). The error is procfs's: procfs.Gone when the process exited.
func Of(procRoot string, pid uint32, buf *[]byte) (uint32, error) {
	target, err := procfs.ReadLink(procfs.PidPath(procRoot, pid, "ns/net"), buf)
	if err != nil {
		return 0, err
	}
	return ParseLink(target)
}

// Own returns the inode of the agent's own network namespace.
func Own() (uint32, error) {
	var buf []byte
	target, err := procfs.ReadLink("/proc/self/ns/net", &buf)
	if err != nil {
		return 0, err
	}
	return ParseLink(target)
}

// Host returns the inode of the host's network namespace: pid 1's below procRoot (the host's
// procfs for an agent in a pod with hostPID). Where pid 1's namespace link cannot be read (some
// sandboxes deny it even to root) it falls back to the agent's own namespace, which is the
// host's for an agent with host networking, and says so with the error that caused it.
func Host(procRoot string) (inode uint32, fallback error, err error) {
	var buf []byte
	inode, fallback = Of(procRoot, 1, &buf)
	if fallback == nil {
		return inode, nil, nil
	}
	inode, err = Own()
	return inode, fallback, err
}
