package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/codexray/codexray-node-agent/internal/testutil"
)

// A container that lives less than a scan interval keeps its identity: its log line is
// counted under its name and image, which dockerd still tells once the container exited, not
// under a bare /docker/<id> with image="". The tracer and taskstats are off, so no process
// event or exit record lets the registry catch the container alive: only its log file names it.
func TestShortLivedContainerKeepsItsIdentity(t *testing.T) {
	testutil.RequireDocker(t)
	bin := distBinary(t)
	promPort := freePort(t)
	agent := startLoggedProcess(t, nil, bin, "--config", dockerLogsAgent(t, `
    collection_interval: 1s
    ebpf: {enabled: false}
    taskstats: {enabled: false}`, fmt.Sprintf(`
exporters:
  prometheus:
    endpoint: %s
    resource_constant_labels:
      included: [codexray.container.id, container.name, container.image.name]
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    metrics: {receivers: [codexray], exporters: [prometheus]}
`, addr(promPort))))
	b := &backendView{t: t, addr: addr(promPort)}
	b.awaitAgent(agent)

	name := fmt.Sprintf("codexray-i13-oneshot-%d", time.Now().UnixNano())
	out, err := exec.Command("docker", "run", "--name", name, "--label", "codexray-test=1", "--network", "none",
		testutil.DockerImage, "echo", "hello from a one-shot container").CombinedOutput()
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	inspect, err := exec.Command("docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.State.FinishedAt}}", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(inspect))
	started, _ := time.Parse(time.RFC3339Nano, fields[1])
	finished, _ := time.Parse(time.RFC3339Nano, fields[2])
	t.Logf("the container lived %s", finished.Sub(started))
	id := "/docker/" + fields[0]

	waitFor(context.Background(), t, "the one-shot container's log line under its name and image", 60*time.Second, func() (bool, error) {
		agent.requireRunning(t)
		s, err := b.scrape()
		if err != nil {
			return false, err
		}
		found := findSamples(s, "container_log_messages_total", map[string]string{"codexray_container_id": id})
		if len(found) != 1 || found[0].Value != 1 {
			return false, fmt.Errorf("series %+v", found)
		}
		l := found[0].Labels
		// container.image.name is without the tag, as the semantic conventions have it.
		return l["container_name"] == name && l["container_image_name"] == strings.TrimSuffix(testutil.DockerImage, ":1"),
			fmt.Errorf("labels %v", l)
	})
}
