// Package l7 turns what the kernel side captured of the read and write syscalls of a
// connection into application-protocol requests: HTTP/1.x, HTTP/2 and gRPC, Postgres,
// MySQL/MariaDB, Redis, Memcached, MongoDB, Kafka, Cassandra, DNS, ClickHouse, ZooKeeper,
// RabbitMQ (AMQP 0-9-1) and NATS, in both directions (a client's outbound requests and a
// server's inbound ones). CONTRACT.md is the interface with the kernel side: the segment
// record, the HTTP/2 frame digest, capture sizes, detection and what is bounded where.
//
// It owns: the segment record's decoding (Segment), the per-connection parser state and
// request correlation (Tracker), the detectors the kernel side ports to BPF (Detect and the
// Detect* functions), the reference of the HTTP/2 frame digest (HTTP2Digester), and the
// table of coroot-node-agent's metric names, labels, statuses and buckets (coroot.go). It
// must not attribute requests to containers or destinations, read /proc or cgroups, or build
// metrics: internal/tracer attributes, internal/l7/requeststats aggregates, the receiver
// emits. Pure Go; no I/O, no goroutines.
//
// Use (one goroutine, the ring-buffer reader):
//
//	tr := l7.NewTracker(l7.TrackerOptions{}, func(r *l7.Request) {
//		// r.Sock identifies the connection (the TCP tracer's socket address), r.Role says
//		// outbound (client) or inbound (server); copy what you keep: r is reused.
//	})
//	var seg l7.Segment
//	for record := range ringBuffer {
//		if err := seg.Decode(record); err != nil { ... } // 0 allocations
//		tr.Feed(&seg)
//	}
//	tr.Close(sock)  // on the TCP close of a connection
//	tr.Expire(now)  // now and then: idle connections, requests without response
//	tr.Stats()      // self-metrics: gaps, lost boundaries, false positives, HPACK resets, ...
package l7
