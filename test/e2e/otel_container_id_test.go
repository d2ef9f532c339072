package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// sdkContainerID is the line cxworkload containerid prints.
var sdkContainerID = regexp.MustCompile(`otel-sdk container\.id=([0-9a-f]*)`)

// TestOTelSDKContainerIDMatches: an application's own telemetry and the agent's metrics of its
// container join on container.id. Inside a docker container and inside a CRI (Kubernetes-shaped)
// container, the OpenTelemetry Go SDK's container detector (resource.WithContainerID, run by
// testdata/cxworkload) computes container.id; the distribution with the shipped
// config/otlp.yaml pushes to an OTLP backend, where the container's resource must carry the
// same container.id, its runtime's name in container.runtime.name, and the agent's own id in
// codexray.container.id.
func TestOTelSDKContainerIDMatches(t *testing.T) {
	testutil.RequireDocker(t)
	testutil.RequireContainerd(t)
	bin := distBinary(t)

	backend := startOTLPBackend(t, bin, false, "container.id", "codexray.container.id", "container.runtime.name", "container.name", "k8s.pod.name")

	suffix := strconv.Itoa(os.Getpid())
	dockerName := "cx-sdkid-" + suffix
	dockerID := dockerWorkload(t, dockerName, nil, "containerid")
	podLogs := t.TempDir()
	pod := startCRIPod(t, "cx-sdkid-"+suffix, "cx-sdkid", podLogs)
	criID := pod.run(t, "app", "containerid")

	overlay := writeFile(t, "sdkid-overlay.yaml", fmt.Sprintf(`
receivers:
  codexray:
    containers:
      cri_sockets: [%s]
    cloud:
      dmi_root: %s
`, testutil.ContainerdSocket, t.TempDir()))
	agent := startLoggedProcess(t, []string{
		"CODEXRAY_OTLP_ENDPOINT=" + backend.otlp,
		"CODEXRAY_OTLP_INSECURE=true",
		"CODEXRAY_COLLECTION_INTERVAL=2s",
		"CODEXRAY_HEALTH_ENDPOINT=" + addr(freePort(t)),
	}, bin, "--config", filepath.Join(repoRoot(t), "config", "otlp.yaml"), "--config", overlay)

	ctx := context.Background()
	// What the SDK found inside each container.
	var fromDocker, fromCRI string
	waitFor(ctx, t, "the SDK's container.id in both containers' output", 30*time.Second, func() (bool, error) {
		out, err := exec.Command("docker", "logs", dockerName).CombinedOutput()
		if m := sdkContainerID.FindSubmatch(out); m != nil {
			fromDocker = string(m[1])
		}
		logs, _ := filepath.Glob(filepath.Join(podLogs, "*", "app", "*.log"))
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			if m := sdkContainerID.FindSubmatch(b); m != nil {
				fromCRI = string(m[1])
			}
		}
		return fromDocker != "" && fromCRI != "", fmt.Errorf("docker %q (%w), CRI %q in %v", fromDocker, err, fromCRI, logs)
	})
	// Sanity: the SDK's rule finds the runtime's id, the value the conventions specify.
	if fromDocker != dockerID || fromCRI != criID {
		t.Fatalf("the SDK found docker %q, CRI %q; the runtimes say %q, %q", fromDocker, fromCRI, dockerID, criID)
	}

	want := []map[string]string{
		{"container_id": fromDocker, "codexray_container_id": "/docker/" + dockerID, "container_runtime_name": "docker", "container_name": dockerName},
		{"container_id": fromCRI, "codexray_container_id": "/k8s/cx-sdkid/" + pod.name + "/app", "container_runtime_name": "containerd", "k8s_pod_name": pod.name},
	}
	waitFor(ctx, t, "the agent's resources of both containers at the OTLP backend", 90*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		backend.requireRunning(t)
		s, err := scrape(backend.prom)
		if err != nil {
			return false, err
		}
		var missing []string
		for _, labels := range want {
			if len(findSamples(s, "container_info", labels)) == 0 {
				var seen []string
				for _, x := range findSamples(s, "container_info", nil) {
					seen = append(seen, fmt.Sprint(x.Labels))
				}
				missing = append(missing, fmt.Sprintf("%v (container_info seen: %s)", labels, strings.Join(seen, "; ")))
			}
		}
		return len(missing) == 0, fmt.Errorf("no container_info with %s", strings.Join(missing, " nor "))
	})
}
