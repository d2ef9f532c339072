package requeststats

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

// snapshot is every series of a container with its count, histogram and start, sorted.
func snapshot(s *Store, id string) []string {
	var cs ContainerStats
	s.ContainerStats(id, &cs)
	var out []string
	for _, r := range cs.Requests {
		out = append(out, fmt.Sprintf("req %v %v %s %s %s %v n=%d start=%d", r.Protocol, r.Inbound, r.Destination, r.ActualDestination, r.Status.Label(), r.Method, r.Count, r.Start.Unix()))
	}
	for i := range cs.Durations {
		h := &cs.Durations[i]
		out = append(out, fmt.Sprintf("hist %v %v %s %s %v sum=%.3f start=%d", h.Protocol, h.Inbound, h.Destination, h.ActualDestination, h.Counts, h.Sum, h.Start.Unix()))
	}
	sort.Strings(out)
	return out
}

// TestRecentCountsAsRecord: counting through a connection's Recent gives exactly what Record
// gives, whatever changes between two requests of the connection — labels, container, an
// expiry or a Forget that deleted the cached series, a series limit, a protocol without
// histogram.
func TestRecentCountsAsRecord(t *testing.T) {
	type rec struct {
		container string
		proto     l7.Protocol
		inbound   bool
		dst       Destination
		status    int
		method    l7.Method
	}
	a := dst("10.0.0.5:80", "10.1.0.9:8080")
	b := dst("10.0.0.6:80", "10.0.0.6:80")
	fq := a
	fq.FQDN = "api.example.com"
	http := func(c string, inbound bool, d Destination, status int) rec {
		return rec{container: c, proto: l7.ProtocolHTTP, inbound: inbound, dst: d, status: status}
	}
	steps := []struct {
		name    string
		records []rec
		advance time.Duration // then, before the records: the clock moves and the Store expires
		forget  string
	}{
		{name: "first", records: []rec{http("c", false, a, 200), http("c", false, a, 200), http("c", true, Destination{}, 200)}},
		{name: "status changes", records: []rec{http("c", false, a, 500), http("c", false, a, 200), http("c", false, a, 500)}},
		{name: "destination and fqdn change", records: []rec{http("c", false, b, 200), http("c", false, fq, 200), http("c", false, a, 200)}},
		{name: "container changes", records: []rec{http("d", false, a, 200), http("c", false, a, 200)}},
		{name: "http2 folds into http", records: []rec{{container: "c", proto: l7.ProtocolHTTP2, dst: a, status: 200}, http("c", false, a, 200)}},
		{name: "no histogram", records: []rec{{container: "c", proto: l7.ProtocolNATS, dst: a, method: l7.MethodProduce}, {container: "c", proto: l7.ProtocolNATS, dst: a, method: l7.MethodProduce}}},
		{name: "expired in between", advance: 11 * time.Minute, records: []rec{http("c", false, a, 200), http("c", true, Destination{}, 200)}},
		{name: "partly expired", advance: 6 * time.Minute, records: []rec{http("c", false, a, 200)}},
		{name: "more", advance: 6 * time.Minute, records: []rec{http("c", false, a, 200), http("c", false, b, 200)}},
		{name: "forgotten in between", forget: "c", records: []rec{http("c", false, a, 200), http("c", true, Destination{}, 200)}},
		{name: "limit", records: []rec{http("c", false, a, 201), http("c", false, a, 202), http("c", false, a, 203), http("c", false, a, 203), http("c", false, a, 200)}},
	}
	clk := &clock{time.Unix(1000, 0)}
	cfg := Config{MaxSeriesPerContainer: 8}
	plain, cached := New(cfg, clk.now), New(cfg, clk.now)
	var out, in Recent // one connection each way, reused across every step
	for _, st := range steps {
		if st.advance > 0 {
			clk.t = clk.t.Add(st.advance)
			plain.Expire(clk.t)
			cached.Expire(clk.t)
		}
		if st.forget != "" {
			plain.Forget(st.forget)
			cached.Forget(st.forget)
		}
		for i, r := range st.records {
			clk.t = clk.t.Add(time.Second)
			d := time.Duration(i+1) * 3 * time.Millisecond
			plain.Record(r.container, r.proto, r.inbound, r.dst, l7.HTTPStatus(r.status), r.method, d)
			rc := &out
			if r.inbound {
				rc = &in
			}
			cached.RecordRecent(rc, clk.t, r.container, r.proto, r.inbound, r.dst, l7.HTTPStatus(r.status), r.method, d)
		}
		for _, id := range []string{"c", "d"} {
			want, got := snapshot(plain, id), snapshot(cached, id)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: container %s through Recent\n%q\nwant (Record)\n%q", st.name, id, got, want)
			}
		}
		if plain.Stats() != cached.Stats() {
			t.Fatalf("%s: stats %+v, want %+v", st.name, cached.Stats(), plain.Stats())
		}
	}
	if plain.Stats().DroppedSeries == 0 || plain.Stats().ExpiredSeries == 0 {
		t.Fatalf("the steps never hit the limit or the expiry: %+v", plain.Stats())
	}
	if len(snapshot(plain, "c")) == 0 {
		t.Fatal("nothing recorded")
	}
}
