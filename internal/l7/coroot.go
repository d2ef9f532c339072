package l7

// The Prometheus names, labels, status values and histogram buckets of coroot-node-agent's
// L7 metrics, which Coroot's server and dashboards read. They were read from coroot's public
// sources (the files and commits are listed in CONTRACT.md, "coroot-node-agent's metrics");
// this table is our own statement of those facts, checked by coroot_test.go.

// MetricNames are the Prometheus names of one protocol's metrics. An empty name: coroot
// has no such metric.
type MetricNames struct {
	// Requests is the outbound counter: labels destination, actual_destination, status (and
	// method for RabbitMQ and NATS). DNS: request_type, domain, status and no destination.
	Requests string
	// Duration is the outbound histogram: labels destination, actual_destination (DNS:
	// none). The name ends in _total: the series are <name>_bucket, _sum and _count.
	Duration string
	// InboundRequests is the counter at the server: label status only.
	InboundRequests string
	// InboundDuration is the histogram at the server: no labels.
	InboundDuration string
	// Queries says the counters count "queries" rather than "requests".
	Queries bool
}

// Metrics returns coroot-node-agent's metric names for protocol p. HTTP/2 and gRPC share
// HTTP's metrics. It does not allocate.
func Metrics(p Protocol) MetricNames {
	if p >= protocolCount {
		return MetricNames{}
	}
	return metricNames[p]
}

var metricNames [protocolCount]MetricNames

func init() {
	for p := range metricNames {
		metricNames[p] = buildMetrics(Protocol(p))
	}
}

func buildMetrics(p Protocol) MetricNames {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2:
		return requestMetrics("http")
	case ProtocolPostgres:
		return queryMetrics("postgres")
	case ProtocolMySQL:
		return queryMetrics("mysql")
	case ProtocolRedis:
		return queryMetrics("redis")
	case ProtocolMemcached:
		return queryMetrics("memcached")
	case ProtocolMongo:
		return queryMetrics("mongo")
	case ProtocolKafka:
		return requestMetrics("kafka")
	case ProtocolCassandra:
		return queryMetrics("cassandra")
	case ProtocolDNS:
		return requestMetrics("dns")
	case ProtocolClickHouse:
		return queryMetrics("clickhouse")
	case ProtocolZooKeeper:
		return requestMetrics("zookeeper")
	case ProtocolRabbitMQ:
		return MetricNames{Requests: "container_rabbitmq_messages_total"}
	case ProtocolNATS:
		return MetricNames{Requests: "container_nats_messages_total"}
	}
	return MetricNames{}
}

func requestMetrics(p string) MetricNames {
	return MetricNames{
		Requests:        "container_" + p + "_requests_total",
		Duration:        "container_" + p + "_requests_duration_seconds_total",
		InboundRequests: "container_" + p + "_inbound_requests_total",
		InboundDuration: "container_" + p + "_inbound_requests_duration_seconds_total",
	}
}

func queryMetrics(p string) MetricNames {
	return MetricNames{
		Requests:        "container_" + p + "_queries_total",
		Duration:        "container_" + p + "_queries_duration_seconds_total",
		InboundRequests: "container_" + p + "_inbound_queries_total",
		InboundDuration: "container_" + p + "_inbound_queries_duration_seconds_total",
		Queries:         true,
	}
}

// HistogramBuckets are the upper bounds (seconds) of every L7 duration histogram: coroot
// creates them without buckets, so they are the Prometheus client's DefBuckets.
var HistogramBuckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// IPToFQDNMetric is the node-level gauge (value 1) mapping the addresses DNS answers gave
// to the name asked; labels ip and fqdn.
const IPToFQDNMetric = "ip_to_fqdn"

// DomainOverflow is the domain label value of the names beyond a container's cap.
const DomainOverflow = "~other"

// DefaultMaxDomainsPerContainer is coroot's default cap of distinct domains per container
// (its max-fqdns-per-container flag).
const DefaultMaxDomainsPerContainer = 50

// Label names.
const (
	LabelDestination       = "destination"
	LabelActualDestination = "actual_destination"
	LabelStatus            = "status"
	LabelMethod            = "method"
	LabelRequestType       = "request_type"
	LabelDomain            = "domain"
	LabelIP                = "ip"
	LabelFQDN              = "fqdn"
)
