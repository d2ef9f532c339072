package l7

import (
	"regexp"
	"strings"
	"testing"

	corootqueries "github.com/codexray/codexray-node-agent/test/coroot"
)

// TestCorootMetricNames states coroot-node-agent's L7 metric names as read from its
// containers/metrics.go (L7Requests, L7Latency, L7InboundRequests, L7InboundLatency; see
// CONTRACT.md for the files and commits).
func TestCorootMetricNames(t *testing.T) {
	want := map[Protocol][4]string{
		ProtocolHTTP:       {"container_http_requests_total", "container_http_requests_duration_seconds_total", "container_http_inbound_requests_total", "container_http_inbound_requests_duration_seconds_total"},
		ProtocolHTTP2:      {"container_http_requests_total", "container_http_requests_duration_seconds_total", "container_http_inbound_requests_total", "container_http_inbound_requests_duration_seconds_total"},
		ProtocolPostgres:   {"container_postgres_queries_total", "container_postgres_queries_duration_seconds_total", "container_postgres_inbound_queries_total", "container_postgres_inbound_queries_duration_seconds_total"},
		ProtocolRedis:      {"container_redis_queries_total", "container_redis_queries_duration_seconds_total", "container_redis_inbound_queries_total", "container_redis_inbound_queries_duration_seconds_total"},
		ProtocolMemcached:  {"container_memcached_queries_total", "container_memcached_queries_duration_seconds_total", "container_memcached_inbound_queries_total", "container_memcached_inbound_queries_duration_seconds_total"},
		ProtocolMySQL:      {"container_mysql_queries_total", "container_mysql_queries_duration_seconds_total", "container_mysql_inbound_queries_total", "container_mysql_inbound_queries_duration_seconds_total"},
		ProtocolMongo:      {"container_mongo_queries_total", "container_mongo_queries_duration_seconds_total", "container_mongo_inbound_queries_total", "container_mongo_inbound_queries_duration_seconds_total"},
		ProtocolKafka:      {"container_kafka_requests_total", "container_kafka_requests_duration_seconds_total", "container_kafka_inbound_requests_total", "container_kafka_inbound_requests_duration_seconds_total"},
		ProtocolCassandra:  {"container_cassandra_queries_total", "container_cassandra_queries_duration_seconds_total", "container_cassandra_inbound_queries_total", "container_cassandra_inbound_queries_duration_seconds_total"},
		ProtocolRabbitMQ:   {"container_rabbitmq_messages_total", "", "", ""},
		ProtocolNATS:       {"container_nats_messages_total", "", "", ""},
		ProtocolDNS:        {"container_dns_requests_total", "container_dns_requests_duration_seconds_total", "container_dns_inbound_requests_total", "container_dns_inbound_requests_duration_seconds_total"},
		ProtocolClickHouse: {"container_clickhouse_queries_total", "container_clickhouse_queries_duration_seconds_total", "container_clickhouse_inbound_queries_total", "container_clickhouse_inbound_queries_duration_seconds_total"},
		ProtocolZooKeeper:  {"container_zookeeper_requests_total", "container_zookeeper_requests_duration_seconds_total", "container_zookeeper_inbound_requests_total", "container_zookeeper_inbound_requests_duration_seconds_total"},
	}
	for p := Protocol(1); p < protocolCount; p++ {
		m := Metrics(p)
		w, ok := want[p]
		if !ok {
			t.Fatalf("%s: no expectation", p)
		}
		if got := [4]string{m.Requests, m.Duration, m.InboundRequests, m.InboundDuration}; got != w {
			t.Errorf("%s:\n got %v\nwant %v", p, got, w)
		}
	}
	if Metrics(ProtocolUnknown) != (MetricNames{}) {
		t.Error("unknown protocol has metric names")
	}
}

func TestCorootBuckets(t *testing.T) {
	// prometheus.DefBuckets, which coroot's HistogramOpts leave in place
	want := [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	if HistogramBuckets != want {
		t.Errorf("buckets %v", HistogramBuckets)
	}
}

func TestStatusLabels(t *testing.T) {
	tests := []struct {
		s      Status
		label  string
		failed bool
	}{
		{StatusOK, "ok", false},
		{StatusFailed, "failed", true},
		{StatusUnknown, "unknown", false},
		{HTTPStatus(200), "200", false},
		{HTTPStatus(404), "404", false},
		{HTTPStatus(503), "503", true},
		{HTTPStatus(99), "unknown", false},
		{GRPCStatus(0), "grpc:OK", false},
		{GRPCStatus(1), "grpc:Canceled", true},
		{GRPCStatus(4), "grpc:DeadlineExceeded", true},
		{GRPCStatus(16), "grpc:Unauthenticated", true},
		{GRPCStatus(17), "grpc:Code(17)", true},
		{DNSStatus(0), "ok", false},
		{DNSStatus(1), "format_error", false},
		{DNSStatus(2), "servfail", false},
		{DNSStatus(3), "nxdomain", false},
		{DNSStatus(4), "not_implemented", false},
		{DNSStatus(5), "refused", false},
		{DNSStatus(9), "", false},
	}
	for _, tt := range tests {
		if tt.s.Label() != tt.label || tt.s.Failed() != tt.failed {
			t.Errorf("%d: label %q failed %v, want %q %v", tt.s, tt.s.Label(), tt.s.Failed(), tt.label, tt.failed)
		}
	}
	if MethodProduce.String() != "produce" || MethodConsume.String() != "consume" {
		t.Error("method labels")
	}
}

// TestCorootServerQueries checks the table against what Coroot's server queries
// (test/coroot/queries.yaml, read from a newer Coroot tree than the node-agent files): every
// L7 metric it reads is one of ours, and every label it groups by is one we emit.
func TestCorootServerQueries(t *testing.T) {
	qs, err := corootqueries.Queries()
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]bool{}
	for p := Protocol(1); p < protocolCount; p++ {
		m := Metrics(p)
		for _, n := range []string{m.Requests, m.Duration, m.InboundRequests, m.InboundDuration} {
			if n == "" {
				continue
			}
			ours[n] = true
			if strings.Contains(n, "duration") {
				ours[n+"_bucket"], ours[n+"_sum"], ours[n+"_count"] = true, true, true
			}
		}
	}
	ours[IPToFQDNMetric] = true
	labels := map[string]bool{
		LabelDestination: true, LabelActualDestination: true, LabelStatus: true,
		LabelMethod: true, LabelRequestType: true, LabelDomain: true, LabelIP: true, LabelFQDN: true, "le": true, "app_id": true,
	}
	l7Metric := regexp.MustCompile(`^(container_(http|postgres|redis|memcached|mysql|mongo|kafka|cassandra|clickhouse|zookeeper|rabbitmq|nats|dns)_|ip_to_fqdn)`)
	seen := 0
	for _, q := range qs {
		for _, m := range q.Metrics {
			// A query the acceptance test does not check because its workload runs no server
			// of the protocol must read only metrics codexray emits.
			if q.Status == corootqueries.NotChecked && !ours[m] {
				t.Errorf("query %s is %s but reads %s, which the table does not have", q.Name, q.Status, m)
			}
			if !l7Metric.MatchString(m) {
				continue
			}
			seen++
			if !ours[m] {
				t.Errorf("query %s reads %s, which the table does not have", q.Name, m)
			}
			for _, l := range q.Labels {
				if !labels[l] {
					t.Errorf("query %s groups %s by %s", q.Name, m, l)
				}
			}
		}
	}
	if seen < 40 {
		t.Errorf("only %d L7 metrics in the queries: the file changed shape?", seen)
	}
}
