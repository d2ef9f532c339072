package k8s

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	// The collector's OTLP exporter compresses with gzip by default.
	_ "google.golang.org/grpc/encoding/gzip"
)

// Backend is an OTLP/gRPC receiver that keeps every data point and log record it is sent,
// flattened, for the scenario to query: the agent's OTLP output as a backend sees it.
type Backend struct {
	Addr   string
	server *grpc.Server
	mu     sync.Mutex
	points []Point
	logs   []LogRecord
}

// Point is one number or histogram-free data point with its resource and attributes.
type Point struct {
	Resource    map[string]string
	Metric      string
	Attrs       map[string]string
	Value       float64
	Time, Start time.Time
	Received    time.Time
}

// LogRecord is one log record with its resource and attributes.
type LogRecord struct {
	Resource map[string]string
	Attrs    map[string]string
	Body     string
	Received time.Time
}

// StartBackend listens on a free loopback port.
func StartBackend() (*Backend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Backend{Addr: l.Addr().String(), server: grpc.NewServer()}
	pmetricotlp.RegisterGRPCServer(b.server, &metricsService{b: b})
	plogotlp.RegisterGRPCServer(b.server, &logsService{b: b})
	go func() { _ = b.server.Serve(l) }()
	return b, nil
}

// Stop closes the listener and every connection.
func (b *Backend) Stop() { b.server.Stop() }

// Points returns the points that match.
func (b *Backend) Points(match func(*Point) bool) []Point {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Point
	for i := range b.points {
		if match(&b.points[i]) {
			out = append(out, b.points[i])
		}
	}
	return out
}

// Logs returns the log records that match.
func (b *Backend) Logs(match func(*LogRecord) bool) []LogRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []LogRecord
	for i := range b.logs {
		if match(&b.logs[i]) {
			out = append(out, b.logs[i])
		}
	}
	return out
}

// Dump writes every point and log record as JSON lines, for a look after a failure.
func (b *Backend) Dump(path string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i := range b.points {
		if err := enc.Encode(b.points[i]); err != nil {
			f.Close()
			return err
		}
	}
	for i := range b.logs {
		if err := enc.Encode(b.logs[i]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func attrMap(m pcommon.Map) map[string]string {
	out := make(map[string]string, m.Len())
	for k, v := range m.All() {
		out[k] = v.AsString()
	}
	return out
}

type metricsService struct {
	pmetricotlp.UnimplementedGRPCServer
	b *Backend
}

func (s *metricsService) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	now := time.Now()
	var pts []Point
	rms := req.Metrics().ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := attrMap(rms.At(i).Resource().Attributes())
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				default:
					continue
				}
				for l := 0; l < dps.Len(); l++ {
					dp := dps.At(l)
					v := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(dp.IntValue())
					}
					pts = append(pts, Point{
						Resource: res, Metric: m.Name(), Attrs: attrMap(dp.Attributes()), Value: v,
						Time: dp.Timestamp().AsTime(), Start: dp.StartTimestamp().AsTime(), Received: now,
					})
				}
			}
		}
	}
	s.b.mu.Lock()
	s.b.points = append(s.b.points, pts...)
	s.b.mu.Unlock()
	return pmetricotlp.NewExportResponse(), nil
}

type logsService struct {
	plogotlp.UnimplementedGRPCServer
	b *Backend
}

func (s *logsService) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	now := time.Now()
	var recs []LogRecord
	rls := req.Logs().ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		res := attrMap(rls.At(i).Resource().Attributes())
		sls := rls.At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				recs = append(recs, LogRecord{Resource: res, Attrs: attrMap(lr.Attributes()), Body: lr.Body().AsString(), Received: now})
			}
		}
	}
	s.b.mu.Lock()
	s.b.logs = append(s.b.logs, recs...)
	s.b.mu.Unlock()
	return plogotlp.NewExportResponse(), nil
}
