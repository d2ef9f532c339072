package requeststats

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

// filled is a Store with every kind of series: outbound requests to an address and to a name
// DNS answered, inbound, messages with a method, DNS both ways, an ip→fqdn pair; their start
// times differ.
func filled(clk *clock, cfg Config) *Store {
	s := New(cfg, clk.now)
	s.RecordDNS("c1", false, dnsInfo(1, 0, "db.example.com", "10.0.0.7"), 2*time.Millisecond)
	clk.t = clk.t.Add(time.Second)
	web := dst("10.96.0.10:80", "10.1.0.5:8080")
	s.Record("c1", l7.ProtocolHTTP, false, web, l7.HTTPStatus(200), l7.MethodNone, 3*time.Millisecond)
	s.Record("c1", l7.ProtocolHTTP2, false, web, l7.GRPCStatus(5), l7.MethodNone, 2*time.Second)
	clk.t = clk.t.Add(time.Second)
	db := dst("10.0.0.7:5432", "10.0.0.7:5432")
	db.FQDN = "db.example.com"
	s.Record("c1", l7.ProtocolPostgres, false, db, l7.StatusOK, l7.MethodNone, 40*time.Millisecond)
	s.Record("c1", l7.ProtocolPostgres, false, db, l7.StatusFailed, l7.MethodNone, 400*time.Millisecond)
	s.Record("c1", l7.ProtocolHTTP, true, Destination{}, l7.HTTPStatus(503), l7.MethodNone, 20*time.Second)
	s.Record("c1", l7.ProtocolRabbitMQ, false, dst("10.0.0.9:5672", "10.0.0.9:5672"), l7.StatusOK, l7.MethodProduce, 0)
	s.RecordDNS("c1", true, dnsInfo(1, 3, ""), time.Millisecond)
	clk.t = clk.t.Add(time.Second)
	s.Record("c2", l7.ProtocolRedis, false, dst("10.0.0.3:6379", "10.0.0.3:6379"), l7.StatusOK, l7.MethodNone, time.Millisecond)
	s.RecordDNS("c2", false, dnsInfo(28, 0, "cache.example.com", "fd00::3"), time.Millisecond)
	return s
}

// roundTrip saves s, through JSON as the receiver stores it, and restores it in a new Store.
func roundTrip(t *testing.T, s *Store, cfg Config, now func() time.Time) (*Store, error) {
	t.Helper()
	b, err := json.Marshal(s.Save())
	if err != nil {
		t.Fatal(err)
	}
	f, err := json.Marshal(s.SaveFQDNs())
	if err != nil {
		t.Fatal(err)
	}
	var saved []SavedContainer
	var fqdns []SavedFQDN
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(f, &fqdns); err != nil {
		t.Fatal(err)
	}
	r := New(cfg, now)
	err = r.Restore(saved, fqdns)
	return r, err
}

func stats(s *Store, id string) ContainerStats {
	var cs ContainerStats
	s.ContainerStats(id, &cs)
	slices.SortFunc(cs.Requests, func(a, b RequestCount) int {
		return compareStrings(a.Destination+a.Status.Label()+a.Protocol.String(), b.Destination+b.Status.Label()+b.Protocol.String())
	})
	slices.SortFunc(cs.Durations, func(a, b DurationHistogram) int {
		return compareStrings(a.Destination+a.Protocol.String(), b.Destination+b.Protocol.String())
	})
	slices.SortFunc(cs.DNS, func(a, b DNSCount) int { return compareStrings(a.Domain+a.Status.Label(), b.Domain+b.Status.Label()) })
	slices.SortFunc(cs.DNSDurations, func(a, b DurationHistogram) int { return compareBool(a.Inbound, b.Inbound) })
	return cs
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestSaveRestoreRoundTrip(t *testing.T) {
	clk := &clock{time.Unix(1000, 0).UTC()}
	s := filled(clk, Config{})
	r, err := roundTrip(t, s, Config{}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		want, got := stats(s, id), stats(r, id)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s restored\n got %+v\nwant %+v", id, got, want)
		}
	}
	c1 := stats(r, "c1")
	if len(c1.Requests) != 6 || len(c1.Durations) != 3 || len(c1.DNS) != 2 || len(c1.DNSDurations) != 2 {
		t.Fatalf("c1 restored: %+v", c1)
	}
	if !reflect.DeepEqual(s.Save(), r.Save()) || !reflect.DeepEqual(s.SaveFQDNs(), r.SaveFQDNs()) {
		t.Error("the restored Store saves other bytes than the one it was saved from")
	}
	if fqdn, ok := r.LookupFQDN(netip.MustParseAddr("10.0.0.7")); !ok || fqdn != "db.example.com" {
		t.Errorf("ip_to_fqdn restored: %q %v", fqdn, ok)
	}

	// Recording continues the restored series under their start times: counts go on, a
	// destination named by DNS keeps its name.
	clk.t = clk.t.Add(time.Minute)
	db := dst("10.0.0.7:5432", "10.0.0.7:5432")
	if fqdn, ok := r.LookupFQDN(db.Addr.Addr()); ok {
		db.FQDN = fqdn
	}
	r.Record("c1", l7.ProtocolPostgres, false, db, l7.StatusOK, l7.MethodNone, 40*time.Millisecond)
	r.RecordDNS("c1", false, dnsInfo(1, 0, "db.example.com", "10.0.0.7"), 2*time.Millisecond)
	after := stats(r, "c1")
	var pg RequestCount
	for _, q := range after.Requests {
		if q.Protocol == l7.ProtocolPostgres && q.Status == l7.StatusOK {
			pg = q
		}
	}
	if pg.Count != 2 || pg.Destination != "db.example.com:5432" || !pg.Start.Equal(time.Unix(1002, 0)) {
		t.Errorf("postgres after the restore: %+v", pg)
	}
	for _, d := range after.DNS {
		if d.Domain == "db.example.com" && (d.Count != 2 || !d.Start.Equal(time.Unix(1000, 0))) {
			t.Errorf("dns after the restore: %+v", d)
		}
	}
	if len(after.Requests) != 6 || len(after.DNS) != 2 {
		t.Errorf("series added by recording after the restore: %+v", after)
	}
}

