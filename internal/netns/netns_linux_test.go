package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/procfs"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// inNamespace starts a process that sleeps in ns until the test ends.
func inNamespace(t testing.TB, ns *testutil.NetNS) uint32 {
	t.Helper()
	cmd := ns.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := uint32(cmd.Process.Pid)
	// `ip netns exec` enters the namespace before it execs sleep: wait until it has.
	var buf []byte
	for i := 0; i < 500; i++ {
		if ino, err := Of("/proc", pid, &buf); err == nil && ino == ns.Inode {
			return pid
		}
		if i == 499 {
			t.Fatalf("process %d never entered namespace %s", pid, ns.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pid
}

func openReader(t *testing.T) *Reader {
	t.Helper()
	r, err := Open("")
	testutil.SkipUnlessPrivileged(t, err == nil, "opening rtnetlink: %v", err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// TestAddressesOfAnotherNamespace reads a namespace the test wired itself, over time: the
// addresses of links that are up, loopback included, link-local and down links left out; an
// address added or removed later shows at the next reading.
func TestAddressesOfAnotherNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t, "addrs")
	ns.IP(t, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ns.IP(t, "addr", "add", "10.200.1.2/24", "dev", "v0")
	ns.IP(t, "addr", "add", "fd20::2/64", "dev", "v0", "nodad")
	ns.IP(t, "link", "set", "v0", "up")
	ns.IP(t, "link", "set", "v1", "up")
	// a link that stays down: its address is not reachable
	ns.IP(t, "link", "add", "w0", "type", "veth", "peer", "name", "w1")
	ns.IP(t, "addr", "add", "10.200.2.2/24", "dev", "w0")
	pid := inNamespace(t, ns)
	r := openReader(t)

	got, err := r.Addresses(pid, ns.Inode)
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs("10.200.1.2", "127.0.0.1", "::1", "fd20::2"); !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}

	// Later: an address added, one removed, the down link brought up.
	ns.IP(t, "addr", "add", "10.200.1.3/24", "dev", "v0")
	ns.IP(t, "addr", "del", "fd20::2/64", "dev", "v0")
	ns.IP(t, "link", "set", "w0", "up")
	got, err = r.Addresses(pid, ns.Inode)
	if err != nil {
		t.Fatal(err)
	}
	// w0's peer is down: w0 is up but its lower layer is not, which does not hide it.
	if want := addrs("10.200.1.2", "10.200.1.3", "10.200.2.2", "127.0.0.1", "::1"); !slices.Equal(got, want) {
		t.Errorf("addresses after the change %v, want %v", got, want)
	}

	// The process is in that namespace, not in another one.
	other := testutil.NewNetNS(t, "other")
	if _, err := r.Addresses(pid, other.Inode); !errors.Is(err, ErrMoved) {
		t.Errorf("addresses of another namespace through pid %d: %v, want ErrMoved", pid, err)
	}
}

// TestAddressesOfOwnNamespace reads the agent's own namespace without a netns id.
func TestAddressesOfOwnNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	r := openReader(t)
	own, err := Own()
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Addresses(uint32(os.Getpid()), own)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("own addresses %v lack 127.0.0.1", got)
	}
	for _, a := range got {
		if !Usable(a) {
			t.Errorf("unusable address %s returned", a)
		}
	}
}

func TestAddressesOfExitedProcess(t *testing.T) {
	testutil.RequireRoot(t)
	ns := testutil.NewNetNS(t, "gone")
	cmd := ns.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	r := openReader(t)
	_, err := r.Addresses(uint32(cmd.Process.Pid), ns.Inode)
	if err == nil || !procfs.Gone(err) {
		t.Errorf("addresses through an exited process: %v, want a Gone error", err)
	}
}

// TestHost: pid 1's namespace, or the agent's own where pid 1's link is denied (as in this
// project's VMs), with the reason.
func TestHost(t *testing.T) {
	testutil.RequireRoot(t)
	own, err := Own()
	if err != nil {
		t.Fatal(err)
	}
	host, fallback, err := Host("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	pid1, pid1Err := Of("/proc", 1, &buf)
	switch {
	case pid1Err != nil && (fallback == nil || host != own):
		t.Errorf("pid 1 unreadable (%v): host %d, fallback %v; want own namespace %d with the reason", pid1Err, host, fallback, own)
	case pid1Err == nil && (fallback != nil || host != pid1):
		t.Errorf("host %d, fallback %v; want pid 1's namespace %d", host, fallback, pid1)
	}
}

const capsHelperEnv = "CODEXRAY_NETNS_CAPS_HELPER"

// TestCapsHelper is the child of TestCapabilities: it reads the namespace named in its
// environment ("pid inode") and prints the addresses, or the error.
func TestCapsHelper(t *testing.T) {
	arg := os.Getenv(capsHelperEnv)
	if arg == "" {
		return // only as a child
	}
	var pid, ino uint32
	if _, err := fmt.Sscanf(arg, "%d %d", &pid, &ino); err != nil {
		t.Fatal(err)
	}
	r, err := Open("")
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	defer r.Close()
	got, err := r.Addresses(pid, ino)
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	fmt.Println("ADDRESSES", got)
}

// TestCapabilities: the deployment grants CAP_NET_ADMIN and not CAP_SYS_ADMIN; reading another
// namespace's addresses works with exactly that, as a user other than root, and fails with a
// permission error without it.
func TestCapabilities(t *testing.T) {
	testutil.RequireRoot(t)
	_, lookErr := exec.LookPath("setpriv")
	testutil.SkipUnlessPrivileged(t, lookErr == nil, "setpriv (util-linux) not found: %v", lookErr)
	ns := testutil.NewNetNS(t, "caps")
	ns.IP(t, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ns.IP(t, "addr", "add", "10.200.3.2/24", "dev", "v0")
	ns.IP(t, "link", "set", "v0", "up")
	ns.IP(t, "link", "set", "v1", "up")
	pid := inNamespace(t, ns)
	run := func(caps string) string {
		t.Helper()
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=-all"+caps, "--ambient-caps=-all"+caps, "--bounding-set=-all"+caps,
			os.Args[0], "-test.run=^TestCapsHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), capsHelperEnv+"="+strconv.Itoa(int(pid))+" "+strconv.Itoa(int(ns.Inode)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper with caps %q: %v: %s", caps, err, out)
		}
		return string(out)
	}
	if out := run(",+net_admin"); !strings.Contains(out, "ADDRESSES [10.200.3.2 127.0.0.1 ::1]") {
		t.Errorf("with CAP_NET_ADMIN only: %s", out)
	}
	if out := run(""); !strings.Contains(out, "ERROR") ||
		!strings.Contains(out, "permission denied") && !strings.Contains(out, "not permitted") {
		t.Errorf("without capabilities: %s", out)
	}
}

// BenchmarkAddresses: one reading of another namespace's addresses (2 links, 5 addresses).
func BenchmarkAddresses(b *testing.B) {
	testutil.RequireRoot(b)
	ns := testutil.NewNetNS(b, "bench")
	ns.IP(b, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ns.IP(b, "addr", "add", "10.200.4.2/24", "dev", "v0")
	ns.IP(b, "link", "set", "v0", "up")
	ns.IP(b, "link", "set", "v1", "up")
	pid := inNamespace(b, ns)
	r, err := Open("")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Addresses(pid, ns.Inode); err != nil {
			b.Fatal(err)
		}
	}
}
