package tracer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/ebpf"
)

// A restarted tracer continues every counter from where the previous one stopped, under the
// same start time; connections and listening sockets it learns anew (here: events) add to them.
func TestRestoreContinuesCounters(t *testing.T) {
	tr, clk := newTestTracer(t, nil)
	tr.Handle(connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:40000", "10.96.0.10:5432"))
	tr.Handle(&ebpf.Event{Type: ebpf.EventClose, Sock: 1, BytesSent: 100, BytesReceived: 200})
	tr.Handle(connectEv(ebpf.EventConnect, 2, 100, "10.0.0.5:40001", "10.96.0.10:5432")) // still open at the restart
	tr.Handle(connectEv(ebpf.EventConnectFailed, 3, 100, "10.0.0.5:40002", "10.0.0.9:80"))
	tr.Handle(connectEv(ebpf.EventListenOpen, 4, 200, "0.0.0.0:5432", "0.0.0.0:0"))
	tr.Handle(connectEv(ebpf.EventAccept, 5, 200, "10.0.0.7:5432", "10.0.0.5:40001"))
	tr.Handle(&ebpf.Event{Type: ebpf.EventOOMKill, CgroupID: 100, PID: 1, TargetPID: 7})
	before := stats(t, tr, web.ID)
	dbBefore := stats(t, tr, db.ID)

	b, err := json.Marshal(tr.Save())
	if err != nil {
		t.Fatal(err)
	}
	var saved []SavedContainer
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute) // the restart
	r, clk2 := newTestTracer(t, nil)
	clk2.t = clk.t
	r.Restore(saved)

	after := stats(t, r, web.ID)
	nat := findDest(t, after, "10.96.0.10:5432", "10.244.0.7:5432")
	want := findDest(t, before, "10.96.0.10:5432", "10.244.0.7:5432")
	want.ActiveConnections = 0 // learnt again from /proc at start (seed.go), not saved
	if !nat.Start.Equal(want.Start) {
		t.Fatalf("restored start %s, want %s", nat.Start, want.Start)
	}
	nat.Start = want.Start
	if nat != want {
		t.Fatalf("restored %+v, want %+v", nat, want)
	}
	if f := findDest(t, after, "10.0.0.9:80", "10.0.0.9:80"); f.FailedConnects != 1 {
		t.Fatalf("failed connects %d", f.FailedConnects)
	}
	if after.OOMKills != 1 || !after.OOMKillsStart.Equal(before.OOMKillsStart) {
		t.Fatalf("oom kills %d from %s, want 1 from %s", after.OOMKills, after.OOMKillsStart, before.OOMKillsStart)
	}
	dbAfter := stats(t, r, db.ID)
	if len(dbAfter.Listens) != 1 || dbAfter.Listens[0].InboundConnections != 1 || !dbAfter.Listens[0].Start.Equal(dbBefore.Listens[0].Start) ||
		dbAfter.Listens[0].Open {
		t.Fatalf("listens %+v, before %+v", dbAfter.Listens, dbBefore.Listens)
	}

	// New events count on.
	r.Handle(connectEv(ebpf.EventConnect, 6, 100, "10.0.0.5:40003", "10.96.0.10:5432"))
	r.Handle(connectEv(ebpf.EventAccept, 7, 200, "10.0.0.7:5432", "10.0.0.5:40004"))
	after = stats(t, r, web.ID)
	if d := findDest(t, after, "10.96.0.10:5432", "10.244.0.7:5432"); d.SuccessfulConnects != 3 || !d.Start.Equal(want.Start) {
		t.Fatalf("after one more connect: %+v", d)
	}
	if l := stats(t, r, db.ID).Listens[0]; l.InboundConnections != 2 {
		t.Fatalf("after one more accept: %+v", l)
	}
}

// Restored state expires as it would have without the restart.
func TestRestoredStateExpires(t *testing.T) {
	tr, clk := newTestTracer(t, nil)
	tr.Handle(connectEv(ebpf.EventConnect, 1, 100, "10.0.0.5:40000", "10.0.0.9:80"))
	tr.Handle(&ebpf.Event{Type: ebpf.EventClose, Sock: 1})
	saved := tr.Save()

	r, clk2 := newTestTracer(t, nil)
	clk2.t = clk.t.Add(DefaultConfig().DestinationTTL + time.Minute)
	r.Restore(saved)
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if ids := r.ContainerIDs(); len(ids) != 0 {
		t.Fatalf("state of %v outlived destination_ttl across the restart", ids)
	}
}

// An unchanged container saves the same bytes every time.
func TestSaveIsStable(t *testing.T) {
	tr, _ := newTestTracer(t, nil)
	for i := range 30 {
		tr.Handle(connectEv(ebpf.EventConnect, uint64(i+1), 100, "10.0.0.5:40000", fmt.Sprintf("10.0.%d.9:80", i)))
		tr.Handle(connectEv(ebpf.EventAccept, uint64(100+i), 200, fmt.Sprintf("10.0.0.%d:%d", i, 5000+i), "10.0.0.5:40001"))
	}
	first, _ := json.Marshal(tr.Save())
	for range 20 {
		if again, _ := json.Marshal(tr.Save()); !bytes.Equal(again, first) {
			t.Fatal("two saves of unchanged state differ")
		}
	}
}