func TestRestoreLimitsAndTTL(t *testing.T) {
	for _, tc := range []struct {
		name            string
		cfg             Config
		idle            time.Duration // since the last request, at the first Expire
		wantLimited     int
		wantC1, wantC2  int // series
		wantIPs         int
		wantExpiredGone bool
	}{
		// c1 has 6 request counters, 3 histograms and 3 DNS counters (and 2 DNS histograms,
		// which no limit bounds), c2 3 series; the node 3 ip→fqdn pairs.
		{name: "all fit", wantC1: 12, wantC2: 3, wantIPs: 3},
		// Restored in Save's order: c1's first 4 request counters.
		{name: "series", cfg: Config{MaxSeriesPerContainer: 4}, wantLimited: 8, wantC1: 4, wantC2: 3, wantIPs: 3},
		// c1's api.example.com (the first) stays, db.example.com's series does not; c2's
		// only domain stays; the pair of 10.0.0.7 (the first).
		{name: "domains", cfg: Config{MaxDomainsPerContainer: 1, MaxIPToFQDN: 1}, wantLimited: 3, wantC1: 11, wantC2: 3, wantIPs: 1},
		{name: "ttl", cfg: Config{TTL: time.Minute}, idle: 2 * time.Minute, wantC1: 12, wantC2: 3, wantIPs: 3, wantExpiredGone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{time.Unix(1000, 0).UTC()}
			src := filled(clk, Config{})
			src.RecordDNS("c1", false, dnsInfo(1, 0, "api.example.com", "10.0.0.8"), time.Millisecond)
			restored, err := roundTrip(t, src, tc.cfg, clk.now)
			var re *RestoreError
			if tc.wantLimited == 0 && err != nil {
				t.Fatal(err)
			}
			if tc.wantLimited > 0 && (!errors.As(err, &re) || re.Limited != tc.wantLimited || re.Invalid != 0) {
				t.Fatalf("error %v, want %d beyond a limit", err, tc.wantLimited)
			}
			series := func(id string) int {
				cs := stats(restored, id)
				return len(cs.Requests) + len(cs.Durations) + len(cs.DNS)
			}
			if series("c1") != tc.wantC1 || series("c2") != tc.wantC2 {
				t.Errorf("series c1 %d c2 %d, want %d %d", series("c1"), series("c2"), tc.wantC1, tc.wantC2)
			}
			if n := len(restored.SaveFQDNs()); n != tc.wantIPs {
				t.Errorf("%d ip_to_fqdn pairs, want %d", n, tc.wantIPs)
			}
			// Recording into a full container is refused as before the restart.
			restored.Record("c1", l7.ProtocolMySQL, false, dst("10.0.0.11:3306", "10.0.0.11:3306"), l7.StatusOK, l7.MethodNone, time.Millisecond)
			if tc.name == "series" && series("c1") != 4 {
				t.Errorf("a series beyond the limit after the restore: %d", series("c1"))
			}
			clk.t = clk.t.Add(tc.idle)
			restored.Expire(clk.t)
			var ids []string
			restored.Containers(func(id string) { ids = append(ids, id) })
			if gone := len(ids) == 0; gone != tc.wantExpiredGone {
				t.Errorf("after Expire at +%v: containers %v", tc.idle, ids)
			}
			if tc.wantExpiredGone && (len(restored.SaveFQDNs()) != 0 || restored.Stats().ExpiredSeries == 0) {
				t.Errorf("ip_to_fqdn %v, expired %d", restored.SaveFQDNs(), restored.Stats().ExpiredSeries)
			}
		})
	}
}

