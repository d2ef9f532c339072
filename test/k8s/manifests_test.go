package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

func loadBoth(t *testing.T) (map[string]any, *PlainManifest) {
	t.Helper()
	op, err := LoadOperatorSpec(RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadPlainManifest(RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	return op, m
}

// TestManifestsAgree: the plain DaemonSet runs the pod the operator manifest describes.
func TestManifestsAgree(t *testing.T) {
	op, m := loadBoth(t)
	for _, d := range Disagreements(op, m) {
		t.Error(d)
	}
	// The comparison sees a drift in any compared field, the config included.
	for _, mutate := range []func(op map[string]any){
		func(op map[string]any) { op["hostPID"] = false },
		func(op map[string]any) { op["image"] = "other:1" },
		func(op map[string]any) { op["volumeMounts"] = op["volumeMounts"].([]any)[1:] },
		func(op map[string]any) { op["env"] = op["env"].([]any)[1:] },
		func(op map[string]any) {
			op["ports"] = []any{map[string]any{"name": "prometheus", "port": 9465, "protocol": "TCP"}}
		},
		func(op map[string]any) {
			Dig[map[string]any](op, "config", "receivers", "codexray")["collection_interval"] = "1m"
		},
	} {
		op, m := loadBoth(t)
		mutate(op)
		if len(Disagreements(op, m)) == 0 {
			t.Errorf("a drifted operator manifest was found to agree: %v", op)
		}
	}
}

// TestPlainManifestShape checks what only the plain manifest has: its objects fit together
// (namespace, service account, the ConfigMap the config volume names, the path --config
// reads), the probes ask the health_check extension, and the pod is not privileged.
func TestPlainManifestShape(t *testing.T) {
	_, m := loadBoth(t)
	const ns = "codexray"
	kinds := map[string]string{}
	for _, o := range m.Objects {
		kind, name := Dig[string](o, "kind"), Dig[string](o, "metadata", "name")
		kinds[kind] = name
		if kind != "Namespace" && Dig[string](o, "metadata", "namespace") != ns {
			t.Errorf("%s %s is not in namespace %s", kind, name, ns)
		}
	}
	if kinds["Namespace"] != ns {
		t.Errorf("no Namespace %s", ns)
	}
	if sa := Dig[string](m.PodSpec, "serviceAccountName"); sa == "" || kinds["ServiceAccount"] != sa {
		t.Errorf("serviceAccountName %q, ServiceAccount %q", sa, kinds["ServiceAccount"])
	}
	if v, ok := m.PodSpec["automountServiceAccountToken"].(bool); !ok || v {
		t.Error("the agent talks to no API server: automountServiceAccountToken must be false")
	}
	sel := Dig[map[string]any](m.DaemonSet, "spec", "selector", "matchLabels")
	labels := Dig[map[string]any](m.DaemonSet, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("selector %s=%v does not match the template's labels %v", k, v, labels)
		}
	}
	// --config names config.yaml in the mount of the ConfigMap volume.
	var cmName, mountPath string
	for _, v := range Dig[[]any](m.PodSpec, "volumes") {
		if vm := v.(map[string]any); vm["name"] == configVolume {
			cmName = Dig[string](vm, "configMap", "name")
		}
	}
	for _, v := range Dig[[]any](m.Container, "volumeMounts") {
		if vm := v.(map[string]any); vm["name"] == configVolume {
			mountPath, _ = vm["mountPath"].(string)
		}
	}
	if cmName == "" || cmName != kinds["ConfigMap"] {
		t.Errorf("config volume names ConfigMap %q, the manifest has %q", cmName, kinds["ConfigMap"])
	}
	args := fmt.Sprint(m.Container["args"])
	if want := fmt.Sprint([]any{"--config", mountPath + "/config.yaml"}); mountPath == "" || args != want {
		t.Errorf("args %s, want %s", args, want)
	}
	// Probes ask health_check's port.
	endpoint := Dig[string](m.Config, "extensions", "health_check", "endpoint")
	_, port, _ := strings.Cut(endpoint, "}:")
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if got := fmt.Sprint(Dig[any](m.Container, probe, "httpGet", "port")); port == "" || got != port {
			t.Errorf("%s port %s, health_check endpoint %q", probe, got, endpoint)
		}
	}
	sc := Dig[map[string]any](m.Container, "securityContext")
	if sc["privileged"] != false || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("securityContext %v: want privileged and allowPrivilegeEscalation false", sc)
	}
	if add := fmt.Sprint(Dig[[]any](sc, "capabilities", "add")); strings.Contains(add, "SYS_ADMIN") {
		t.Errorf("capabilities.add %s has SYS_ADMIN", add)
	}
}

// TestAgentImage checks the image the scenario runs against deploy/Dockerfile's runtime
// stage: the same entrypoint and command, the config the command names, and every library
// the binary needs, so the image runs where only it is (no host /lib).
func TestAgentImage(t *testing.T) {
	entrypoint, cmd, err := DockerfileProcess(filepath.Join(RepoRoot(), "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(entrypoint, []string{"/otelcol-codexray"}) || !slices.Equal(cmd, []string{"--config", "/etc/otelcol-codexray/config.yaml"}) {
		t.Errorf("Dockerfile ENTRYPOINT %v CMD %v", entrypoint, cmd)
	}
	dist := os.Getenv("CODEXRAY_DIST")
	if dist == "" {
		dist = filepath.Join(RepoRoot(), "_build", "otelcol-codexray")
	}
	_, err = os.Stat(dist)
	testutil.SkipUnlessPrivileged(t, err == nil, "distribution not built (run make build): %v", err)
	img, err := AgentImage(RepoRoot(), dist, "example.org/agent:1")
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	for _, f := range img.Files {
		paths[f.Path] = f.Source
	}
	for _, want := range []string{"/otelcol-codexray", cmd[1]} {
		if _, ok := paths[want]; !ok {
			t.Errorf("image lacks %s", want)
		}
	}
	var libsystemd, libc bool
	for p := range paths {
		libsystemd = libsystemd || strings.HasSuffix(p, "/libsystemd.so.0")
		libc = libc || strings.HasSuffix(p, "/libc.so.6")
	}
	if !libsystemd || !libc {
		t.Errorf("image lacks libc or libsystemd: %v", paths)
	}
	// The image's files alone run the binary: chroot into them and ask its version.
	testutil.RequireRoot(t)
	dir := t.TempDir()
	tarball := filepath.Join(dir, "image.tar")
	if err := img.WriteFile(tarball); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	for p, src := range paths {
		if src == "" {
			continue
		}
		dst := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-L", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v %s", src, err, out)
		}
	}
	out, err := exec.Command("chroot", rootfs, entrypoint[0], "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "otelcol-codexray") {
		t.Errorf("%s --version in a root of the image's files only: %v\n%s", entrypoint[0], err, out)
	}
}
