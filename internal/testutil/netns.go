package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// NetNS is a network namespace created by a test (`ip netns add`): the only place besides
// loopback where tests may send traffic. It is deleted when the test ends, with every link
// and process-less route in it.
type NetNS struct {
	Name  string
	Inode uint32 // what the kernel side and /proc/<pid>/ns/net call it
}

// NewNetNS creates a network namespace whose name is unique to this test process, with its
// loopback up. It skips (or fails in CI) when namespaces cannot be created.
func NewNetNS(t testing.TB, name string) *NetNS {
	t.Helper()
	RequireRoot(t)
	full := fmt.Sprintf("cx%d-%s", os.Getpid(), name)
	out, err := exec.Command("ip", "netns", "add", full).CombinedOutput()
	SkipUnlessPrivileged(t, err == nil, "ip netns add: %v: %s", err, out)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", full).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", full, err, out)
		}
	})
	var st syscall.Stat_t
	if err := syscall.Stat("/var/run/netns/"+full, &st); err != nil {
		t.Fatalf("stat of namespace %s: %v", full, err)
	}
	ns := &NetNS{Name: full, Inode: uint32(st.Ino)}
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// Path is the namespace's bind mount, for setns(2) or nsenter.
func (n *NetNS) Path() string { return "/var/run/netns/" + n.Name }

// IP runs `ip -n <namespace> args...` and fails the test on error.
func (n *NetNS) IP(t testing.TB, args ...string) {
	t.Helper()
	n.Run(t, append([]string{"ip"}, args...)...)
}

// Run runs a command inside the namespace and fails the test on error.
func (n *NetNS) Run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
}

// Command returns a command that runs inside the namespace: `ip netns exec` execs it, so the
// process's pid is the command's.
func (n *NetNS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Veth connects two namespaces with a veth pair: nameA in a, nameB in b, both up.
func Veth(t testing.TB, a *NetNS, nameA string, b *NetNS, nameB string) {
	t.Helper()
	a.IP(t, "link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", b.Name)
	a.IP(t, "link", "set", nameA, "up")
	b.IP(t, "link", "set", nameB, "up")
}
