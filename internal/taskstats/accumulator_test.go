package taskstats

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// fakeResolver maps pids to containers.
type fakeResolver struct {
	mu   sync.Mutex
	pids map[uint32]containers.ID
}

func (f *fakeResolver) ContainerIDByPID(pid uint32) (containers.ID, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.pids[pid]
	return id, ok
}

func (f *fakeResolver) set(pid uint32, id containers.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pids == nil {
		f.pids = map[uint32]containers.ID{}
	}
	f.pids[pid] = id
}

// fakeProc is one process of fakeProcs.
type fakeProc struct {
	start  uint64
	zombie bool
	d      Delays // what a TGID query returns
}

// fakeProcs is a processReader over a table; onRead runs inside Read (to inject exits).
type fakeProcs struct {
	procs  map[uint32]*fakeProc
	onRead func(pid uint32)
}

func (f *fakeProcs) TGIDs() ([]uint32, error) {
	var pids []uint32
	for pid := range f.procs {
		pids = append(pids, pid)
	}
	return pids, nil
}

func (f *fakeProcs) Start(pid uint32) (uint64, bool, error) {
	p, ok := f.procs[pid]
	if !ok {
		return 0, false, ErrGone
	}
	return p.start, p.zombie, nil
}

func (f *fakeProcs) Read(pid uint32) (Delays, uint64, error) {
	if f.onRead != nil {
		f.onRead(pid)
	}
	p, ok := f.procs[pid]
	if !ok {
		return Delays{}, 0, ErrGone
	}
	return p.d, 0, nil
}

func cpu(ns uint64) Delays { return Delays{CPU: ns} }

// exitSingle is the notification of a single-threaded process's exit (v16: AGROUP set).
func exitSingle(pid, ppid uint32, d Delays) *Reply {
	return &Reply{PID: pid, HasTask: true, Task: Stats{
		Version: 16, Flag: AGroup, PID: pid, TGID: pid, PPID: ppid,
		CPUDelayTotal: d.CPU, BlkioDelayTotal: d.Blkio,
	}}
}

// exitThread is the notification of one thread of a still-running process.
func exitThread(tid, tgid uint32, d Delays) *Reply {
	return &Reply{PID: tid, HasTask: true, Task: Stats{Version: 16, PID: tid, TGID: tgid, CPUDelayTotal: d.CPU}}
}

// exitGroup is the notification of a multi-threaded process's last thread.
func exitGroup(tid, tgid, ppid uint32, last, group Delays) *Reply {
	return &Reply{
		PID: tid, HasTask: true, Task: Stats{Version: 16, Flag: AGroup, PID: tid, TGID: tgid, PPID: ppid, CPUDelayTotal: last.CPU},
		TGID: tgid, HasGroup: true, Group: Stats{Version: 16, CPUDelayTotal: group.CPU},
	}
}

const ctrA, ctrB containers.ID = "/docker/a", "/docker/b"

