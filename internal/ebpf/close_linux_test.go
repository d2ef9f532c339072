package ebpf

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

// TestProbeMapsAfterClose: every map operation after Close returns ErrClosed instead of using
// a closed (or already reused) file descriptor, also when Close runs while they do.
func TestProbeMapsAfterClose(t *testing.T) {
	p := loadProbe(t, 0)
	tuple := SocketTuple{NetNS: 1, Family: FamilyIPv4, Local: netip.MustParseAddrPort("10.0.0.1:40000"), Remote: netip.MustParseAddrPort("10.0.0.2:80")}
	added := SocketTuple{NetNS: 1, Family: FamilyIPv4, Local: netip.MustParseAddrPort("10.0.0.1:40001"), Remote: netip.MustParseAddrPort("10.0.0.2:80")}
	ops := []struct {
		name string
		op   func() error
	}{
		{"AddSeeded", func() error {
			if err := p.AddSeeded(added, 1<<63|1); err != nil {
				return err
			}
			_, err := p.RemoveSeeded(added)
			return err
		}},
		{"RemoveSeeded", func() error { _, err := p.RemoveSeeded(tuple); return err }},
		{"SeededConnections", func() error { return p.SeededConnections(func(uint64) {}) }},
		{"Connections", func() error { return p.Connections(func(uint64, *ConnectionCounters) {}) }},
		{"LostEvents", func() error { _, err := p.LostEvents(); return err }},
		{"RunCounts", func() error { _, err := p.RunCounts(); return err }},
	}

	// Users of the maps racing with Close: each call either completes or reports ErrClosed
	// (the race detector checks that no descriptor is read while Close releases it).
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, len(ops))
	for i, o := range ops {
		wg.Go(func() {
			<-start
			for {
				if err := o.op(); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	close(start)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for i, o := range ops {
		if !errors.Is(errs[i], ErrClosed) {
			t.Errorf("%s racing with Close: %v, want ErrClosed", o.name, errs[i])
		}
	}

	for _, o := range ops {
		if err := o.op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", o.name, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
