package requeststats

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/l7"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func dst(addr, actual string) Destination {
	return Destination{Addr: netip.MustParseAddrPort(addr), Actual: netip.MustParseAddrPort(actual)}
}

func requests(cs *ContainerStats) []string {
	var out []string
	for _, r := range cs.Requests {
		out = append(out, fmt.Sprintf("%s %s/%s %s %v %s=%d", l7.Metrics(r.Protocol).Requests, r.Destination, r.ActualDestination, r.Status.Label(), r.Inbound, r.Method, r.Count))
	}
	sort.Strings(out)
	return out
}

func TestRecord(t *testing.T) {
	clk := &clock{time.Unix(1000, 0)}
	s := New(Config{}, clk.now)
	d := dst("10.96.0.10:80", "10.1.0.5:8080")
	s.Record("c1", l7.ProtocolHTTP, false, d, l7.HTTPStatus(200), l7.MethodNone, 3*time.Millisecond)
	s.Record("c1", l7.ProtocolHTTP2, false, d, l7.HTTPStatus(200), l7.MethodNone, 30*time.Millisecond)
	s.Record("c1", l7.ProtocolHTTP2, false, d, l7.GRPCStatus(5), l7.MethodNone, 2*time.Second)
	s.Record("c1", l7.ProtocolPostgres, true, d, l7.StatusFailed, l7.MethodNone, 20*time.Second)
	s.Record("c1", l7.ProtocolRabbitMQ, false, dst("10.0.0.9:5672", "10.0.0.9:5672"), l7.StatusOK, l7.MethodProduce, 0)
	s.Record("c1", l7.ProtocolRabbitMQ, true, d, l7.StatusOK, l7.MethodConsume, 0)             // no inbound messages metric
	s.Record("c1", l7.ProtocolDNS, false, d, l7.DNSStatus(0), l7.MethodNone, time.Millisecond) // RecordDNS's business
	var cs ContainerStats
	if !s.ContainerStats("c1", &cs) {
		t.Fatal("no stats")
	}
	want := []string{
		"container_http_requests_total 10.96.0.10:80/10.1.0.5:8080 200 false =2",
		"container_http_requests_total 10.96.0.10:80/10.1.0.5:8080 grpc:NotFound false =1",
		"container_postgres_queries_total / failed true =1",
		"container_rabbitmq_messages_total 10.0.0.9:5672/10.0.0.9:5672 ok false produce=1",
	}
	if got := requests(&cs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests\n got %v\nwant %v", got, want)
	}
	if len(cs.Durations) != 2 {
		t.Fatalf("durations: %+v", cs.Durations)
	}
	for _, h := range cs.Durations {
		switch {
		case h.Protocol == l7.ProtocolHTTP && !h.Inbound:
			// 3ms → le 0.005; 30ms → le 0.05; 2s → le 2.5
			want := [12]uint64{1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0}
			if h.Counts != want || h.Count != 3 || h.Destination != "10.96.0.10:80" {
				t.Errorf("http histogram %+v", h)
			}
		case h.Protocol == l7.ProtocolPostgres && h.Inbound:
			if h.Counts[11] != 1 || h.Sum != 20 || h.Destination != "" {
				t.Errorf("postgres inbound histogram %+v", h)
			}
		default:
			t.Errorf("unexpected histogram %+v", h)
		}
	}
	if !cs.Requests[0].Start.Equal(clk.t) {
		t.Errorf("start %v", cs.Requests[0].Start)
	}
}

func TestSeriesLimit(t *testing.T) {
	s := New(Config{MaxSeriesPerContainer: 3}, nil)
	for i := 0; i < 10; i++ {
		s.Record("c", l7.ProtocolRedis, false, dst(fmt.Sprintf("10.0.0.%d:6379", i+1), "10.0.0.1:6379"), l7.StatusOK, 0, time.Millisecond)
	}
	var cs ContainerStats
	s.ContainerStats("c", &cs)
	if n := len(cs.Requests) + len(cs.Durations); n != 3 {
		t.Errorf("%d series, want 3", n)
	}
	// 1st: counter+histogram (2 series), 2nd: counter (3), then every request is dropped;
	// the 2nd request's histogram too
	if st := s.Stats(); st.DroppedSeries != 9 {
		t.Errorf("dropped %d, want 9", st.DroppedSeries)
	}
}

func dnsInfo(typ uint16, rcode uint8, name string, ips ...string) *l7.DNSInfo {
	i := &l7.DNSInfo{Type: typ, Rcode: rcode, Domain: []byte(name)}
	for _, ip := range ips {
		i.IPs[i.NumIPs] = netip.MustParseAddr(ip)
		i.NumIPs++
	}
	return i
}