func TestAccumulator(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		procs map[uint32]*fakeProc // nil: unchanged
		exits []*Reply             // delivered before the collection
		want  map[containers.ID]uint64
	}
	tests := []struct {
		name     string
		resolver map[uint32]containers.ID
		steps    []step
	}{
		{
			name:     "live processes sum per container, host processes ignored",
			resolver: map[uint32]containers.ID{10: ctrA, 11: ctrA, 20: ctrB},
			steps: []step{
				{
					procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}, 11: {start: 1, d: cpu(50)}, 20: {start: 1, d: cpu(7)}, 1: {start: 1, d: cpu(1e9)}},
					want:  map[containers.ID]uint64{ctrA: 150, ctrB: 7},
				},
				{
					procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(300)}, 11: {start: 1, d: cpu(50)}, 20: {start: 1, d: cpu(9)}, 1: {start: 1, d: cpu(2e9)}},
					want:  map[containers.ID]uint64{ctrA: 350, ctrB: 9},
				},
			},
		},
		{
			name:     "exit notification folds the final totals once; zombie not recounted",
			resolver: map[uint32]containers.ID{10: ctrA, 11: ctrA},
			steps: []step{
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}, 11: {start: 1, d: cpu(10)}}, want: map[containers.ID]uint64{ctrA: 110}},
				// 10 exits with 180; it stays a zombie (a TGID query of a single-threaded
				// zombie answers zeros) for one collection.
				{
					procs: map[uint32]*fakeProc{10: {start: 1, zombie: true}, 11: {start: 1, d: cpu(20)}},
					exits: []*Reply{exitSingle(10, 1, cpu(180))}, want: map[containers.ID]uint64{ctrA: 200},
				},
				{procs: map[uint32]*fakeProc{11: {start: 1, d: cpu(20)}}, want: map[containers.ID]uint64{ctrA: 200}},
				// A duplicate notification changes nothing.
				{exits: []*Reply{exitSingle(10, 1, cpu(180))}, want: map[containers.ID]uint64{ctrA: 200}},
			},
		},
		{
			name:     "vanished without notification: last reading kept",
			resolver: map[uint32]containers.ID{10: ctrA},
			steps: []step{
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}}, want: map[containers.ID]uint64{ctrA: 100}},
				{procs: map[uint32]*fakeProc{}, want: map[containers.ID]uint64{ctrA: 100}},
				// The notification arrives late: only what grew since the reading is added.
				{exits: []*Reply{exitSingle(10, 1, cpu(130))}, want: map[containers.ID]uint64{ctrA: 130}},
			},
		},
		{
			name:     "multi-threaded: thread exits ignored, group record counted once",
			resolver: map[uint32]containers.ID{10: ctrA},
			steps: []step{
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}}, want: map[containers.ID]uint64{ctrA: 100}},
				// Threads 12 and 13 exit (their 30+40 is now in the TGID reading of 10).
				{
					procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(200)}},
					exits: []*Reply{exitThread(12, 10, cpu(30)), exitThread(13, 10, cpu(40))}, want: map[containers.ID]uint64{ctrA: 200},
				},
				// The last thread exits: group record 260 includes everything.
				{procs: map[uint32]*fakeProc{}, exits: []*Reply{exitGroup(11, 10, 1, cpu(20), cpu(260))}, want: map[containers.ID]uint64{ctrA: 260}},
			},
		},
		{
			name:     "short-lived process attributed through its parent",
			resolver: map[uint32]containers.ID{10: ctrA},
			steps: []step{
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(5)}}, want: map[containers.ID]uint64{ctrA: 5}},
				{
					procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(6)}},
					exits: []*Reply{exitSingle(50, 10, cpu(1000)), exitSingle(60, 1, cpu(99))}, want: map[containers.ID]uint64{ctrA: 1006},
				},
			},
		},
		{
			name:     "pid reused by another process between collections",
			resolver: map[uint32]containers.ID{10: ctrA},
			steps: []step{
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(500)}}, want: map[containers.ID]uint64{ctrA: 500}},
				{procs: map[uint32]*fakeProc{10: {start: 2, d: cpu(20)}}, want: map[containers.ID]uint64{ctrA: 520}},
				{procs: map[uint32]*fakeProc{10: {start: 2, d: cpu(30)}}, want: map[containers.ID]uint64{ctrA: 530}},
			},
		},
		{
			name:     "lower reading of the same process is clamped",
			resolver: map[uint32]containers.ID{10: ctrA},
			steps: []step{
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(500)}}, want: map[containers.ID]uint64{ctrA: 500}},
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(450)}}, want: map[containers.ID]uint64{ctrA: 500}},
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(600)}}, want: map[containers.ID]uint64{ctrA: 600}},
			},
		},
		{
			name:     "exited and reused pid with a new process after the tombstone",
			resolver: map[uint32]containers.ID{10: ctrA},
			steps: []step{
				{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}}, want: map[containers.ID]uint64{ctrA: 100}},
				{
					procs: map[uint32]*fakeProc{10: {start: 5, d: cpu(3)}}, exits: []*Reply{exitSingle(10, 1, cpu(120))},
					want: map[containers.ID]uint64{ctrA: 123},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &fakeResolver{pids: tt.resolver}
			a := NewAccumulator(res, time.Hour)
			procs := &fakeProcs{procs: map[uint32]*fakeProc{}}
			now := t0
			for i, s := range tt.steps {
				now = now.Add(15 * time.Second)
				if s.procs != nil {
					procs.procs = s.procs
				}
				for _, e := range s.exits {
					a.Exit(e, now)
				}
				if _, err := a.collect(procs, now); err != nil {
					t.Fatal(err)
				}
				for id, want := range s.want {
					got, ok := a.ContainerDelays(id)
					if !ok || got.CPU != want {
						t.Errorf("step %d: %s cpu %d (known %v), want %d", i, id, got.CPU, ok, want)
					}
				}
			}
		})
	}
}

