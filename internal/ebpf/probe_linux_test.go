package ebpf

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

func loadProbe(t *testing.T, size int) *Probe {
	t.Helper()
	testutil.RequireRoot(t)
	p, err := Load(LoadOptions{RingBufferSize: size})
	testutil.SkipUnlessPrivileged(t, err == nil, "loading BPF probe: %v", err)
	t.Cleanup(func() { p.Close() })
	return p
}

// readUntil reads events until match returns true or the deadline passes.
func readUntil(t *testing.T, p *Probe, timeout time.Duration, match func(*Event) bool) {
	t.Helper()
	until := time.Now().Add(timeout)
	var ev Event
	for {
		err := p.readEvent(&ev, until)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no matching event within %s", timeout)
		}
		if err != nil {
			t.Fatalf("ReadEvent: %v", err)
		}
		if match(&ev) {
			return
		}
	}
}

func TestProbeConnectLifecycle(t *testing.T) {
	p := loadProbe(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lport := uint16(ln.Addr().(*net.TCPAddr).Port)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if _, err := conn.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	if _, err := srv.Read(buf); err != nil {
		t.Fatal(err)
	}
	clientPort := uint16(conn.LocalAddr().(*net.TCPAddr).Port)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), lport)
	netns := ownNetNS(t)

	seen := map[EventType]bool{}
	readUntil(t, p, 5*time.Second, func(ev *Event) bool {
		if (ev.Source == dst || ev.Destination == dst) && ev.NetNS != netns {
			t.Errorf("%s event in network namespace %d, want %d", ev.Type, ev.NetNS, netns)
		}
		switch {
		case ev.Type == EventListenOpen && ev.Source == dst:
			if ev.PID != uint32(os.Getpid()) {
				t.Errorf("listen pid = %d, want %d", ev.PID, os.Getpid())
			}
			seen[ev.Type] = true
		case ev.Type == EventConnect && ev.Destination == dst && ev.Source.Port() == clientPort:
			if ev.PID != uint32(os.Getpid()) || ev.CgroupID == 0 || ev.Duration <= 0 || ev.Duration > time.Second {
				t.Errorf("connect event %+v", *ev)
			}
			seen[ev.Type] = true
		case ev.Type == EventAccept && ev.Source == dst && ev.Destination.Port() == clientPort:
			if !ev.Inbound() || ev.CgroupID == 0 {
				t.Errorf("accept event %+v", *ev)
			}
			seen[ev.Type] = true
		}
		return seen[EventListenOpen] && seen[EventConnect] && seen[EventAccept]
	})

	// The kernel side counts bytes while the connection is open.
	var sent uint64
	if err := p.Connections(func(sock uint64, c *ConnectionCounters) {
		if c.PID == uint32(os.Getpid()) && c.Flags == 0 && c.BytesSent == 1000 {
			sent = c.BytesSent
		}
	}); err != nil {
		t.Fatal(err)
	}
	if sent != 1000 {
		t.Errorf("no open connection with 1000 bytes sent")
	}

	conn.Close()
	srv.Close()
	readUntil(t, p, 5*time.Second, func(ev *Event) bool {
		return ev.Type == EventClose && ev.Destination == dst && ev.Source.Port() == clientPort && ev.BytesSent == 1000
	})
}

func TestProbeFailedConnect(t *testing.T) {
	p := loadProbe(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more: connect gets RST
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("dial to closed port succeeded")
	}
	want := netip.MustParseAddrPort(addr)
	readUntil(t, p, 5*time.Second, func(ev *Event) bool {
		return ev.Type == EventConnectFailed && ev.Destination == want && ev.PID == uint32(os.Getpid())
	})
}

// TestProbeProgramsFire is the cheap "attached and firing" check: with BPF statistics on, every
// program has a run count after a little activity.
func TestProbeProgramsFire(t *testing.T) {
	testutil.RequireRoot(t)
	stats, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	testutil.SkipUnlessPrivileged(t, err == nil, "enabling BPF stats: %v", err)
	defer stats.Close()
	p := loadProbe(t, 0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Read(make([]byte, 10))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("ping"))
	c.Close()
	if err := runTrue(); err != nil { // fork + exec + exit
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	counts, err := p.RunCounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"inet_sock_set_state", "sock_send_length", "sock_recv_length", "sched_process_fork", "sched_process_exec", "sched_process_exit"} {
		if counts[name] == 0 {
			t.Errorf("program on %s never ran (counts %v)", name, counts)
		}
	}
}