func TestRecordDNS(t *testing.T) {
	clk := &clock{time.Unix(1000, 0)}
	s := New(Config{MaxDomainsPerContainer: 2}, clk.now)
	s.RecordDNS("c", false, dnsInfo(1, 0, "a.example", "10.0.0.1", "10.0.0.2"), time.Millisecond)
	s.RecordDNS("c", false, dnsInfo(1, 0, "a.example", "10.0.0.1"), time.Millisecond)
	s.RecordDNS("c", false, dnsInfo(28, 0, "a.example"), time.Millisecond)            // skipped like coroot
	s.RecordDNS("c", false, dnsInfo(1, 3, "b.example"), time.Millisecond)             // nxdomain
	s.RecordDNS("c", false, dnsInfo(1, 0, "c.example", "10.0.0.3"), time.Millisecond) // third domain: ~other
	s.RecordDNS("c", false, dnsInfo(1, 9, "d.example"), time.Millisecond)             // RCODE without a name: dropped
	s.RecordDNS("dnsd", true, dnsInfo(1, 2, "x"), time.Millisecond)
	var cs ContainerStats
	s.ContainerStats("c", &cs)
	var got []string
	for _, d := range cs.DNS {
		got = append(got, fmt.Sprintf("%s %s %s=%d", d.RequestType, d.Domain, d.Status.Label(), d.Count))
	}
	sort.Strings(got)
	want := []string{"TypeA a.example ok=2", "TypeA b.example nxdomain=1", "TypeA ~other ok=1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dns\n got %v\nwant %v", got, want)
	}
	if len(cs.DNSDurations) != 1 || cs.DNSDurations[0].Count != 4 {
		t.Errorf("dns durations %+v", cs.DNSDurations)
	}
	st := s.Stats()
	if st.FoldedDomains != 1 || st.DroppedDNS != 1 || st.SkippedAAAANil != 1 {
		t.Errorf("stats %+v", st)
	}
	pairs := map[string]string{}
	s.IPToFQDN(func(ip netip.Addr, fqdn string) { pairs[ip.String()] = fqdn })
	if fmt.Sprint(pairs) != "map[10.0.0.1:a.example 10.0.0.2:a.example 10.0.0.3:c.example]" {
		t.Errorf("ip_to_fqdn %v", pairs)
	}
	s.ContainerStats("dnsd", &cs)
	if len(cs.DNS) != 1 || !cs.DNS[0].Inbound || cs.DNS[0].Status.Label() != "servfail" || cs.DNS[0].Domain != "" {
		t.Errorf("inbound dns %+v", cs.DNS)
	}
	if f, ok := s.LookupFQDN(netip.MustParseAddr("10.0.0.2")); !ok || f != "a.example" {
		t.Errorf("lookup %q %v", f, ok)
	}
}

func TestFQDNDestination(t *testing.T) {
	s := New(Config{}, nil)
	d := dst("93.184.216.34:443", "93.184.216.34:443")
	d.FQDN = "example.com"
	s.Record("c", l7.ProtocolHTTP, false, d, l7.HTTPStatus(200), 0, time.Millisecond)
	var cs ContainerStats
	s.ContainerStats("c", &cs)
	if cs.Requests[0].Destination != "example.com:443" || cs.Requests[0].ActualDestination != "93.184.216.34:443" {
		t.Errorf("%+v", cs.Requests[0])
	}
}

func TestExpire(t *testing.T) {
	clk := &clock{time.Unix(1000, 0)}
	s := New(Config{TTL: time.Minute}, clk.now)
	s.Record("c", l7.ProtocolKafka, false, dst("10.0.0.1:9092", "10.0.0.1:9092"), l7.StatusOK, 0, time.Millisecond)
	s.RecordDNS("c", false, dnsInfo(1, 0, "k.example", "10.0.0.1"), time.Millisecond)
	clk.t = clk.t.Add(30 * time.Second)
	s.Record("c", l7.ProtocolKafka, false, dst("10.0.0.2:9092", "10.0.0.2:9092"), l7.StatusOK, 0, time.Millisecond)
	clk.t = clk.t.Add(40 * time.Second)
	s.Expire(clk.t)
	var cs ContainerStats
	s.ContainerStats("c", &cs)
	if len(cs.Requests) != 1 || cs.Requests[0].Destination != "10.0.0.2:9092" || len(cs.DNS) != 0 {
		t.Errorf("after expiry: %+v", cs)
	}
	if _, ok := s.LookupFQDN(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("ip_to_fqdn pair not expired")
	}
	// the expired series starts again from zero under a new start time
	s.Record("c", l7.ProtocolKafka, false, dst("10.0.0.1:9092", "10.0.0.1:9092"), l7.StatusOK, 0, time.Millisecond)
	s.ContainerStats("c", &cs)
	for _, r := range cs.Requests {
		if r.Destination == "10.0.0.1:9092" && (r.Count != 1 || !r.Start.Equal(clk.t)) {
			t.Errorf("recreated series %+v", r)
		}
	}
	clk.t = clk.t.Add(2 * time.Minute)
	s.Expire(clk.t)
	if s.ContainerStats("c", &cs) {
		t.Error("container not forgotten")
	}
}

func BenchmarkRecord(b *testing.B) {
	s := New(Config{}, nil)
	d := dst("10.96.0.10:80", "10.1.0.5:8080")
	s.Record("/docker/abc", l7.ProtocolHTTP, false, d, l7.HTTPStatus(200), 0, time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Record("/docker/abc", l7.ProtocolHTTP, false, d, l7.HTTPStatus(200), 0, time.Millisecond)
	}
}

func BenchmarkRecordDNS(b *testing.B) {
	s := New(Config{}, nil)
	info := dnsInfo(1, 0, "api.example.com", "10.0.0.1")
	s.RecordDNS("/docker/abc", false, info, time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.RecordDNS("/docker/abc", false, info, time.Millisecond)
	}
}
