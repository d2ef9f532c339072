package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// agentCapabilities is the documented capability set of the agent (deploy/README.md): the
// manifest, the systemd unit and the least-privilege test all use exactly this list.
var agentCapabilities = []string{"BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_RESOURCE"}

const manifestPath = "deploy/otel-operator/collector.yaml"

// collectorManifest is the part of an OpenTelemetryCollector (opentelemetry.io/v1beta1) the
// tests look at.
type collectorManifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Spec       struct {
		Mode        string `yaml:"mode"`
		Image       string `yaml:"image"`
		HostPID     bool   `yaml:"hostPID"`
		HostNetwork bool   `yaml:"hostNetwork"`
		Tolerations []struct {
			Key      string `yaml:"key"`
			Operator string `yaml:"operator"`
			Effect   string `yaml:"effect"`
		} `yaml:"tolerations"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			Privileged               *bool `yaml:"privileged"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
				Add  []string `yaml:"add"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		Env []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom struct {
				FieldRef struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
		Volumes []struct {
			Name     string `yaml:"name"`
			HostPath *struct {
				Path string `yaml:"path"`
			} `yaml:"hostPath"`
		} `yaml:"volumes"`
		Config map[string]any `yaml:"config"`
	} `yaml:"spec"`
}

func loadManifest(t testing.TB) *collectorManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), manifestPath))
	if err != nil {
		t.Fatal(err)
	}
	var m collectorManifest
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("parsing %s: %v", manifestPath, err)
	}
	return &m
}

// manifestEnv is the environment the pod would get: plain values as written, downward-API
// fields as a kubelet would fill them on a node. A value that is the mount point of a hostPath
// volume (e.g. /hostfs) becomes the host path it mounts: the config is validated on the host,
// where the pod's view of that directory is the host's own.
func (m *collectorManifest) manifestEnv(t testing.TB) []string {
	t.Helper()
	downward := map[string]string{"spec.nodeName": "node-1", "status.podIP": "127.0.0.1"}
	mounted := map[string]string{}
	for _, vm := range m.Spec.VolumeMounts {
		for _, v := range m.Spec.Volumes {
			if v.Name == vm.Name && v.HostPath != nil {
				mounted[vm.MountPath] = v.HostPath.Path
			}
		}
	}
	var env []string
	for _, e := range m.Spec.Env {
		v := e.Value
		if host, ok := mounted[v]; ok {
			v = host
		}
		if fp := e.ValueFrom.FieldRef.FieldPath; fp != "" {
			var ok bool
			if v, ok = downward[fp]; !ok {
				t.Fatalf("env %s: the test does not know the downward-API field %q", e.Name, fp)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

// onHost returns a copy of a config value in which every path inside a hostPath volume's
// mount point is the host path the volume mounts (/host/sys/fs/cgroup becomes /sys/fs/cgroup):
// validate checks that directories exist, and it runs on the host, not in the pod.
func (m *collectorManifest) onHost(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = m.onHost(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = m.onHost(e)
		}
		return out
	case string:
		best, host := "", ""
		for _, vm := range m.Spec.VolumeMounts {
			for _, vol := range m.Spec.Volumes {
				if vol.Name != vm.Name || vol.HostPath == nil || len(vm.MountPath) <= len(best) {
					continue
				}
				if v == vm.MountPath || strings.HasPrefix(v, strings.TrimSuffix(vm.MountPath, "/")+"/") {
					best, host = vm.MountPath, vol.HostPath.Path
				}
			}
		}
		if best == "" {
			return v
		}
		return filepath.Join(host, strings.TrimPrefix(v, best))
	}
	return v
}

// configString walks the manifest's spec.config; "" when the key is absent.
func configValue(cfg map[string]any, keys ...string) any {
	var cur any = cfg
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func configString(cfg map[string]any, def string, keys ...string) string {
	if s, ok := configValue(cfg, keys...).(string); ok && s != "" {
		return s
	}
	return def
}

// validateConfig runs the distribution's own `validate` subcommand: every component's config
// is unmarshalled and Validate-d exactly as at start-up, without starting anything.
func validateConfig(t *testing.T, bin, config string, env []string) {
	t.Helper()
	cmd := exec.Command(bin, "validate", "--config", config)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s validate --config %s: %v\n%s", filepath.Base(bin), config, err, tail(string(out), 3000))
	}
}

// TestShippedConfigsValidate validates every config the project ships, the one embedded in
// the Kubernetes manifest included, with the distribution that will run them.
func TestShippedConfigsValidate(t *testing.T) {
	bin := distBinary(t)
	root := repoRoot(t)
	configs, err := filepath.Glob(filepath.Join(root, "config", "*.yaml"))
	if err != nil || len(configs) < 2 {
		t.Fatalf("want config/default.yaml and config/otlp.yaml at least, got %v (%v)", configs, err)
	}
	for _, c := range configs {
		t.Run(filepath.Base(c), func(t *testing.T) { validateConfig(t, bin, c, nil) })
	}
	t.Run("otel-operator manifest spec.config", func(t *testing.T) {
		m := loadManifest(t)
		b, err := yaml.Marshal(m.onHost(m.Spec.Config))
		if err != nil {
			t.Fatal(err)
		}
		validateConfig(t, bin, writeFile(t, "manifest-config.yaml", string(b)), m.manifestEnv(t))
	})
	// The check must be able to fail: a config the receiver refuses is refused.
	t.Run("a bad config is refused", func(t *testing.T) {
		bad := writeFile(t, "bad.yaml", "receivers:\n  codexray:\n    collection_interval: 1ms\n"+
			"exporters:\n  debug: {}\nservice:\n  pipelines:\n    metrics:\n      receivers: [codexray]\n      exporters: [debug]\n")
		out, err := exec.Command(bin, "validate", "--config", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "collection_interval") {
			t.Fatalf("validate accepted collection_interval: 1ms (err %v): %s", err, tail(string(out), 2000))
		}
	})
}

// TestManifestShape checks the DaemonSet the operator will create: host PID and network, every
// node, limits, the capability list instead of privileged, and both pipelines.
func TestManifestShape(t *testing.T) {
	m := loadManifest(t)
	s := &m.Spec
	if m.APIVersion != "opentelemetry.io/v1beta1" || m.Kind != "OpenTelemetryCollector" || s.Mode != "daemonset" {
		t.Errorf("want an opentelemetry.io/v1beta1 OpenTelemetryCollector in mode daemonset, got %s %s mode %q", m.APIVersion, m.Kind, s.Mode)
	}
	if !strings.Contains(s.Image, "otelcol-codexray") {
		t.Errorf("image %q is not the otelcol-codexray distribution", s.Image)
	}
	if !s.HostPID {
		t.Error("hostPID is not set: /proc would list only the agent's own processes")
	}
	if !s.HostNetwork {
		t.Error("hostNetwork is not set: TASKSTATS and conntrack answer only in the host network namespace")
	}
	if s.SecurityContext.Privileged != nil && *s.SecurityContext.Privileged {
		t.Error("securityContext.privileged is true; the agent must run with its capability list")
	}
	if !slices.Equal(s.SecurityContext.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities.drop = %v, want [ALL]", s.SecurityContext.Capabilities.Drop)
	}
	if got := s.SecurityContext.Capabilities.Add; !slices.Equal(got, agentCapabilities) {
		t.Errorf("capabilities.add = %v, want the documented set %v", got, agentCapabilities)
	}
	if slices.Contains(s.SecurityContext.Capabilities.Add, "SYS_ADMIN") {
		t.Error("capabilities.add has SYS_ADMIN")
	}
	everyNode := slices.ContainsFunc(s.Tolerations, func(tl struct {
		Key      string `yaml:"key"`
		Operator string `yaml:"operator"`
		Effect   string `yaml:"effect"`
	},
	) bool {
		return tl.Operator == "Exists" && tl.Key == "" && tl.Effect == ""
	})
	if !everyNode {
		t.Errorf("no toleration {operator: Exists} without key and effect: the agent would skip tainted nodes (%+v)", s.Tolerations)
	}
	for _, r := range []string{"cpu", "memory"} {
		if s.Resources.Limits[r] == "" || s.Resources.Requests[r] == "" {
			t.Errorf("resources: %s request and limit must both be set (%+v)", r, s.Resources)
		}
	}
	env := map[string]string{}
	for _, e := range s.Env {
		env[e.Name] = e.Value + e.ValueFrom.FieldRef.FieldPath
	}
	if env["K8S_NODE_NAME"] != "spec.nodeName" {
		t.Errorf("K8S_NODE_NAME must come from the downward API spec.nodeName, got %q", env["K8S_NODE_NAME"])
	}
	if env["CODEXRAY_OTLP_ENDPOINT"] == "" {
		t.Error("CODEXRAY_OTLP_ENDPOINT (the OTLP backend) is not set")
	}

	cfg := s.Config
	if got := configString(cfg, "", "exporters", "otlp_grpc", "endpoint"); got != "${env:CODEXRAY_OTLP_ENDPOINT}" {
		t.Errorf("otlp_grpc endpoint = %q, want it from CODEXRAY_OTLP_ENDPOINT", got)
	}
	for _, signal := range []string{"metrics", "logs"} {
		recv := asStrings(configValue(cfg, "service", "pipelines", signal, "receivers"))
		exp := asStrings(configValue(cfg, "service", "pipelines", signal, "exporters"))
		if !slices.Contains(recv, "codexray") || !slices.Contains(exp, "otlp_grpc") {
			t.Errorf("%s pipeline: receivers %v exporters %v; want codexray pushed through otlp_grpc", signal, recv, exp)
		}
	}
	// Prometheus in its own pipeline, keeping coroot-node-agent's labels that the OTLP
	// pipelines remove.
	if exp := asStrings(configValue(cfg, "service", "pipelines", "metrics/prometheus", "exporters")); !slices.Equal(exp, []string{"prometheus"}) {
		t.Errorf("metrics/prometheus pipeline exporters %v: want prometheus", exp)
	}
	for _, p := range []string{"metrics", "logs"} {
		if procs := asStrings(configValue(cfg, "service", "pipelines", p, "processors")); !slices.Contains(procs, "resource/semconv") {
			t.Errorf("%s pipeline processors %v: want resource/semconv, so OTLP gets no coroot labels", p, procs)
		}
	}
	// The same receiver labels and resource_constant_labels as config/default.yaml, so both
	// ways of scraping give the same series.
	var def map[string]any
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	want := asStrings(configValue(def, "exporters", "prometheus", "resource_constant_labels", "included"))
	got := asStrings(configValue(cfg, "exporters", "prometheus", "resource_constant_labels", "included"))
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("prometheus resource_constant_labels.included = %v, want config/default.yaml's %v", got, want)
	}
	wantAttrs := configValue(def, "receivers", "codexray", "resource_attributes")
	if gotAttrs := configValue(cfg, "receivers", "codexray", "resource_attributes"); wantAttrs == nil || !reflect.DeepEqual(gotAttrs, wantAttrs) {
		t.Errorf("codexray resource_attributes = %v, want config/default.yaml's %v", gotAttrs, wantAttrs)
	}
}

func asStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// TestManifestMountsWhatSourcesRead resolves every host path a source reads, at the in-pod
// path the manifest's config gives it, through the pod's volume mounts back to the host path.
func TestManifestMountsWhatSourcesRead(t *testing.T) {
	m := loadManifest(t)
	cfg := m.Spec.Config
	recv := func(def string, keys ...string) string {
		return configString(cfg, def, append([]string{"receivers", "codexray"}, keys...)...)
	}
	criSockets := asStrings(configValue(cfg, "receivers", "codexray", "containers", "cri_sockets"))
	if len(criSockets) != 2 {
		t.Fatalf("containers.cri_sockets = %v: want the containerd and the CRI-O socket", criSockets)
	}
	hostFS := ""
	for _, e := range m.Spec.Env {
		if e.Name == "CODEXRAY_HOSTFS" {
			hostFS = e.Value
		}
	}
	if got := configString(cfg, "", "receivers", "host_metrics", "root_path"); got != "${env:CODEXRAY_HOSTFS}" || hostFS == "" {
		t.Errorf("host_metrics.root_path = %q with CODEXRAY_HOSTFS=%q: want the host's / mounted in the pod", got, hostFS)
	}
	needs := []struct {
		what, inPod, onHost string
		writable            bool
	}{
		{"eBPF: tracefs (tracepoint ids)", "/sys/kernel/tracing/events", "/sys/kernel/tracing/events", false},
		{"eBPF: kernel BTF (CO-RE)", "/sys/kernel/btf/vmlinux", "/sys/kernel/btf/vmlinux", false},
		{"cgroups: the host's cgroupfs", recv("/sys/fs/cgroup", "cgroups", "root"), "/sys/fs/cgroup", false},
		{"logs: plain files", "/var/log/syslog", "/var/log/syslog", false},
		{"logs: CRI pod logs", recv("/var/log/pods", "logs", "cri", "pods_dir"), "/var/log/pods", false},
		{"logs: docker json-file", recv("/var/lib/docker/containers", "logs", "docker", "containers_dir"), "/var/lib/docker/containers", false},
		{"logs: persistent journal", "/var/log/journal", "/var/log/journal", false},
		{"logs: volatile journal", "/run/log/journal", "/run/log/journal", false},
		{"containers: dockerd socket", recv("/var/run/docker.sock", "containers", "docker_socket"), "/run/docker.sock", false},
		{"containers: containerd socket", criSockets[0], "/run/containerd/containerd.sock", false},
		{"containers: CRI-O socket", criSockets[1], "/run/crio/crio.sock", false},
		{"node: machine id (host.id)", "/etc/machine-id", "/etc/machine-id", false},
		{"host_metrics: the host's root filesystem", hostFS + "/etc", "/etc", false},
		{"logs: read offsets (file_storage)", configString(cfg, "", "extensions", "file_storage", "directory"), "/var/lib/otelcol-codexray", true},
	}
	hostPaths := map[string]string{}
	for _, v := range m.Spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	for _, n := range needs {
		t.Run(n.what, func(t *testing.T) {
			// The longest mount path that contains the file wins, as in the container.
			best := -1
			for i, vm := range m.Spec.VolumeMounts {
				if within(n.inPod, vm.MountPath) && (best < 0 || len(vm.MountPath) > len(m.Spec.VolumeMounts[best].MountPath)) {
					best = i
				}
			}
			if best < 0 {
				t.Fatalf("%s is not under any volume mount", n.inPod)
			}
			vm := m.Spec.VolumeMounts[best]
			host, ok := hostPaths[vm.Name]
			if !ok {
				t.Fatalf("mount %s uses volume %q, which is not a hostPath volume", vm.MountPath, vm.Name)
			}
			resolved := path.Join(host, strings.TrimPrefix(n.inPod, vm.MountPath))
			if resolved != n.onHost {
				t.Errorf("%s in the pod is %s on the host, want %s", n.inPod, resolved, n.onHost)
			}
			if vm.ReadOnly == n.writable {
				t.Errorf("mount %s: readOnly=%v, want %v", vm.MountPath, vm.ReadOnly, !n.writable)
			}
		})
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// TestSystemdUnit checks the plain-host unit: the manifest's capability set, and systemd's
// own verifier accepts it with the built distribution as ExecStart.
func TestSystemdUnit(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", "otelcol-codexray.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	var want []string
	for _, c := range agentCapabilities {
		want = append(want, "CAP_"+c)
	}
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		m := regexp.MustCompile(`(?m)^` + key + `=(.*)$`).FindStringSubmatch(unit)
		if m == nil {
			t.Errorf("%s is not set", key)
			continue
		}
		if got := strings.Fields(m[1]); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if !strings.Contains(unit, "--config /etc/otelcol-codexray/config.yaml") {
		t.Error("ExecStart does not use /etc/otelcol-codexray/config.yaml (config/otlp.yaml installed)")
	}

	bin := distBinary(t)
	analyze, err := exec.LookPath("systemd-analyze")
	testutil.SkipUnlessPrivileged(t, err == nil, "systemd-analyze not installed: %v", err)
	dir := t.TempDir()
	local := strings.ReplaceAll(unit, "/usr/local/bin/otelcol-codexray", bin)
	unitPath := filepath.Join(dir, "otelcol-codexray.service")
	if err := os.WriteFile(unitPath, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unitPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestImageRuntimeLibraries: the distribution is built with cgo (the journald source), so it
// is linked against glibc and the runtime stage of deploy/Dockerfile must be a glibc image of
// the build image's Debian release (not alpine or distroless/static), with libsystemd0, which
// go-systemd's sdjournal dlopens at run time.
func TestImageRuntimeLibraries(t *testing.T) {
	bin := distBinary(t)
	df, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("ldd %s: %v\n%s", bin, err, out)
	}
	if !strings.Contains(string(out), "libc.so.6") {
		t.Errorf("the distribution is not linked against glibc; is cgo off in builder-config.yaml?\n%s", out)
	}
	for _, want := range []string{
		"FROM golang:1.26-bookworm AS build", "make -o deps build", "libsystemd-dev",
		"FROM debian:bookworm-slim", "libsystemd0", `ENTRYPOINT ["/otelcol-codexray"]`,
	} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("deploy/Dockerfile lacks %q", want)
		}
	}
}

// TestReadmeListsEveryMetric keeps the README's metric table in step with documentation.md
// (generated from metadata.yaml): every Prometheus name there, optional ones included.
func TestReadmeListsEveryMetric(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "receiver", "codexrayreceiver", "documentation.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Rows of the two metric tables: | `otel.name` | `prometheus_name` | ...
	var names []string
	inMetrics := false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "## ") {
			inMetrics = strings.Contains(line, "etrics")
			continue
		}
		if m := regexp.MustCompile("^\\| `[^`]+` \\| `([a-z0-9_]+)` \\|").FindStringSubmatch(line); inMetrics && m != nil {
			names = append(names, m[1])
		}
	}
	if len(names) < 30 {
		t.Fatalf("found only %d metrics in documentation.md: has its table format changed?", len(names))
	}
	for _, n := range names {
		if !bytes.Contains(readme, []byte("`"+n+"`")) {
			t.Errorf("README.md's metric table lacks %s (documentation.md has it)", n)
		}
	}
}
