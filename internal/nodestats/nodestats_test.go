package nodestats

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

const fixture = "testdata/host"

func fixtureConfig() Config {
	return Config{ProcRoot: fixture + "/proc", SysRoot: fixture + "/sys"}
}

// fakeAddresses stands for the netlink lookup in fixture tests.
func fakeAddresses(names []string) (map[string][]string, error) {
	all := map[string][]string{"eth0": {"192.0.2.10", "2001:db8::10"}, "br0": {"10.1.0.1"}}
	res := map[string][]string{}
	for _, n := range names {
		if a, ok := all[n]; ok {
			res[n] = a
		}
	}
	return res, nil
}

// TestCollectFixture reads a whole fixture host and compares every value with what the files
// hold, in coroot-node-agent's units (seconds, bytes) with the documented fixes.
func TestCollectFixture(t *testing.T) {
	s, err := New(fixtureConfig(), fakeAddresses).Collect()
	if err != nil {
		t.Fatal(err)
	}
	wantCPU := CPUTimes{User: 22.55, Nice: 0.34, System: 22.90, Idle: 226255.63, IOWait: 62.90, IRQ: 1.27, SoftIRQ: 4.56, Steal: 0.07}
	if !s.HasCPU || !near(s.CPU, wantCPU) || s.LogicalCores != 4 {
		t.Errorf("cpu = %+v (has %v), cores %d; want %+v, 4 cores", s.CPU, s.HasCPU, s.LogicalCores, wantCPU)
	}
	wantMem := Memory{TotalBytes: 16310512 * 1024, FreeBytes: 1234560 * 1024, AvailableBytes: 9876543 * 1024, CachedBytes: 7654321 * 1024}
	if !s.HasMemory || s.Memory != wantMem {
		t.Errorf("memory = %+v, want %+v", s.Memory, wantMem)
	}
	if !s.HasUptime || s.UptimeSeconds != 35612.27 {
		t.Errorf("uptime = %v (has %v), want 35612.27", s.UptimeSeconds, s.HasUptime)
	}

	var names []string
	for _, d := range s.Disks {
		names = append(names, d.Name)
	}
	if want := []string{"sda", "nvme0n1", "dm-0", "sdaa", "md0", "mmcblk0"}; !reflect.DeepEqual(names, want) {
		t.Errorf("disks %v, want %v", names, want)
	}
	wantSda := Disk{
		Name: "sda", Major: 8, Minor: 0, Reads: 446216, Writes: 424847, ReadBytes: 9550688 * 512, WrittenBytes: 5922052 * 512,
		ReadTimeSeconds: 4382.310, WriteTimeSeconds: 19310.380, IOTimeSeconds: 3376.340,
	}
	if s.Disks[0] != wantSda {
		t.Errorf("sda = %+v\nwant %+v", s.Disks[0], wantSda)
	}

	want := []Interface{
		{Name: "eth0", RxBytes: 697816251, RxPackets: 42016, TxBytes: 3157940, TxPackets: 29390, Up: true, Addresses: []string{"192.0.2.10", "2001:db8::10"}},
		{Name: "enp0s3", RxBytes: 12345678901, RxPackets: 99, TxBytes: 5, TxPackets: 1},
		{Name: "br0", RxBytes: 500, RxPackets: 5, TxBytes: 600, TxPackets: 6, Up: true, Addresses: []string{"10.1.0.1"}},
		{Name: "bond0", RxBytes: 700, RxPackets: 7, TxBytes: 800, TxPackets: 8},
		{Name: "eth0.100", RxBytes: 900, RxPackets: 9, TxBytes: 1000, TxPackets: 10, Up: true},
	}
	if !reflect.DeepEqual(s.Interfaces, want) {
		t.Errorf("interfaces\n got %+v\nwant %+v", s.Interfaces, want)
	}
}

