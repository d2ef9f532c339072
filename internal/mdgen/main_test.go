package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const receiverDir = "../../receiver/codexrayreceiver"

// TestGeneratedFilesAreFresh fails when metadata.yaml changed but `make generate` was not run.
func TestGeneratedFilesAreFresh(t *testing.T) {
	files, err := generateDir(receiverDir, "github.com/codexray/codexray-node-agent/receiver/codexrayreceiver")
	require.NoError(t, err)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(receiverDir, name))
		require.NoError(t, err, "%s is missing: run make generate", name)
		assert.Equal(t, string(want), string(got), "%s is stale: run make generate", name)
	}
}

// TestPrometheusNamesMatchCoroot pins the exported names users' dashboards depend on.
func TestPrometheusNamesMatchCoroot(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(receiverDir, "metadata.yaml"))
	require.NoError(t, err)
	md, err := ParseMetadata(data)
	require.NoError(t, err)
	want := map[string]string{
		"container.net.tcp.successful_connects":    "container_net_tcp_successful_connects_total",
		"container.net.tcp.failed_connects":        "container_net_tcp_failed_connects_total",
		"container.net.tcp.connection_time":        "container_net_tcp_connection_time_seconds_total",
		"container.net.tcp.active_connections":     "container_net_tcp_active_connections",
		"container.net.tcp.listen_info":            "container_net_tcp_listen_info",
		"container.net.tcp.retransmits":            "container_net_tcp_retransmits_total",
		"container.net.tcp.bytes_sent":             "container_net_tcp_bytes_sent_total",
		"container.net.tcp.bytes_received":         "container_net_tcp_bytes_received_total",
		"container.net.latency":                    "container_net_latency_seconds",
		"container.resources.cpu.delay":            "container_resources_cpu_delay_seconds_total",
		"container.resources.disk.delay":           "container_resources_disk_delay_seconds_total",
		"container.oom_kills":                      "container_oom_kills_total",
		"container.info":                           "container_info",
		"container.restarts":                       "container_restarts_total",
		"container.resources.cpu.usage":            "container_resources_cpu_usage_seconds_total",
		"container.resources.cpu.limit_cores":      "container_resources_cpu_limit_cores",
		"container.resources.cpu.throttled":        "container_resources_cpu_throttled_seconds_total",
		"container.resources.memory.rss":           "container_resources_memory_rss_bytes",
		"container.resources.memory.cache":         "container_resources_memory_cache_bytes",
		"container.resources.memory.limit":         "container_resources_memory_limit_bytes",
		"container.resources.disk.reads":           "container_resources_disk_reads_total",
		"container.resources.disk.writes":          "container_resources_disk_writes_total",
		"container.resources.disk.read_bytes":      "container_resources_disk_read_bytes_total",
		"container.resources.disk.written_bytes":   "container_resources_disk_written_bytes_total",
		"container.resources.cpu.pressure.waiting": "container_resources_cpu_pressure_waiting_seconds_total",
		"container.resources.io.pressure.waiting":  "container_resources_io_pressure_waiting_seconds_total",
		"container.log.messages":                   "container_log_messages_total",
		"node.info":                                "node_info",
		"node.cloud_info":                          "node_cloud_info",
		"node.uptime":                              "node_uptime_seconds",
		// L7: coroot's names; histograms end in _total, their series add _bucket, _sum, _count
		"container.http.requests":                                   "container_http_requests_total",
		"container.http.requests.duration_seconds_total":            "container_http_requests_duration_seconds_total",
		"container.http.inbound_requests":                           "container_http_inbound_requests_total",
		"container.http.inbound_requests.duration_seconds_total":    "container_http_inbound_requests_duration_seconds_total",
		"container.postgres.queries":                                "container_postgres_queries_total",
		"container.postgres.queries.duration_seconds_total":         "container_postgres_queries_duration_seconds_total",
		"container.postgres.inbound_queries.duration_seconds_total": "container_postgres_inbound_queries_duration_seconds_total",
		"container.dns.requests":                                    "container_dns_requests_total",
		"container.rabbitmq.messages":                               "container_rabbitmq_messages_total",
		"container.nats.messages":                                   "container_nats_messages_total",
		"ip_to_fqdn":                                                "ip_to_fqdn",
		"node.agent_info":                                           "node_agent_info",
		"node.resources.cpu.usage":                                  "node_resources_cpu_usage_seconds_total",
		"node.resources.cpu.logical_cores":                          "node_resources_cpu_logical_cores",
		"node.resources.memory.total":                               "node_resources_memory_total_bytes",
		"node.resources.memory.free":                                "node_resources_memory_free_bytes",
		"node.resources.memory.available":                           "node_resources_memory_available_bytes",
		"node.resources.memory.cached":                              "node_resources_memory_cached_bytes",
		"node.resources.disk.reads":                                 "node_resources_disk_reads_total",
		"node.resources.disk.writes":                                "node_resources_disk_writes_total",
		"node.resources.disk.read_bytes":                            "node_resources_disk_read_bytes_total",
		"node.resources.disk.written_bytes":                         "node_resources_disk_written_bytes_total",
		"node.resources.disk.read_time":                             "node_resources_disk_read_time_seconds_total",
		"node.resources.disk.write_time":                            "node_resources_disk_write_time_seconds_total",
		"node.resources.disk.io_time":                               "node_resources_disk_io_time_seconds_total",
		"node.net.received_bytes":                                   "node_net_received_bytes_total",
		"node.net.transmitted_bytes":                                "node_net_transmitted_bytes_total",
		"node.net.received_packets":                                 "node_net_received_packets_total",
		"node.net.transmitted_packets":                              "node_net_transmitted_packets_total",
		"node.net.interface_up":                                     "node_net_interface_up",
		"node.net.interface_ip":                                     "node_net_interface_ip",
		"container.application_type":                                "container_application_type",
		"container.resources.disk.size":                             "container_resources_disk_size_bytes",
		"container.resources.disk.used":                             "container_resources_disk_used_bytes",
		"container.resources.disk.reserved":                         "container_resources_disk_reserved_bytes",
	}
	for name, prom := range want {
		m, ok := md.Metrics[name]
		require.True(t, ok, "metadata.yaml lacks %s", name)
		assert.Equal(t, prom, PrometheusName(name, m), name)
	}
}

