package tracer

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/ebpf"
	"github.com/codexray/codexray-node-agent/internal/netns"
	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// blockingRegistry holds every pid lookup until release is closed, as the real registry holds
// lookups until its first scan of the node completed.
type blockingRegistry struct {
	*fakeRegistry
	release chan struct{}
}

func (r *blockingRegistry) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	<-r.release
	return r.fakeRegistry.ContainerIDByPID(pid)
}

func startWithBlockedSeeding(t *testing.T) (*Tracer, chan struct{}) {
	t.Helper()
	testutil.RequireRoot(t)
	release := make(chan struct{})
	cfg := DefaultConfig()
	cfg.ProcRoot = fixtureTree(t).root
	tr := New(Options{
		Config:         cfg,
		Resolver:       &blockingRegistry{fakeRegistry: fixtureRegistry(), release: release},
		NAT:            &fakeNAT{},
		EphemeralPorts: PortRange{Min: 32768, Max: 60999},
	})
	started := make(chan error, 1)
	go func() { started <- tr.Start() }()
	select {
	case err := <-started:
		testutil.SkipUnlessPrivileged(t, err == nil, "starting tracer: %v", err)
	case <-time.After(5 * time.Second):
		close(release) // let the blocked Start finish before failing
		if err := <-started; err == nil {
			tr.Close()
		}
		t.Fatal("Start waited for the reading of the sockets open before it")
	}
	return tr, release
}

// TestStartDoesNotWaitForSeeding: Start returns while the sockets open before it are still
// being read (here: the registry is still scanning); they are recorded afterwards.
func TestStartDoesNotWaitForSeeding(t *testing.T) {
	tr, release := startWithBlockedSeeding(t)
	defer func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	select {
	case <-tr.Seeded():
		t.Fatal("seeding finished while the registry was blocked")
	default:
	}
	close(release)
	select {
	case <-tr.Seeded():
	case <-time.After(10 * time.Second):
		t.Fatal("seeding never finished")
	}
	var s ContainerStats
	if !tr.ContainerStats(webC.ID, &s) {
		t.Fatal("nothing seeded for web")
	}
	if d, ok := destOf(&s, "10.0.0.9:5432"); !ok || d.ActiveConnections != 1 {
		t.Errorf("seeded connection of web: %+v", s.Destinations)
	}
	if !hasOpenListen(&s, "0.0.0.0:8080") {
		t.Errorf("seeded listener of web: %+v", s.Listens)
	}
}

// TestCloseStopsSeeding: Close during seeding returns once the blocked lookup returns, seeding
// has ended by then, and the half-read sockets are not recorded.
func TestCloseStopsSeeding(t *testing.T) {
	tr, release := startWithBlockedSeeding(t)
	seeded := tr.Seeded() // after Close, Seeded no longer tells about this run
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seeded:
	default:
		t.Error("Close returned while seeding was still running")
	}
	if cs := tr.ContainerIDs(); len(cs) != 0 {
		t.Errorf("seeding went on after Close: state for %d containers", len(cs))
	}
}

// closeObservingKernel is the real kernel side as seeding uses it, held up inside the first
// AddSeeded (seeding's map-using phase, under the tracer's lock) until Close has asked seeding
// to stop, and then for a while longer: a Close that released the maps without waiting for
// seeding would do it meanwhile.
type closeObservingKernel struct {
	seededSockets
	tr      *Tracer
	entered chan struct{}
	calls   int
	errs    []error // of the kernel calls made after Close began
}

func (k *closeObservingKernel) AddSeeded(s ebpf.SocketTuple, id uint64) error {
	k.calls++
	if k.calls == 1 {
		close(k.entered)
		deadline := time.Now().Add(10 * time.Second)
		for !k.tr.seedStopped() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := k.seededSockets.AddSeeded(s, id)
	if k.tr.seedStopped() && err != nil {
		k.errs = append(k.errs, err)
	}
	return err
}

func (k *closeObservingKernel) RemoveSeeded(s ebpf.SocketTuple) (bool, error) {
	ok, err := k.seededSockets.RemoveSeeded(s)
	if k.tr.seedStopped() && err != nil {
		k.errs = append(k.errs, err)
	}
	return ok, err
}

// TestCloseWhileSeedingUsesMaps: Close while seeding is adding connections to the kernel's
// seeded map waits for seeding before it releases the maps (run with -race: cilium's file
// descriptors must not be closed under a map call).
func TestCloseWhileSeedingUsesMaps(t *testing.T) {
	testutil.RequireRoot(t)
	cfg := DefaultConfig()
	cfg.ProcRoot = fixtureTree(t).root
	tr := New(Options{
		Config:         cfg,
		Resolver:       fixtureRegistry(),
		NAT:            &fakeNAT{},
		EphemeralPorts: PortRange{Min: 32768, Max: 60999},
	})
	kernel := &closeObservingKernel{tr: tr, entered: make(chan struct{})}
	tr.wrapSeedKernel = func(k seededSockets) seededSockets {
		kernel.seededSockets = k
		return kernel
	}
	err := tr.Start()
	testutil.SkipUnlessPrivileged(t, err == nil, "starting tracer: %v", err)
	seeded := tr.Seeded()
	select {
	case <-kernel.entered:
	case <-time.After(10 * time.Second):
		tr.Close()
		t.Fatal("seeding never reached the kernel's seeded map")
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seeded:
	default:
		t.Error("Close returned while seeding was still running")
	}
	// Close has waited for seeding: reading what it wrote is ordered after it.
	if len(kernel.errs) != 0 {
		t.Errorf("seeding's kernel calls after Close began failed: %v", kernel.errs)
	}
	if kernel.calls < 2 {
		t.Errorf("%d AddSeeded calls: the fixture's connections were not all offered to the kernel", kernel.calls)
	}
}

// TestTracerWildcardListenerOnHostAddresses: a listener on 0.0.0.0 in the host's network
// namespace (the test's) is reported at every IPv4 address of the namespace, loopback
// included; connections accepted on 127.0.0.1 count there.
func TestTracerWildcardListenerOnHostAddresses(t *testing.T) {
	tr, _ := startTracer(t, nil)
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, a := range ifAddrs {
		ip, ok := netip.AddrFromSlice(a.(*net.IPNet).IP)
		if ip = ip.Unmap(); ok && ip.Is4() && netns.Usable(ip) {
			want = append(want, netip.AddrPortFrom(ip, port).String())
		}
	}
	slices.Sort(want)
	listening := func(s *ContainerStats) []string {
		var got []string
		for _, l := range s.Listens {
			if l.Open && strings.HasSuffix(l.Address, fmt.Sprintf(":%d", port)) {
				got = append(got, l.Address)
			}
		}
		slices.Sort(got)
		return got
	}
	waitStats(t, tr, selfContainer.ID, 5*time.Second, fmt.Sprintf("listener reported at %v", want), func(s *ContainerStats) bool {
		return slices.Equal(listening(s), want)
	})
	const n = 3
	for range n {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	loopback := fmt.Sprintf("127.0.0.1:%d", port)
	waitStats(t, tr, selfContainer.ID, 5*time.Second, "inbound connections on 127.0.0.1", func(s *ContainerStats) bool {
		for _, l := range s.Listens {
			if l.Address == loopback {
				return l.Open && l.InboundConnections == n
			}
		}
		return false
	})
}