// An exit handled while its process is being read must not be counted twice.
func TestAccumulatorExitDuringRead(t *testing.T) {
	res := &fakeResolver{pids: map[uint32]containers.ID{10: ctrA}}
	a := NewAccumulator(res, time.Hour)
	procs := &fakeProcs{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}}}
	now := time.Unix(1000, 0)
	if _, err := a.collect(procs, now); err != nil {
		t.Fatal(err)
	}
	procs.procs[10].d = cpu(150)
	procs.onRead = func(pid uint32) {
		if pid == 10 {
			a.Exit(exitSingle(10, 1, cpu(160)), now) // arrives between the lookup and the apply
		}
	}
	if _, err := a.collect(procs, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if d, _ := a.ContainerDelays(ctrA); d.CPU != 160 {
		t.Fatalf("cpu %d, want 160", d.CPU)
	}
}

func TestAccumulatorExpiresIdleContainers(t *testing.T) {
	res := &fakeResolver{pids: map[uint32]containers.ID{10: ctrA}}
	a := NewAccumulator(res, time.Minute)
	procs := &fakeProcs{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}}}
	now := time.Unix(1000, 0)
	collectOK(t, a, procs, now)
	procs.procs = map[uint32]*fakeProc{}
	collectOK(t, a, procs, now.Add(time.Second))
	if _, ok := a.ContainerDelays(ctrA); !ok {
		t.Fatal("forgotten too early")
	}
	collectOK(t, a, procs, now.Add(2*time.Minute))
	if _, ok := a.ContainerDelays(ctrA); ok {
		t.Fatal("idle container kept past retention")
	}
}

// Totals forgotten after the retention and created again start from zero: they must come with
// a later start, so the series they feed never falls under an unchanged start.
func TestAccumulatorTotalsStartAgainAfterForgetting(t *testing.T) {
	res := &fakeResolver{pids: map[uint32]containers.ID{10: ctrA, 11: ctrA}}
	a := NewAccumulator(res, time.Minute)
	procs := &fakeProcs{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}}}
	t0 := time.Unix(1000, 0)
	collectOK(t, a, procs, t0)
	d, since, ok := a.ContainerDelaysSince(ctrA)
	if !ok || d.CPU != 100 || !since.Equal(t0) {
		t.Fatalf("first life: %d since %v (%v), want 100 since %v", d.CPU, since, ok, t0)
	}
	// Still the same totals while they last, even without processes.
	procs.procs = map[uint32]*fakeProc{}
	collectOK(t, a, procs, t0.Add(30*time.Second))
	if d, since, _ := a.ContainerDelaysSince(ctrA); d.CPU != 100 || !since.Equal(t0) {
		t.Fatalf("idle: %d since %v, want 100 since %v", d.CPU, since, t0)
	}
	// Forgotten, then a process of the same container appears: a new life from zero.
	collectOK(t, a, procs, t0.Add(3*time.Minute))
	t1 := t0.Add(4 * time.Minute)
	procs.procs = map[uint32]*fakeProc{11: {start: 2, d: cpu(7)}}
	collectOK(t, a, procs, t1)
	d, since, ok = a.ContainerDelaysSince(ctrA)
	if !ok || d.CPU != 7 || !since.Equal(t1) {
		t.Fatalf("second life: %d since %v (%v), want 7 since %v", d.CPU, since, ok, t1)
	}
	// An exit notification can create the totals too; its time is their start.
	t2 := t1.Add(time.Minute)
	res.set(12, ctrB)
	a.Exit(exitSingle(12, 3, cpu(5)), t2)
	collectOK(t, a, procs, t2.Add(time.Second))
	if d, since, ok := a.ContainerDelaysSince(ctrB); !ok || d.CPU != 5 || !since.Equal(t2) {
		t.Fatalf("created by an exit: %d since %v (%v), want 5 since %v", d.CPU, since, ok, t2)
	}
}