func TestRestoreSkipsInvalid(t *testing.T) {
	at := time.Unix(1000, 0)
	ok := SavedCount{Protocol: l7.ProtocolHTTP, SavedDestination: SavedDestination{Addr: "10.0.0.1:80", Actual: "10.0.0.1:80"}, Status: 200, Count: 4, Start: at, LastActive: at}
	hist := SavedHistogram{Protocol: l7.ProtocolHTTP, Counts: make([]uint64, len(l7.HistogramBuckets)+1), Start: at, LastActive: at}
	for _, tc := range []struct {
		name   string
		change func(*SavedContainer)
	}{
		{"no id", func(c *SavedContainer) { c.ID = "" }},
		{"unknown protocol", func(c *SavedContainer) { c.Requests[0].Protocol = 99 }},
		{"http2 (counted as http)", func(c *SavedContainer) { c.Requests[0].Protocol = l7.ProtocolHTTP2 }},
		{"dns as a request", func(c *SavedContainer) { c.Requests[0].Protocol = l7.ProtocolDNS }},
		{"bad address", func(c *SavedContainer) { c.Requests[0].Addr = "10.0.0.1" }},
		{"inbound with a destination", func(c *SavedContainer) { c.Requests[0].Inbound = true }},
		{"inbound messages", func(c *SavedContainer) {
			c.Requests[0].Protocol, c.Requests[0].Inbound, c.Requests[0].SavedDestination = l7.ProtocolNATS, true, SavedDestination{}
		}},
		{"method", func(c *SavedContainer) { c.Requests[0].Method = 7 }},
		{"dns status on a request", func(c *SavedContainer) { c.Requests[0].Status = l7.DNSStatus(3) }},
		{"no status has that value", func(c *SavedContainer) { c.Requests[0].Status = 50 }},
		{"twice", func(c *SavedContainer) { c.Requests = append(c.Requests, c.Requests[0]) }},
		{"short histogram", func(c *SavedContainer) { h := hist; h.Counts = h.Counts[:3]; c.Durations = []SavedHistogram{h} }},
		{"histogram count", func(c *SavedContainer) { h := hist; h.Count = 5; c.Durations = []SavedHistogram{h} }},
		{"histogram of messages", func(c *SavedContainer) {
			h := hist
			h.Protocol = l7.ProtocolRabbitMQ
			c.Durations = []SavedHistogram{h}
		}},
		{"dns status", func(c *SavedContainer) { c.DNS = []SavedDNS{{Status: l7.HTTPStatus(200), Count: 1}} }},
		{"dns rcode without a name", func(c *SavedContainer) { c.DNS = []SavedDNS{{Status: l7.DNSStatus(9), Count: 1}} }},
		{"inbound dns with a domain", func(c *SavedContainer) { c.DNS = []SavedDNS{{Inbound: true, Domain: "x", Status: l7.DNSStatus(0)}} }},
		{"dns histogram protocol", func(c *SavedContainer) { c.DNSDurations = []SavedHistogram{hist} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := SavedContainer{ID: "c1", Requests: []SavedCount{ok}}
			tc.change(&sc)
			s := New(Config{}, nil)
			err := s.Restore([]SavedContainer{sc}, []SavedFQDN{{IP: "not an ip", FQDN: "x"}})
			var re *RestoreError
			if !errors.As(err, &re) || re.Invalid != 2 || re.First == nil {
				t.Fatalf("error %v, want the entry and the pair invalid", err)
			}
			if len(s.SaveFQDNs()) != 0 {
				t.Error("an invalid pair restored")
			}
		})
	}
	// A container the Store already holds is not overwritten.
	s := New(Config{}, func() time.Time { return at })
	s.Record("c1", l7.ProtocolHTTP, false, dst("10.0.0.1:80", "10.0.0.1:80"), 200, l7.MethodNone, time.Millisecond)
	err := s.Restore([]SavedContainer{{ID: "c1", Requests: []SavedCount{ok}}}, nil)
	var re *RestoreError
	if !errors.As(err, &re) || re.Existing != 1 {
		t.Fatalf("error %v", err)
	}
	if cs := stats(s, "c1"); cs.Requests[0].Count != 1 {
		t.Errorf("held series overwritten: %+v", cs.Requests)
	}
}

