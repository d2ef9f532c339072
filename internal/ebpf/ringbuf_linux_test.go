package ebpf

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// connectCycles makes n loopback connect/accept/close cycles: about five events each.
func connectCycles(t testing.TB, n int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	<-done
	return ln.Addr().String()
}

// drain reads until the ring buffer has been empty for a moment, or for 2 s at most: other
// processes on the machine keep producing events.
func drain(t *testing.T, p *Probe) int {
	t.Helper()
	var ev Event
	n := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		err := p.readEvent(&ev, time.Now().Add(200*time.Millisecond))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestRingBufferOverflowCountedAndRecovers(t *testing.T) {
	p := loadProbe(t, os.Getpagesize()) // room for ~30 events
	connectCycles(t, 200)
	lost, err := p.LostEvents()
	if err != nil {
		t.Fatal(err)
	}
	if lost == 0 {
		t.Fatal("a burst of ~1000 events into a one-page ring buffer lost nothing")
	}
	// What was kept is still readable (more may arrive meanwhile from other processes).
	if n := drain(t, p); n == 0 {
		t.Error("nothing readable after the overflow")
	}
	// After the overflow, new events arrive again.
	dst := connectCycles(t, 1)
	readUntil(t, p, 5*time.Second, func(ev *Event) bool {
		return ev.Type == EventConnect && ev.Destination.String() == dst
	})
	if after, _ := p.LostEvents(); after < lost {
		t.Errorf("lost counter went backwards: %d -> %d", lost, after)
	}
}

// TestReadEventAllocations proves the kernel→Go decoding path allocates nothing per event.
func TestReadEventAllocations(t *testing.T) {
	p := loadProbe(t, 0)
	connectCycles(t, 100) // ~500 events waiting
	var ev Event
	allocs := testing.AllocsPerRun(200, func() {
		if err := p.ReadEvent(&ev); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadEvent allocates %.1f times per event", allocs)
	}
}

func TestLoadRejectsBadRingBufferSize(t *testing.T) {
	for _, size := range []int{100, 3 * 4096, 4097} {
		if _, err := Load(LoadOptions{RingBufferSize: size}); err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
}

func TestLoadWithoutBTF(t *testing.T) {
	old := kernelBTF
	kernelBTF = "/nonexistent/vmlinux"
	defer func() { kernelBTF = old }()
	_, err := Load(LoadOptions{})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}
