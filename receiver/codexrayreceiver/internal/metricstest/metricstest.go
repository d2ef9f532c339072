// Package metricstest reads pmetric.Metrics in the receiver's tests: every number data point
// flattened with its metric name, attributes, value and timestamps, lookups by name and by
// resource, and golden files of what a source records. Tests compare values instead of walking
// ResourceMetrics by hand. Test code only.
package metricstest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Point is one number data point of a gauge or a sum.
type Point struct {
	Resource   pcommon.Map
	Name       string
	Type       pmetric.MetricType
	Attributes pcommon.Map
	// Attrs are the data point's attributes, "k=v" joined by "," in key order ("" for none).
	Attrs       string
	Value       float64 // an int value converted
	Start, Time pcommon.Timestamp
}

// Key is the point's metric name with its attributes: "name{k=v,k2=v2}", or "name".
func (p Point) Key() string {
	if p.Attrs == "" {
		return p.Name
	}
	return p.Name + "{" + p.Attrs + "}"
}

// Points lists every number data point of md, in the order md holds them.
func Points(md pmetric.Metrics) []Point {
	var out []Point
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := rms.At(i).Resource().Attributes()
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
					out = append(out, Point{
						Resource: res, Name: m.Name(), Type: m.Type(), Attributes: dp.Attributes(), Attrs: attrs(dp.Attributes()),
						Value: v, Start: dp.StartTimestamp(), Time: dp.Timestamp(),
					})
				}
			}
		}
	}
	return out
}

func attrs(m pcommon.Map) string {
	parts := make([]string, 0, m.Len())
	m.Range(func(k string, v pcommon.Value) bool {
		parts = append(parts, k+"="+v.AsString())
		return true
	})
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Values maps Key to Value for every point of md.
func Values(md pmetric.Metrics) map[string]float64 {
	out := map[string]float64{}
	for _, p := range Points(md) {
		out[p.Key()] = p.Value
	}
	return out
}

// Named maps Attrs to Value for the points of metric name ("" for a point without attributes).
func Named(md pmetric.Metrics, name string) map[string]float64 {
	out := map[string]float64{}
	for _, p := range Points(md) {
		if p.Name == name {
			out[p.Attrs] = p.Value
		}
	}
	return out
}

// Metric returns the first metric called name, failing t when there is none.
func Metric(t testing.TB, md pmetric.Metrics, name string) pmetric.Metric {
	t.Helper()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() == name {
					return ms.At(k)
				}
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return pmetric.Metric{}
}

// Resource returns a copy of md holding only the first resource whose attribute key is value.
func Resource(md pmetric.Metrics, key, value string) (pmetric.Metrics, bool) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		if v, ok := rms.At(i).Resource().Attributes().Get(key); ok && v.AsString() == value {
			one := pmetric.NewMetrics()
			rms.At(i).CopyTo(one.ResourceMetrics().AppendEmpty())
			return one, true
		}
	}
	return pmetric.Metrics{}, false
}

// UpdateEnv names the variable that makes Golden rewrite the files it compares with.
const UpdateEnv = "CODEXRAY_UPDATE_GOLDEN"

// Golden compares a text rendering of md with the file at path: per resource, its attributes,
// then one "key = value" line per point, sorted (timestamps left out); only the metrics named,
// when names are given. With CODEXRAY_UPDATE_GOLDEN=1 it writes the file instead.
func Golden(t testing.TB, md pmetric.Metrics, path string, names ...string) {
	t.Helper()
	got := Render(md, names...)
	if os.Getenv(UpdateEnv) == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with %s=1 once to create it)", err, UpdateEnv)
	}
	if got != string(want) {
		t.Errorf("%s differs from what was recorded (%s=1 rewrites it):\n--- want\n%s--- got\n%s", path, UpdateEnv, want, got)
	}
}

// Render is the text Golden compares: resources in md's order, each with its attributes and
// its points sorted by key; only the metrics named, when names are given.
func Render(md pmetric.Metrics, names ...string) string {
	var b strings.Builder
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		one := pmetric.NewMetrics()
		rms.At(i).CopyTo(one.ResourceMetrics().AppendEmpty())
		fmt.Fprintf(&b, "resource {%s}\n", attrs(rms.At(i).Resource().Attributes()))
		var lines []string
		for _, p := range Points(one) {
			if len(names) == 0 || slices.Contains(names, p.Name) {
				lines = append(lines, "  "+p.Key()+" = "+strconv.FormatFloat(p.Value, 'f', -1, 64))
			}
		}
		slices.Sort(lines)
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
