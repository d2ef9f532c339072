package nodestats

import (
	"net"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
)

// TestCollectThisHost reads this machine's /proc and /sys and checks the values against what
// the kernel reports through other interfaces (sysinfo, the net package, the scheduler).
func TestCollectThisHost(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no procfs:", err)
	}
	s, err := New(Config{}, nil).Collect()
	if err != nil {
		// Addresses of pid 1's namespace may be unavailable where the test runs inside
		// another network namespace; everything else must read.
		t.Logf("collect: %v", err)
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	// MemTotal is totalram pages in KiB: the 1024 factor makes it equal sysinfo's bytes.
	total := uint64(si.Totalram) * uint64(si.Unit) //nolint:unconvert // uint32 on 32-bit architectures
	if !s.HasMemory || s.Memory.TotalBytes != total {
		t.Errorf("memory total %d bytes, sysinfo says %d", s.Memory.TotalBytes, total)
	}
	if s.Memory.AvailableBytes == 0 || s.Memory.AvailableBytes > s.Memory.TotalBytes || s.Memory.FreeBytes > s.Memory.TotalBytes {
		t.Errorf("memory %+v", s.Memory)
	}
	if !s.HasCPU || s.LogicalCores < runtime.NumCPU() || s.CPU.Idle <= 0 || s.CPU.User <= 0 {
		t.Errorf("cpu %+v, %d cores (NumCPU %d)", s.CPU, s.LogicalCores, runtime.NumCPU())
	}
	if !s.HasUptime || s.UptimeSeconds < float64(si.Uptime)-2 || s.UptimeSeconds > float64(si.Uptime)+2 {
		t.Errorf("uptime %v, sysinfo %d", s.UptimeSeconds, si.Uptime)
	}
	for _, d := range s.Disks {
		if !WholeDisk(d.Name) {
			t.Errorf("disk %q is not a whole disk", d.Name)
		}
	}

	// This test runs in the host's network namespace here: the interfaces are the net
	// package's physical-like ones, and so are their addresses.
	ifcs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ifc := range ifcs {
		if PhysicalInterface(ifc.Name) {
			want = append(want, ifc.Name)
		}
	}
	var got []string
	for _, ifc := range s.Interfaces {
		got = append(got, ifc.Name)
		if ifc.Up && ifc.RxPackets == 0 && ifc.TxPackets == 0 {
			t.Errorf("%s is up without a packet", ifc.Name)
		}
		nifc, err := net.InterfaceByName(ifc.Name)
		if err != nil {
			continue
		}
		addrs, _ := nifc.Addrs()
		var wantAddrs []string
		for _, a := range addrs {
			if s, ok := addressLabel(a.(*net.IPNet).IP); ok {
				wantAddrs = append(wantAddrs, s)
			}
		}
		if !slices.Equal(ifc.Addresses, wantAddrs) {
			t.Errorf("%s addresses %v, want %v", ifc.Name, ifc.Addresses, wantAddrs)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("interfaces %v, want %v", got, want)
	}
}

func TestOwnAddressesLoopback(t *testing.T) {
	got, err := ownAddresses([]string{"lo"})
	if err != nil {
		t.Skip("no loopback interface:", err)
	}
	if !slices.Contains(got["lo"], "127.0.0.1") {
		t.Errorf("lo addresses %v, want 127.0.0.1 among them", got["lo"])
	}
	if _, err := ownAddresses([]string{"no-such-interface0"}); err == nil {
		t.Error("unknown interface: no error")
	}
}

func TestAddressLabel(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.2": "192.0.2.2", "fd00::2": "fd00::2", "127.0.0.1": "127.0.0.1", "2001:db8::1": "2001:db8::1",
		"fe80::fc:ff:fe00:1": "", "169.254.1.1": "", "224.0.0.1": "", "ff02::1": "",
	} {
		got, ok := addressLabel(net.ParseIP(in))
		if got != want || ok != (want != "") {
			t.Errorf("addressLabel(%s) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func BenchmarkCollectFixture(b *testing.B) {
	r := New(fixtureConfig(), fakeAddresses)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Collect(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollectThisHost is one collection of the real node, netlink address lookups included.
func BenchmarkCollectThisHost(b *testing.B) {
	r := New(Config{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = r.Collect()
	}
}