// A Recent filled before a restore must not count into a series the restore replaced: a
// container forgotten and then restored counts into its restored series.
func TestRestoreInvalidatesRecent(t *testing.T) {
	clk := &clock{time.Unix(1000, 0).UTC()}
	s := New(Config{}, clk.now)
	d := dst("10.0.0.1:80", "10.0.0.1:80")
	var rc Recent
	s.RecordRecent(&rc, time.Time{}, "c1", l7.ProtocolHTTP, false, d, 200, l7.MethodNone, time.Millisecond)
	saved := s.Save()
	saved[0].Requests[0].Count = 41
	saved[0].Durations[0].Counts[0], saved[0].Durations[0].Count = 41, 41
	s.Forget("c1")
	if err := s.Restore(saved, nil); err != nil {
		t.Fatal(err)
	}
	s.RecordRecent(&rc, time.Time{}, "c1", l7.ProtocolHTTP, false, d, 200, l7.MethodNone, time.Millisecond)
	s.RecordRecent(&rc, time.Time{}, "c1", l7.ProtocolHTTP, false, d, 200, l7.MethodNone, time.Millisecond)
	cs := stats(s, "c1")
	if len(cs.Requests) != 1 || cs.Requests[0].Count != 43 || cs.Durations[0].Count != 43 {
		t.Errorf("after the restore: %+v %+v", cs.Requests, cs.Durations)
	}

	// A restore invalidates every Recent; another container's next request still counts into
	// its live series.
	var other Recent
	s.RecordRecent(&other, time.Time{}, "c2", l7.ProtocolHTTP, false, d, 200, l7.MethodNone, time.Millisecond)
	if err := s.Restore([]SavedContainer{{ID: "c3", Requests: saved[0].Requests}}, nil); err != nil {
		t.Fatal(err)
	}
	s.RecordRecent(&other, time.Time{}, "c2", l7.ProtocolHTTP, false, d, 200, l7.MethodNone, time.Millisecond)
	if cs := stats(s, "c2"); cs.Requests[0].Count != 2 {
		t.Errorf("c2 after another restore: %+v", cs.Requests)
	}
}

// Saved bytes from storage may be anything (another version's, a damaged file): decoded as the
// receiver decodes them, they are restored or rejected with an error, never a panic, and a
// restored Store saves only entries that restore again without error.
func FuzzRestore(f *testing.F) {
	clk := &clock{time.Unix(1000, 0).UTC()}
	s := filled(clk, Config{})
	for _, c := range s.Save() {
		b, _ := json.Marshal(c)
		f.Add(b, []byte(`[{"ip":"10.0.0.7","fqdn":"db","last_seen":"2026-01-01T00:00:00Z"}]`))
	}
	f.Add([]byte(`{"id":"x","requests":[{"proto":255,"status":1,"n":1}]}`), []byte(`[{"ip":"::1"}]`))
	f.Add([]byte(`{"id":"x","durations":[{"proto":1,"counts":[1],"n":1}]}`), []byte(`null`))
	f.Add([]byte(`{"id":"x","dns":[{"domain":"a","status":2003,"n":1}],"dns_durations":[{"proto":10,"inbound":true,"counts":[0,0,0,0,0,0,0,0,0,0,0,0]}]}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, container, fqdns []byte) {
		var sc SavedContainer
		var fs []SavedFQDN
		if json.Unmarshal(container, &sc) != nil {
			return // the receiver skips (and counts) a record that does not decode
		}
		_ = json.Unmarshal(fqdns, &fs)
		r := New(Config{MaxSeriesPerContainer: 8, MaxDomainsPerContainer: 2, MaxIPToFQDN: 2}, clk.now)
		err := r.Restore([]SavedContainer{sc}, fs)
		var re *RestoreError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("error %v is no *RestoreError", err)
		}
		var cs ContainerStats
		r.ContainerStats(sc.ID, &cs)
		if len(cs.Requests)+len(cs.Durations)+len(cs.DNS) > 8 {
			t.Fatalf("%d series restored beyond the limit", len(cs.Requests)+len(cs.Durations)+len(cs.DNS))
		}
		again := New(Config{MaxSeriesPerContainer: 8, MaxDomainsPerContainer: 2, MaxIPToFQDN: 2}, clk.now)
		if err := again.Restore(r.Save(), r.SaveFQDNs()); err != nil {
			t.Fatalf("a restored Store saved what does not restore: %v", err)
		}
		r.Record(sc.ID, l7.ProtocolHTTP, false, dst("10.0.0.1:80", "10.0.0.1:80"), 200, l7.MethodNone, time.Millisecond)
		r.Expire(clk.t.Add(time.Hour))
	})
}
