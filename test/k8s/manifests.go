// Package k8s holds the e2e-k8s scenario (build tag e2ek8s, `make e2e-k8s`): the agent's
// DaemonSet on a real single-node cluster (test/k8s/cluster) watching pods the kubelet
// makes. Its untagged tests, run by `make test`, keep the two shipped Kubernetes manifests in
// agreement and check the agent image's contents against deploy/Dockerfile.
package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/codexray/codexray-node-agent/test/k8s/cluster"
)

// The shipped manifests, relative to the repository root.
const (
	DaemonSetManifest = "deploy/kubernetes/codexray.yaml"
	OperatorManifest  = "deploy/otel-operator/collector.yaml"
)

// RepoRoot is the repository root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// PlainManifest is deploy/kubernetes/codexray.yaml decoded: its objects, and the DaemonSet's
// pod spec, agent container and collector config within them.
type PlainManifest struct {
	Objects   []map[string]any
	DaemonSet map[string]any
	PodSpec   map[string]any
	Container map[string]any
	ConfigMap map[string]any
	Config    map[string]any // the ConfigMap's config.yaml, decoded
}

// LoadPlainManifest reads and decodes deploy/kubernetes/codexray.yaml.
func LoadPlainManifest(root string) (*PlainManifest, error) {
	b, err := os.ReadFile(filepath.Join(root, DaemonSetManifest))
	if err != nil {
		return nil, err
	}
	objs, err := cluster.DecodeManifests(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", DaemonSetManifest, err)
	}
	m := &PlainManifest{Objects: objs}
	for _, o := range objs {
		switch o["kind"] {
		case "DaemonSet":
			m.DaemonSet = o
		case "ConfigMap":
			m.ConfigMap = o
		}
	}
	if m.DaemonSet == nil || m.ConfigMap == nil {
		return nil, fmt.Errorf("%s: want a DaemonSet and a ConfigMap", DaemonSetManifest)
	}
	m.PodSpec = Dig[map[string]any](m.DaemonSet, "spec", "template", "spec")
	containers := Dig[[]any](m.PodSpec, "containers")
	if len(containers) != 1 {
		return nil, fmt.Errorf("%s: the DaemonSet has %d containers, want 1", DaemonSetManifest, len(containers))
	}
	m.Container, _ = containers[0].(map[string]any)
	text := Dig[string](m.ConfigMap, "data", "config.yaml")
	if err := yaml.Unmarshal([]byte(text), &m.Config); err != nil {
		return nil, fmt.Errorf("%s: ConfigMap data config.yaml: %w", DaemonSetManifest, err)
	}
	if m.Config == nil {
		return nil, fmt.Errorf("%s: ConfigMap data config.yaml is empty", DaemonSetManifest)
	}
	return m, nil
}

// LoadOperatorSpec reads the OpenTelemetryCollector's spec.
func LoadOperatorSpec(root string) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(root, OperatorManifest))
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", OperatorManifest, err)
	}
	spec, ok := obj["spec"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: no spec", OperatorManifest)
	}
	return spec, nil
}

// Dig walks nested maps by key and returns the value as T (its zero value when absent).
func Dig[T any](obj map[string]any, keys ...string) T {
	var zero T
	var cur any = obj
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return zero
		}
		cur = m[k]
	}
	v, _ := cur.(T)
	return v
}

// configVolume is the DaemonSet's own volume for the ConfigMap; the operator generates its
// equivalent itself.
const configVolume = "config"

// Disagreements lists where the DaemonSet's pod differs from what the operator manifest asks
// the operator to create: every field of the OpenTelemetryCollector spec that has a pod
// equivalent, and the collector config.
func Disagreements(op map[string]any, m *PlainManifest) []string {
	var diffs []string
	same := func(what string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s: operator manifest %v, DaemonSet %v", what, a, b))
		}
	}
	for _, k := range []string{"hostPID", "hostNetwork", "priorityClassName", "tolerations", "nodeSelector"} {
		same(k, op[k], m.PodSpec[k])
	}
	same("podSecurityContext", op["podSecurityContext"], m.PodSpec["securityContext"])
	for _, k := range []string{"image", "imagePullPolicy", "resources", "securityContext", "env"} {
		same(k, op[k], m.Container[k])
	}
	// The operator's ports are Service ports; the pod's are container ports.
	var opPorts, dsPorts []string
	for _, p := range Dig[[]any](op, "ports") {
		pm, _ := p.(map[string]any)
		opPorts = append(opPorts, fmt.Sprintf("%v/%v/%v", pm["name"], pm["port"], pm["protocol"]))
	}
	for _, p := range Dig[[]any](m.Container, "ports") {
		pm, _ := p.(map[string]any)
		dsPorts = append(dsPorts, fmt.Sprintf("%v/%v/%v", pm["name"], pm["containerPort"], pm["protocol"]))
	}
	same("ports", opPorts, dsPorts)
	without := func(list []any) []any {
		return slices.DeleteFunc(slices.Clone(list), func(v any) bool {
			vm, _ := v.(map[string]any)
			return vm["name"] == configVolume
		})
	}
	same("volumeMounts", Dig[[]any](op, "volumeMounts"), without(Dig[[]any](m.Container, "volumeMounts")))
	same("volumes", Dig[[]any](op, "volumes"), without(Dig[[]any](m.PodSpec, "volumes")))
	same("config", op["config"], m.Config)
	return diffs
}
