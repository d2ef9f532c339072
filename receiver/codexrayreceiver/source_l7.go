package codexrayreceiver

import (
	"net/netip"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/codexray/codexray-node-agent/internal/l7"
	"github.com/codexray/codexray-node-agent/internal/l7/requeststats"
	"github.com/codexray/codexray-node-agent/internal/l7tracer"
	"github.com/codexray/codexray-node-agent/internal/tracer"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// EBPFConfig is the `ebpf` section: the TCP tracer's settings and, under `l7`, the L7
// capture's.
type EBPFConfig struct {
	tracer.Config `mapstructure:",squash"`
	L7            l7tracer.Config `mapstructure:"l7"`
}

// Validate checks the L7 settings, also while disabled; the tracer's are checked by the
// embedded Config's own Validate.
func (c *EBPFConfig) Validate() error { return c.L7.Validate() }

func defaultEBPFConfig() EBPFConfig {
	return EBPFConfig{Config: tracer.DefaultConfig(), L7: l7tracer.DefaultConfig()}
}

type (
	mb         = metadata.MetricsBuilder
	ts         = pcommon.Timestamp
	counterOut func(*mb, ts, ts, int64, string, string, string)
	histOut    func(*mb, ts, ts, []uint64, float64, uint64, string, string)
	counterIn  func(*mb, ts, ts, int64, string)
	histIn     func(*mb, ts, ts, []uint64, float64, uint64)
)

// l7Recorders are the generated recorders of one protocol's four metrics.
type l7Recorders struct {
	out     counterOut
	outHist histOut
	in      counterIn
	inHist  histIn
}

// l7Metrics maps each request/response protocol to its metrics (l7.Metrics names them; the
// names in metadata.yaml are the ones that come out of the Prometheus exporter as those).
// HTTP/2 is counted as HTTP, DNS, RabbitMQ and NATS have labels of their own.
var l7Metrics = map[l7.Protocol]l7Recorders{
	l7.ProtocolHTTP: {
		(*mb).RecordContainerHTTPRequestsDataPointWithStart, (*mb).RecordContainerHTTPRequestsDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerHTTPInboundRequestsDataPointWithStart, (*mb).RecordContainerHTTPInboundRequestsDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolPostgres: {
		(*mb).RecordContainerPostgresQueriesDataPointWithStart, (*mb).RecordContainerPostgresQueriesDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerPostgresInboundQueriesDataPointWithStart, (*mb).RecordContainerPostgresInboundQueriesDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolMySQL: {
		(*mb).RecordContainerMysqlQueriesDataPointWithStart, (*mb).RecordContainerMysqlQueriesDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerMysqlInboundQueriesDataPointWithStart, (*mb).RecordContainerMysqlInboundQueriesDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolRedis: {
		(*mb).RecordContainerRedisQueriesDataPointWithStart, (*mb).RecordContainerRedisQueriesDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerRedisInboundQueriesDataPointWithStart, (*mb).RecordContainerRedisInboundQueriesDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolMemcached: {
		(*mb).RecordContainerMemcachedQueriesDataPointWithStart, (*mb).RecordContainerMemcachedQueriesDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerMemcachedInboundQueriesDataPointWithStart, (*mb).RecordContainerMemcachedInboundQueriesDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolMongo: {
		(*mb).RecordContainerMongoQueriesDataPointWithStart, (*mb).RecordContainerMongoQueriesDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerMongoInboundQueriesDataPointWithStart, (*mb).RecordContainerMongoInboundQueriesDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolKafka: {
		(*mb).RecordContainerKafkaRequestsDataPointWithStart, (*mb).RecordContainerKafkaRequestsDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerKafkaInboundRequestsDataPointWithStart, (*mb).RecordContainerKafkaInboundRequestsDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolCassandra: {
		(*mb).RecordContainerCassandraQueriesDataPointWithStart, (*mb).RecordContainerCassandraQueriesDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerCassandraInboundQueriesDataPointWithStart, (*mb).RecordContainerCassandraInboundQueriesDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolClickHouse: {
		(*mb).RecordContainerClickhouseQueriesDataPointWithStart, (*mb).RecordContainerClickhouseQueriesDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerClickhouseInboundQueriesDataPointWithStart, (*mb).RecordContainerClickhouseInboundQueriesDurationSecondsTotalDataPointWithStart,
	},
	l7.ProtocolZooKeeper: {
		(*mb).RecordContainerZookeeperRequestsDataPointWithStart, (*mb).RecordContainerZookeeperRequestsDurationSecondsTotalDataPointWithStart,
		(*mb).RecordContainerZookeeperInboundRequestsDataPointWithStart, (*mb).RecordContainerZookeeperInboundRequestsDurationSecondsTotalDataPointWithStart,
	},
}

// recordL7 writes one container's L7 series, each with its entry's start (startOf).
func recordL7(m *mb, now ts, st *requeststats.ContainerStats) {
	for i := range st.Requests {
		r := &st.Requests[i]
		start := startOf(r.Start, now)
		status := r.Status.Label()
		switch {
		case r.Protocol == l7.ProtocolRabbitMQ:
			m.RecordContainerRabbitmqMessagesDataPointWithStart(start, now, int64(r.Count), r.Destination, r.ActualDestination, status, r.Method.String())
		case r.Protocol == l7.ProtocolNATS:
			m.RecordContainerNatsMessagesDataPointWithStart(start, now, int64(r.Count), r.Destination, r.ActualDestination, status, r.Method.String())
		case r.Inbound:
			if rec, ok := l7Metrics[r.Protocol]; ok {
				rec.in(m, start, now, int64(r.Count), status)
			}
		default:
			if rec, ok := l7Metrics[r.Protocol]; ok {
				rec.out(m, start, now, int64(r.Count), r.Destination, r.ActualDestination, status)
			}
		}
	}
	for i := range st.Durations {
		h := &st.Durations[i]
		rec, ok := l7Metrics[h.Protocol]
		if !ok {
			continue
		}
		start := startOf(h.Start, now)
		if h.Inbound {
			rec.inHist(m, start, now, h.Counts[:], h.Sum, h.Count)
		} else {
			rec.outHist(m, start, now, h.Counts[:], h.Sum, h.Count, h.Destination, h.ActualDestination)
		}
	}
	for i := range st.DNS {
		d := &st.DNS[i]
		start := startOf(d.Start, now)
		if d.Inbound {
			m.RecordContainerDNSInboundRequestsDataPointWithStart(start, now, int64(d.Count), d.Status.Label())
		} else {
			m.RecordContainerDNSRequestsDataPointWithStart(start, now, int64(d.Count), d.RequestType, d.Domain, d.Status.Label())
		}
	}
	for i := range st.DNSDurations {
		h := &st.DNSDurations[i]
		start := startOf(h.Start, now)
		if h.Inbound {
			m.RecordContainerDNSInboundRequestsDurationSecondsTotalDataPointWithStart(start, now, h.Counts[:], h.Sum, h.Count)
		} else {
			m.RecordContainerDNSRequestsDurationSecondsTotalDataPointWithStart(start, now, h.Counts[:], h.Sum, h.Count)
		}
	}
}

// recordL7Node writes the node's ip_to_fqdn pairs and the L7 capture's self-metrics.
func recordL7Node(m *mb, now ts, lt *l7tracer.Tracer) {
	lt.IPToFQDN(func(ip netip.Addr, fqdn string) { m.RecordIPToFQDNDataPoint(now, 1, ip.String(), fqdn) })
	st := lt.Stats()
	m.RecordCodexrayL7SegmentsReadDataPoint(now, int64(st.Records))
	m.RecordCodexrayL7SegmentsLostDataPoint(now, int64(st.Kernel.Lost))
	m.RecordCodexrayL7RequestsDataPoint(now, int64(st.Tracker.Requests))
	m.RecordCodexrayL7ConnectionsDataPoint(now, int64(st.Connections))
	for _, e := range []struct {
		reason string
		n      uint64
	}{
		{"l7_decode_error", st.DecodeErrors + st.Tracker.DecodeErrors},
		{"l7_unattributed", st.Unattributed},
		{"l7_gap", st.Tracker.Gaps},
		{"l7_lost_sync", st.Tracker.LostSync},
		{"l7_false_positive", st.Tracker.FalsePositives},
		{"l7_hpack_reset", st.Tracker.HPACKResets},
		{"l7_unanswered", st.Tracker.Unanswered},
		{"l7_unmatched", st.Tracker.Unmatched},
		{"l7_unsupported", st.Tracker.Unsupported},
		{"l7_truncated_digest", st.Kernel.Truncated},
		{"l7_dns_rcode_unnamed", st.Store.DroppedDNS},
		{"l7_dns_aaaa_without_address", st.Store.SkippedAAAANil},
	} {
		m.RecordCodexraySourceErrorsDataPoint(now, int64(e.n), "ebpf", e.reason)
	}
	for _, e := range []struct {
		limit string
		n     uint64
	}{
		{"l7_series", st.Store.DroppedSeries},
		{"l7_domains", st.Store.FoldedDomains},
		{"l7_ip_to_fqdn", st.Store.DroppedIPFQDN},
		{"l7_connections", st.Tracker.Evicted},
		{"l7_bulk_segments", st.Kernel.Suppressed},
	} {
		m.RecordCodexrayLimitsDroppedDataPoint(now, int64(e.n), e.limit)
	}
}