func near(a, b CPUTimes) bool {
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range av.NumField() {
		d := av.Field(i).Float() - bv.Field(i).Float()
		if d > 1e-9 || d < -1e-9 {
			return false
		}
	}
	return true
}

// A missing or broken part leaves the others intact and is named in the error.
func TestCollectPartial(t *testing.T) {
	dir := testutil.CopyTree(t, fixture)
	if err := os.Remove(filepath.Join(dir, "proc/meminfo")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "proc/diskstats"), []byte("8 0 sda x 0 0 0 0 0 0 0 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{ProcRoot: dir + "/proc", SysRoot: dir + "/sys"}, fakeAddresses).Collect()
	if err == nil || !strings.Contains(err.Error(), "meminfo") || !strings.Contains(err.Error(), "diskstats") {
		t.Errorf("error %v, want one naming meminfo and diskstats", err)
	}
	if s.HasMemory || len(s.Disks) != 0 || !s.HasCPU || len(s.Interfaces) != 5 {
		t.Errorf("partial snapshot: memory %v, %d disks, cpu %v, %d interfaces", s.HasMemory, len(s.Disks), s.HasCPU, len(s.Interfaces))
	}
}

// Without pid 1's net/dev the agent's own namespace is read; an address lookup failure keeps
// the counters.
func TestInterfacesFallbackAndAddressError(t *testing.T) {
	dir := testutil.CopyTree(t, fixture)
	if err := os.RemoveAll(filepath.Join(dir, "proc/1/net")); err != nil {
		t.Fatal(err)
	}
	failing := func([]string) (map[string][]string, error) { return nil, errors.New("netlink refused") }
	s, err := New(Config{ProcRoot: dir + "/proc", SysRoot: dir + "/sys"}, failing).Collect()
	if err == nil || !strings.Contains(err.Error(), "netlink refused") {
		t.Errorf("error %v, want the address lookup's", err)
	}
	if len(s.Interfaces) != 5 || s.Interfaces[0].RxBytes != 697816251 || s.Interfaces[0].Addresses != nil {
		t.Errorf("interfaces %+v", s.Interfaces)
	}
}

func TestWholeDisk(t *testing.T) {
	for _, tc := range []struct {
		name, disk string
		whole      bool
	}{
		{"sda", "sda", true},
		{"sda1", "sda", false},
		{"sdz", "sdz", true},
		{"sdaa", "sdaa", true},
		{"sdaa1", "sdaa", false}, // coroot-node-agent: sdaa dropped, sdaa1 -> sda
		{"hdb", "hdb", true},
		{"vda", "vda", true},
		{"vda2", "vda", false},
		{"xvdf", "xvdf", true},
		{"xvdf1", "xvdf", false},
		{"nvme0n1", "nvme0n1", true},
		{"nvme0n1p1", "nvme0n1", false},
		{"nvme10n12", "nvme10n12", true},
		{"nvme0", "", false},
		{"dm-0", "dm-0", true},
		{"dm-12", "dm-12", true},
		{"dm-", "", false},
		{"md0", "md0", true},
		{"md127p1", "md127", false},
		{"mmcblk0", "mmcblk0", true},
		{"mmcblk0p1", "mmcblk0", false},
		{"rbd3", "rbd3", true},
		{"loop0", "", false},
		{"ram0", "", false},
		{"zram0", "", false},
		{"sr0", "", false},
		{"nbd0", "", false},
		{"sd", "", false},
		{"", "", false},
		{"SDA", "", false},
	} {
		disk, whole := diskName(tc.name)
		if disk != tc.disk || whole != tc.whole || WholeDisk(tc.name) != tc.whole {
			t.Errorf("diskName(%q) = %q, %v; want %q, %v", tc.name, disk, whole, tc.disk, tc.whole)
		}
	}
}

func TestPhysicalInterface(t *testing.T) {
	for name, want := range map[string]bool{
		"eth0": true, "eth0.100": true, "ETH1": true, "eno1": true, "ens3": true, "ens192": true, "enp0s3": true,
		"enp5s0f1": true, "enp0p3s0": true, "enx00e04c680001": true, "em1": true, "p1p1": true, "bond0": true,
		"br0": true, "vmbr0": true,
		"lo": false, "docker0": false, "br-0a1b2c3d4e5f": false, "veth1a2b3c": false, "cni0": false, "flannel.1": false,
		"cali12345": false, "tun0": false, "wlan0": false, "wlp3s0": false, "virbr0": false, "kube-ipvs0": false, "": false,
	} {
		if got := PhysicalInterface(name); got != want {
			t.Errorf("PhysicalInterface(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestBlockDevices(t *testing.T) {
	bd, err := ReadBlockDevices(fixture + "/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		major, minor uint32
		want         string
	}{
		{8, 0, "sda"},
		{8, 1, "sda"},
		{8, 2, "sda"},
		{259, 1, "nvme0n1"},
		{253, 0, "dm-0"},
		{65, 161, "sdaa"},
		{179, 1, "mmcblk0"},
		{7, 0, ""},
		{252, 0, ""},
		{0, 45, ""},
		{8, 16, ""},
	} {
		if got := bd.Disk(tc.major, tc.minor); got != tc.want {
			t.Errorf("Disk(%d:%d) = %q, want %q", tc.major, tc.minor, got, tc.want)
		}
	}
}

func TestReadIdentity(t *testing.T) {
	write := func(t *testing.T, path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const uuid = "4C4C4544-0042-3510-8056-B2C04F4E3732"
	for _, tc := range []struct {
		name                 string
		hostEtc, hostDbus    string // through ProcRoot/1/root
		own, productUUID     string
		wantMachine, wantSys string
	}{
		{
			name: "host root", hostEtc: "6f3a1f0e2b4c4d5e8f9a0b1c2d3e4f50\n", own: "ffff\n", productUUID: uuid + "\n",
			wantMachine: "6f3a1f0e2b4c4d5e8f9a0b1c2d3e4f50", wantSys: uuid,
		},
		{name: "host dbus id", hostDbus: "0123-4567\n", own: "ffff\n", wantMachine: "01234567"},
		{name: "own file when the host root is unreadable", own: " aa-bb-cc \n", productUUID: uuid, wantMachine: "aabbcc", wantSys: uuid},
		{name: "product uuid as last resort", productUUID: uuid, wantMachine: "4C4C4544004235108056B2C04F4E3732", wantSys: uuid},
		{name: "empty machine-id file skipped", hostEtc: "\n", own: "abc\n", wantMachine: "abc"},
		{name: "nothing", wantMachine: "", wantSys: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{ProcRoot: dir + "/proc", SysRoot: dir + "/sys", MachineIDPaths: []string{dir + "/own/etc/machine-id"}}
			if tc.hostEtc != "" {
				write(t, dir+"/proc/1/root/etc/machine-id", tc.hostEtc)
			}
			if tc.hostDbus != "" {
				write(t, dir+"/proc/1/root/var/lib/dbus/machine-id", tc.hostDbus)
			}
			if tc.own != "" {
				write(t, dir+"/own/etc/machine-id", tc.own)
			}
			if tc.productUUID != "" {
				write(t, dir+"/sys/devices/virtual/dmi/id/product_uuid", tc.productUUID)
			}
			if got := ReadIdentity(cfg); got != (Identity{MachineID: tc.wantMachine, SystemUUID: tc.wantSys}) {
				t.Errorf("ReadIdentity = %+v, want machine %q, system %q", got, tc.wantMachine, tc.wantSys)
			}
		})
	}
}

func TestAgentVersion(t *testing.T) {
	if got := AgentVersion("0.3.1"); got != "0.3.1" {
		t.Errorf("AgentVersion(0.3.1) = %q", got)
	}
	if got := AgentVersion(""); got == "" {
		t.Error("AgentVersion(\"\") is empty")
	}
}
