package taskstats

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

// A restarted Accumulator continues each container's totals under the same start: a process
// still running adds only what it gained since its last reading (before, the restart lost the
// exited processes' part and counted from zero under a new start), one that exited while the
// agent was down keeps its last reading, and a pid reused meanwhile is a new process.
func TestRestoreContinuesTotals(t *testing.T) {
	t0 := time.Unix(1000, 0)
	res := &fakeResolver{}
	res.set(10, ctrA)
	res.set(11, ctrA)
	res.set(12, ctrA)
	res.set(20, ctrB)
	a := NewAccumulator(res, 0)
	procs := &fakeProcs{procs: map[uint32]*fakeProc{
		10: {start: 1, d: cpu(100)}, 11: {start: 1, d: cpu(10)}, 12: {start: 5, d: cpu(40)}, 20: {start: 1, d: cpu(7)},
	}}
	if _, err := a.collect(procs, t0); err != nil {
		t.Fatal(err)
	}
	a.Exit(exitSingle(11, 1, cpu(30)), t0.Add(time.Second)) // exits with 30 between collections
	sinceA := since(t, a, ctrA)

	b, err := json.Marshal(a.Save())
	if err != nil {
		t.Fatal(err)
	}
	var saved []SavedContainer
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}

	// While the agent is down: 10 runs on to 150, 12 exits and its pid goes to a new process
	// of container B (with more delay than 12 had), 20 runs on to 9.
	procs.procs = map[uint32]*fakeProc{10: {start: 1, d: cpu(150)}, 12: {start: 9, d: cpu(45)}, 20: {start: 1, d: cpu(9)}}
	res.set(12, ctrB)
	r := NewAccumulator(res, 0)
	r.Restore(saved)
	if _, err := r.collect(procs, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[containers.ID]uint64{ctrA: 150 + 30 + 40, ctrB: 9 + 45} {
		d, s, ok := r.ContainerDelaysSince(id)
		if !ok || d.CPU != want {
			t.Errorf("%s: cpu delay %d (ok %v), want %d", id, d.CPU, ok, want)
		}
		if id == ctrA && !s.Equal(sinceA) {
			t.Errorf("%s: totals since %s after the restart, %s before", id, s, sinceA)
		}
	}
}

// Totals of a container gone for longer than the retention do not come back with a restart.
func TestRestoredTotalsExpire(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAccumulator(&fakeResolver{}, time.Minute)
	a.Restore([]SavedContainer{{ID: ctrA, Since: t0, LastSeen: t0, Dead: cpu(5)}})
	if _, err := a.collect(&fakeProcs{procs: map[uint32]*fakeProc{}}, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := a.ContainerDelaysSince(ctrA); ok || len(a.Save()) != 0 {
		t.Fatal("totals of a long-gone container survived the restart")
	}
}

func since(t *testing.T, a *Accumulator, id containers.ID) time.Time {
	t.Helper()
	_, s, ok := a.ContainerDelaysSince(id)
	if !ok {
		t.Fatalf("no totals for %s", id)
	}
	return s
}