// Forget drops a gone container's totals before its own retention, and the processes still
// attributed to it: a later collection that misses them does not bring the totals back, and a
// process of the container running again counts from zero with a later since.
func TestAccumulatorForget(t *testing.T) {
	res := &fakeResolver{pids: map[uint32]containers.ID{10: ctrA, 11: ctrA, 20: ctrB}}
	a := NewAccumulator(res, time.Hour)
	procs := &fakeProcs{procs: map[uint32]*fakeProc{10: {start: 1, d: cpu(100)}, 20: {start: 1, d: cpu(50)}}}
	t0 := time.Unix(1000, 0)
	collectOK(t, a, procs, t0)
	a.Forget([]containers.ID{ctrA, "/docker/unknown"})
	if _, ok := a.ContainerDelays(ctrA); ok {
		t.Fatal("totals kept after Forget")
	}
	if ids := a.ContainerIDs(); len(ids) != 1 || ids[0] != ctrB {
		t.Fatalf("held: %v", ids)
	}
	delete(procs.procs, 10) // its exit went unnoticed
	collectOK(t, a, procs, t0.Add(time.Second))
	if _, ok := a.ContainerDelays(ctrA); ok {
		t.Fatal("a process of a forgotten container brought its totals back")
	}
	if d, ok := a.ContainerDelays(ctrB); !ok || d.CPU != 50 {
		t.Fatalf("another container's totals: %+v %v", d, ok)
	}
	t1 := t0.Add(time.Minute)
	procs.procs[11] = &fakeProc{start: 2, d: cpu(7)}
	collectOK(t, a, procs, t1)
	if d, since, ok := a.ContainerDelaysSince(ctrA); !ok || d.CPU != 7 || !since.Equal(t1) {
		t.Fatalf("back: %d since %v (%v), want 7 since %v", d.CPU, since, ok, t1)
	}
}

func TestAccumulatorImplausibleDiskDelay(t *testing.T) {
	res := &fakeResolver{pids: map[uint32]containers.ID{10: ctrA}}
	a := NewAccumulator(res, time.Hour)
	r := &elapsedReader{fakeProcs: fakeProcs{procs: map[uint32]*fakeProc{10: {start: 1, d: Delays{CPU: 5, Blkio: 40}}}}, elapsed: 1000}
	now := time.Unix(1000, 0)
	collectOK(t, a, r, now)
	r.procs[10].d = Delays{CPU: 6, Blkio: 3e15} // uptime credited by a delayacct switch mid-IO
	res2, _ := a.collect(r, now.Add(time.Second))
	d, _ := a.ContainerDelays(ctrA)
	if d.Blkio != 40 || d.CPU != 6 || res2.Implausible != 1 {
		t.Fatalf("delays %v implausible %d", d, res2.Implausible)
	}
}

type elapsedReader struct {
	fakeProcs
	elapsed uint64
}

func (r *elapsedReader) Read(pid uint32) (Delays, uint64, error) {
	d, _, err := r.fakeProcs.Read(pid)
	return d, r.elapsed, err
}

