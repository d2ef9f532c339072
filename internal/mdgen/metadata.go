package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Metadata is the subset of mdatagen's metadata.yaml schema this project uses.
type Metadata struct {
	Type   string `yaml:"type"`
	Status struct {
		Class     string              `yaml:"class"`
		Stability map[string][]string `yaml:"stability"`
	} `yaml:"status"`
	ResourceAttributes map[string]*Attribute `yaml:"resource_attributes"`
	Attributes         map[string]*Attribute `yaml:"attributes"`
	Metrics            map[string]*Metric    `yaml:"metrics"`
	Events             map[string]*Event     `yaml:"events"`
	// CorootDifferences are the deliberate differences from coroot-node-agent's metrics of the
	// same names, rendered as their own section of documentation.md.
	CorootDifferences []Difference `yaml:"coroot_differences"`
}

// Difference is one deliberate difference from coroot-node-agent: what it concerns and how
// codexray differs, and why.
type Difference struct {
	Topic string `yaml:"topic"`
	Text  string `yaml:"text"`
}

// Attribute is a resource, data point or event attribute.
type Attribute struct {
	Description  string   `yaml:"description"`
	Type         string   `yaml:"type"`
	Enabled      bool     `yaml:"enabled"`
	Enum         []string `yaml:"enum"`
	NameOverride string   `yaml:"name_override"`
}

// Metric is one metric definition: exactly one of Sum, Gauge or Histogram is set.
type Metric struct {
	Enabled     bool       `yaml:"enabled"`
	Description string     `yaml:"description"`
	Unit        *string    `yaml:"unit"`
	Sum         *Sum       `yaml:"sum"`
	Gauge       *Gauge     `yaml:"gauge"`
	Histogram   *Histogram `yaml:"histogram"`
	Attributes  []string   `yaml:"attributes"`
}

// Sum describes a sum metric.
type Sum struct {
	ValueType              string `yaml:"value_type"`
	Monotonic              bool   `yaml:"monotonic"`
	AggregationTemporality string `yaml:"aggregation_temporality"`
}

// Gauge describes a gauge metric.
type Gauge struct {
	ValueType string `yaml:"value_type"`
}

// Histogram describes a cumulative explicit-bucket histogram: every data point has the
// upper bounds BucketBounds (ascending) and len(BucketBounds)+1 bucket counts.
type Histogram struct {
	ValueType              string    `yaml:"value_type"`
	AggregationTemporality string    `yaml:"aggregation_temporality"`
	BucketBounds           []float64 `yaml:"bucket_bounds"`
}

// Event is a log event the receiver emits.
type Event struct {
	Enabled     bool     `yaml:"enabled"`
	Description string   `yaml:"description"`
	Attributes  []string `yaml:"attributes"`
}

// ParseMetadata decodes and validates metadata.yaml, rejecting unknown keys so a typo is an
// error rather than a silently missing metric.
func ParseMetadata(data []byte) (*Metadata, error) {
	var md Metadata
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&md); err != nil {
		return nil, fmt.Errorf("decoding metadata.yaml: %w", err)
	}
	return &md, md.validate()
}