func TestParseMetadataRejectsMistakes(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"unknown key", "type: x\nmetricz: {}\n", "field metricz not found"},
		{"unknown attribute", "type: x\nattributes: {}\nmetrics:\n  a:\n    description: d\n    unit: s\n    gauge: {value_type: int}\n    attributes: [nope]\n", "unknown attribute nope"},
		{"sum and gauge", "type: x\nmetrics:\n  a:\n    description: d\n    unit: s\n    gauge: {value_type: int}\n    sum: {value_type: int, aggregation_temporality: cumulative}\n", "exactly one of sum, gauge and histogram"},
		{"histogram without bounds", "type: x\nmetrics:\n  a:\n    description: d\n    unit: s\n    histogram: {value_type: double, aggregation_temporality: cumulative}\n", "bucket_bounds must be ascending"},
		{"histogram bounds unsorted", "type: x\nmetrics:\n  a:\n    description: d\n    unit: s\n    histogram: {value_type: double, aggregation_temporality: cumulative, bucket_bounds: [1, 0.5]}\n", "bucket_bounds must be ascending"},
		{"delta histogram", "type: x\nmetrics:\n  a:\n    description: d\n    unit: s\n    histogram: {value_type: double, aggregation_temporality: delta, bucket_bounds: [1]}\n", "histograms are double and cumulative"},
		{"no unit", "type: x\nmetrics:\n  a:\n    description: d\n    gauge: {value_type: int}\n", "unit is missing"},
		{"bad value type", "type: x\nmetrics:\n  a:\n    description: d\n    unit: s\n    gauge: {value_type: string}\n", "value_type must be int or double"},
		{"one Go name twice", "type: x\nresource_attributes:\n  container.id: {type: string}\n  container_id: {type: string}\n", "same Go name"},
		{"one key twice", "type: x\nresource_attributes:\n  container.id: {type: string}\n  coroot.id: {type: string, name_override: container.id}\n", "same key container.id"},
		{"bad resource type", "type: x\nresource_attributes:\n  a: {type: int}\n", "string or slice"},
		{"difference without text", "type: x\ncoroot_differences:\n  - topic: t\n", "topic and text are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(tt.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestGoNames(t *testing.T) {
	for in, want := range map[string]string{
		"container.net.tcp.successful_connects": "ContainerNetTCPSuccessfulConnects",
		"container.id":                          "ContainerID",
		"k8s.pod.uid":                           "K8sPodUID",
		"container.oom_kills":                   "ContainerOomKills",
	} {
		assert.Equal(t, want, goName(in))
	}
	for in, want := range map[string]string{
		"actual_destination": "actualDestinationAttributeValue",
		"destination_ip":     "destinationIPAttributeValue",
		"kind":               "kindAttributeValue",
	} {
		assert.Equal(t, want, paramName(in))
	}
}

// A resource attribute with name_override is switched by its name and emitted under its key; a
// slice attribute is emitted as a list; coroot_differences become their own documentation
// section.
func TestResourceKeysSlicesAndDifferences(t *testing.T) {
	md, err := ParseMetadata([]byte(`type: x
resource_attributes:
  coroot.container_id: {type: string, name_override: container_id, description: d., enabled: false}
  container.image.tags: {type: slice, description: t., enabled: true}
coroot_differences:
  - {topic: "memory", text: "KiB, not kB."}
`))
	require.NoError(t, err)
	files, err := Generate(md, "scope")
	require.NoError(t, err)
	res := string(files["internal/metadata/generated_resource.go"])
	assert.Contains(t, res, `func (rb *ResourceBuilder) SetCorootContainerID(val string)`)
	assert.Contains(t, res, `rb.res.Attributes().PutStr("container_id", val)`)
	assert.Contains(t, res, `func (rb *ResourceBuilder) SetContainerImageTags(vals ...string)`)
	assert.Contains(t, res, `PutEmptySlice("container.image.tags")`)
	cfg := string(files["internal/metadata/generated_config.go"])
	assert.Contains(t, cfg, "`mapstructure:\"coroot.container_id\"`")
	doc := string(files["documentation.md"])
	assert.Contains(t, doc, "| `coroot.container_id` | `container_id` | string | false | d. |")
	assert.Contains(t, doc, "## Differences from coroot-node-agent")
	assert.Contains(t, doc, "- **memory**: KiB, not kB.")
}