// Random lifecycles: container totals never decrease and end equal to the sum of every
// process's final totals when every exit is notified.
func TestAccumulatorMonotonicRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	res := &fakeResolver{}
	a := NewAccumulator(res, time.Hour)
	procs := &fakeProcs{procs: map[uint32]*fakeProc{}}
	ids := []containers.ID{ctrA, ctrB}
	var prev [2]uint64
	var finals [2]uint64
	nextStart := uint64(1)
	freedAt := map[uint32]int{}
	now := time.Unix(1000, 0)
	for round := 0; round < 300; round++ {
		now = now.Add(time.Second)
		// spawn
		for i := 0; i < 3; i++ {
			pid := uint32(100 + rng.IntN(40))
			if _, ok := procs.procs[pid]; ok {
				continue
			}
			// The kernel hands out pids in increasing order; a pid comes back only after
			// a wrap. Reuse within the tombstone window (two collections) is the documented
			// blind spot, so pids come back here after three.
			if at, ok := freedAt[pid]; ok && round-at < 3 {
				continue
			}
			c := rng.IntN(2)
			res.set(pid, ids[c])
			procs.procs[pid] = &fakeProc{start: nextStart}
			nextStart++
		}
		// grow and exit
		for pid, p := range procs.procs {
			if p.zombie {
				delete(procs.procs, pid)
				freedAt[pid] = round
				continue
			}
			p.d.CPU += uint64(rng.IntN(1000))
			if rng.IntN(5) == 0 {
				final := p.d
				final.CPU += uint64(rng.IntN(100))
				id, _ := res.ContainerIDByPID(pid)
				for c := range ids {
					if ids[c] == id {
						finals[c] += final.CPU
					}
				}
				a.Exit(exitSingle(pid, 1, final), now)
				if rng.IntN(2) == 0 {
					p.zombie, p.d = true, Delays{}
				} else {
					delete(procs.procs, pid)
					freedAt[pid] = round
				}
			}
		}
		if _, err := a.collect(procs, now); err != nil {
			t.Fatal(err)
		}
		for c, id := range ids {
			d, _ := a.ContainerDelays(id)
			if d.CPU < prev[c] {
				t.Fatalf("round %d: %s went from %d to %d", round, id, prev[c], d.CPU)
			}
			prev[c] = d.CPU
		}
	}
	// Let everything exit.
	for pid, p := range procs.procs {
		if !p.zombie {
			id, _ := res.ContainerIDByPID(pid)
			for c := range ids {
				if ids[c] == id {
					finals[c] += p.d.CPU
				}
			}
			a.Exit(exitSingle(pid, 1, p.d), now)
		}
	}
	procs.procs = map[uint32]*fakeProc{}
	collectOK(t, a, procs, now.Add(time.Second))
	for c, id := range ids {
		d, _ := a.ContainerDelays(id)
		if d.CPU != finals[c] {
			t.Errorf("%s: total %d, sum of finals %d", id, d.CPU, finals[c])
		}
	}
}

func TestAccumulatorImplausibleExit(t *testing.T) {
	res := &fakeResolver{pids: map[uint32]containers.ID{10: ctrA}}
	a := NewAccumulator(res, time.Hour)
	now := time.Unix(1000, 0)
	ok := exitSingle(50, 10, Delays{CPU: 1e6, Blkio: 2e6})
	ok.Task.ETime = 5000 // µs: lived 5 ms, waited 2 ms for IO
	bogus := exitSingle(51, 10, Delays{CPU: 1e6, Blkio: 1558e9})
	bogus.Task.ETime = 5000 // lived 5 ms, "waited" 26 minutes
	a.Exit(ok, now)
	a.Exit(bogus, now)
	collectOK(t, a, &fakeProcs{procs: map[uint32]*fakeProc{10: {start: 1}}}, now)
	d, _ := a.ContainerDelays(ctrA)
	if d.Blkio != 2e6 || d.CPU != 2e6 || a.Counters().Implausible != 1 {
		t.Fatalf("delays %v, implausible %d", d, a.Counters().Implausible)
	}
}

// A late notification of a followed process is filtered with that process's history: its
// lifetime (100 s) would let a 1,600 s jump through, its start time (1,500 s after boot) does not.
func TestAccumulatorLateExitBogusDiskDelay(t *testing.T) {
	const s = uint64(1e9)
	res := &fakeResolver{pids: map[uint32]containers.ID{10: ctrA}}
	a := NewAccumulator(res, time.Hour)
	r := &elapsedReader{fakeProcs: fakeProcs{procs: map[uint32]*fakeProc{10: {start: 150000, d: Delays{CPU: 1, Blkio: 1 * s}}}}, elapsed: 100 * s}
	now := time.Unix(1000, 0)
	collectOK(t, a, r, now)
	r.procs = map[uint32]*fakeProc{}
	collectOK(t, a, r, now.Add(time.Second)) // vanished: last reading folded
	late := exitSingle(10, 1, Delays{CPU: 2, Blkio: 1*s + 1600*s})
	late.Task.ETime = 115 * 1e6 // µs
	a.Exit(late, now.Add(2*time.Second))
	collectOK(t, a, r, now.Add(3*time.Second))
	d, _ := a.ContainerDelays(ctrA)
	if d.Blkio != 1*s || d.CPU != 2 || a.Counters().Implausible != 1 {
		t.Fatalf("delays %v, implausible %d", d, a.Counters().Implausible)
	}
}

// collectOK collects and fails the test on an error.
func collectOK(t *testing.T, a *Accumulator, r processReader, now time.Time) {
	t.Helper()
	if _, err := a.collect(r, now); err != nil {
		t.Fatal(err)
	}
}