func (md *Metadata) validate() error {
	var errs []error
	if md.Type == "" {
		errs = append(errs, errors.New("type is empty"))
	}
	goNames, keys := map[string]string{}, map[string]string{}
	for _, name := range sortedKeys(md.ResourceAttributes) {
		a := md.ResourceAttributes[name]
		if a.Type != "string" && a.Type != "slice" {
			errs = append(errs, fmt.Errorf("resource attribute %s: type must be string or slice (of strings), got %q", name, a.Type))
		}
		// Two attributes with one Go name (container.id and container_id) or one emitted key
		// would overwrite each other.
		if other, ok := goNames[goName(name)]; ok {
			errs = append(errs, fmt.Errorf("resource attributes %s and %s have the same Go name: rename one and give it a name_override", other, name))
		}
		goNames[goName(name)] = name
		if other, ok := keys[md.resourceKey(name)]; ok {
			errs = append(errs, fmt.Errorf("resource attributes %s and %s are emitted under the same key %s", other, name, md.resourceKey(name)))
		}
		keys[md.resourceKey(name)] = name
	}
	for i, d := range md.CorootDifferences {
		if d.Topic == "" || d.Text == "" {
			errs = append(errs, fmt.Errorf("coroot_differences[%d]: topic and text are required", i))
		}
	}
	for name, a := range md.Attributes {
		if a.Type != "string" && a.Type != "int" {
			errs = append(errs, fmt.Errorf("attribute %s: type must be string or int, got %q", name, a.Type))
		}
	}
	for name, m := range md.Metrics {
		if m.Description == "" {
			errs = append(errs, fmt.Errorf("metric %s: description is empty", name))
		}
		if m.Unit == nil {
			errs = append(errs, fmt.Errorf("metric %s: unit is missing (use \"\" for none)", name))
		}
		kinds := 0
		for _, set := range []bool{m.Sum != nil, m.Gauge != nil, m.Histogram != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			errs = append(errs, fmt.Errorf("metric %s: exactly one of sum, gauge and histogram must be set", name))
		}
		if vt := m.valueType(); vt != "int" && vt != "double" {
			errs = append(errs, fmt.Errorf("metric %s: value_type must be int or double, got %q", name, vt))
		}
		if h := m.Histogram; h != nil {
			if h.ValueType != "double" || h.AggregationTemporality != "cumulative" {
				errs = append(errs, fmt.Errorf("metric %s: histograms are double and cumulative", name))
			}
			if len(h.BucketBounds) == 0 || !sort.Float64sAreSorted(h.BucketBounds) {
				errs = append(errs, fmt.Errorf("metric %s: bucket_bounds must be ascending and not empty", name))
			}
		}
		if m.Sum != nil && m.Sum.AggregationTemporality != "cumulative" && m.Sum.AggregationTemporality != "delta" {
			errs = append(errs, fmt.Errorf("metric %s: aggregation_temporality must be cumulative or delta", name))
		}
		for _, a := range m.Attributes {
			if _, ok := md.Attributes[a]; !ok {
				errs = append(errs, fmt.Errorf("metric %s: unknown attribute %s", name, a))
			}
		}
	}
	for name, e := range md.Events {
		for _, a := range e.Attributes {
			if _, ok := md.Attributes[a]; !ok {
				errs = append(errs, fmt.Errorf("event %s: unknown attribute %s", name, a))
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Metric) valueType() string {
	if m.Sum != nil {
		return m.Sum.ValueType
	}
	if m.Gauge != nil {
		return m.Gauge.ValueType
	}
	if m.Histogram != nil {
		return m.Histogram.ValueType
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// initialisms keep Go names idiomatic: container.id -> ContainerID.
var initialisms = map[string]string{
	"id": "ID", "ip": "IP", "tcp": "TCP", "cpu": "CPU", "io": "IO", "os": "OS", "uid": "UID",
	"url": "URL", "k8s": "K8s", "ipv4": "IPV4", "http": "HTTP", "dns": "DNS", "fqdn": "FQDN", "uuid": "UUID",
}

// goName turns "container.net.tcp.successful_connects" into "ContainerNetTCPSuccessfulConnects".
func goName(s string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '_' || r == '-' }) {
		if v, ok := initialisms[part]; ok {
			b.WriteString(v)
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// paramName is the Go parameter name of an attribute value: "actual_destination" ->
// "actualDestinationAttributeValue".
func paramName(attr string) string {
	parts := strings.FieldsFunc(attr, func(r rune) bool { return r == '.' || r == '_' || r == '-' })
	return strings.ToLower(parts[0]) + goName(strings.Join(parts[1:], "_")) + "AttributeValue"
}

// attrKey is the attribute key as emitted (name_override wins).
func (md *Metadata) attrKey(name string) string {
	if a := md.Attributes[name]; a != nil && a.NameOverride != "" {
		return a.NameOverride
	}
	return name
}

// resourceKey is the resource attribute key as emitted (name_override wins): coroot's labels
// (machine_id, container_id) are switched as coroot.machine_id, coroot.container_id.
func (md *Metadata) resourceKey(name string) string {
	if a := md.ResourceAttributes[name]; a != nil && a.NameOverride != "" {
		return a.NameOverride
	}
	return name
}

// unitSuffixes is what the Prometheus translation appends for a unit.
var unitSuffixes = map[string]string{"s": "seconds", "By": "bytes", "ms": "milliseconds", "1": ""}

// PrometheusName is the name the collector's prometheus exporter gives the metric with its
// default translation strategy: dots become underscores, the unit suffix is appended unless a
// name token already holds it, and monotonic sums get _total. Units in braces add nothing. A
// histogram's series are this name with _bucket, _sum and _count.
func PrometheusName(name string, m *Metric) string {
	tokens := strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '_' })
	if m.Unit != nil {
		if sfx := unitSuffixes[*m.Unit]; sfx != "" {
			found := false
			for _, t := range tokens {
				if t == sfx {
					found = true
				}
			}
			if !found {
				tokens = append(tokens, sfx)
			}
		}
	}
	if m.Sum != nil && m.Sum.Monotonic {
		tokens = append(tokens, "total")
	}
	return strings.Join(tokens, "_")
}
