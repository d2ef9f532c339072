package codexrayreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

const (
	hexA = "7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
	hexB = "e147ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258b"
)

// allAttributes is a resource builder with every attribute on, coroot's too.
func allAttributes() *metadata.ResourceBuilder {
	cfg := metadata.DefaultResourceAttributesConfig()
	cfg.CorootMachineID.Enabled, cfg.CorootSystemUUID.Enabled = true, true
	cfg.CorootContainerID.Enabled, cfg.CorootAppID.Enabled = true, true
	cfg.CorootAz.Enabled, cfg.CorootRegion.Enabled = true, true
	return metadata.NewResourceBuilder(cfg)
}

// Each kind of container is described once for OTLP (the semantic conventions, container.id
// = the runtime's id) and once for Coroot (container_id in coroot-node-agent's format), and a
// systemd unit is not made a container.
func TestDescribeContainer(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		c    *containers.Container
		want map[string]any
	}{
		{
			"named docker container",
			&containers.Container{ID: "/docker/" + hexA, Runtime: "docker", RuntimeID: hexA, Name: "web", Image: "nginx:1.27"},
			map[string]any{
				"codexray.container.id": "/docker/" + hexA, "container.id": hexA, "container.name": "web",
				"container.image.name": "nginx", "container.image.tags": []any{"1.27"}, "container.runtime.name": "docker",
				"container_id": "/docker/web",
			},
		},
		{
			"Kubernetes container of a Deployment (containerd, names from the pod sandbox)",
			&containers.Container{
				ID: "/k8s/shop/api-7d9f8b6c5d-x2x4z/api", Runtime: "containerd", RuntimeID: hexB, Name: "api",
				Image: "registry.example:5000/shop/api@sha256:0123", PodName: "api-7d9f8b6c5d-x2x4z", PodUID: "8d4e1f6a",
				Namespace: "shop", ContainerName: "api", Labels: map[string]string{"team": "a"},
			},
			map[string]any{
				"codexray.container.id": "/k8s/shop/api-7d9f8b6c5d-x2x4z/api", "container.id": hexB, "container.name": "api",
				"container.image.name": "registry.example:5000/shop/api", "container.runtime.name": "containerd",
				"k8s.pod.name": "api-7d9f8b6c5d-x2x4z", "k8s.pod.uid": "8d4e1f6a", "k8s.namespace.name": "shop", "k8s.container.name": "api",
				"container_id": "/k8s/shop/api-7d9f8b6c5d-x2x4z/api", "app_id": "/k8s/shop/api",
			},
		},
		{
			"CRI-O container of a CronJob run",
			&containers.Container{
				ID: "/k8s/ops/backup-29453700-bcdfg/backup", Runtime: "cri-o", RuntimeID: hexA, Name: "backup",
				PodName: "backup-29453700-bcdfg", Namespace: "ops", ContainerName: "backup",
			},
			map[string]any{
				"codexray.container.id": "/k8s/ops/backup-29453700-bcdfg/backup", "container.id": hexA, "container.name": "backup",
				"container.runtime.name": "cri-o", "k8s.pod.name": "backup-29453700-bcdfg", "k8s.namespace.name": "ops",
				"k8s.container.name": "backup", "container_id": "/k8s-cronjob/ops/backup/backup",
			},
		},
		{
			"systemd unit",
			&containers.Container{ID: "/system.slice/nginx.service", Runtime: "systemd", RuntimeID: "nginx.service", Name: "nginx.service", CgroupPath: "/system.slice/nginx.service"},
			map[string]any{
				"codexray.container.id": "/system.slice/nginx.service", "codexray.systemd.unit": "nginx.service",
				"container_id": "/system.slice/nginx.service",
			},
		},
		{
			"kubepods container no runtime described",
			&containers.Container{ID: "/kubepods/8d4e1f6a/" + hexB, Runtime: "kubepods", RuntimeID: hexB, PodUID: "8d4e1f6a"},
			map[string]any{
				"codexray.container.id": "/kubepods/8d4e1f6a/" + hexB, "container.id": hexB, "k8s.pod.uid": "8d4e1f6a",
				"container_id": "/kubepods/8d4e1f6a/" + hexB,
			},
		},
		{
			"other cgroup (include_other_cgroups)",
			&containers.Container{ID: "/machine.slice/vm1.scope", Runtime: "cgroup", Name: "/machine.slice/vm1.scope", CgroupPath: "/machine.slice/vm1.scope"},
			map[string]any{"codexray.container.id": "/machine.slice/vm1.scope", "container_id": "/machine.slice/vm1.scope"},
		},
		{
			"known to a source only (its id)",
			&containers.Container{ID: "/docker/" + hexA},
			map[string]any{"codexray.container.id": "/docker/" + hexA, "container_id": "/docker/" + hexA},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := allAttributes()
			describeContainer(rb, tt.c, corootNamesOf(tt.c, now))
			assert.Equal(t, tt.want, rb.Emit().Attributes().AsRaw())
		})
	}
}

// OTLP users get the semantic conventions only: coroot's labels are off by default.
func TestCorootLabelsOffByDefault(t *testing.T) {
	c := &containers.Container{ID: "/docker/" + hexA, Runtime: "docker", RuntimeID: hexA, Name: "web"}
	rb := metadata.NewResourceBuilder(metadata.DefaultResourceAttributesConfig())
	describeContainer(rb, c, corootNamesOf(c, time.Now()))
	attrs := rb.Emit().Attributes().AsRaw()
	for _, k := range []string{"container_id", "app_id", "machine_id", "system_uuid"} {
		assert.NotContains(t, attrs, k)
	}
	assert.Equal(t, hexA, attrs["container.id"])
}

func TestSplitImage(t *testing.T) {
	for ref, want := range map[string][2]string{
		"nginx":                                  {"nginx", ""},
		"nginx:1.27":                             {"nginx", "1.27"},
		"docker.io/library/nginx:1.27-alpine":    {"docker.io/library/nginx", "1.27-alpine"},
		"registry.example:5000/shop/api":         {"registry.example:5000/shop/api", ""},
		"registry.example:5000/shop/api:v2":      {"registry.example:5000/shop/api", "v2"},
		"shop/api@sha256:0123abcd":               {"shop/api", ""},
		"shop/api:v2@sha256:0123abcd":            {"shop/api", "v2"},
		"sha256:0123456789abcdef0123456789abcde": {"", ""},
		"":                                       {"", ""},
	} {
		name, tag := splitImage(ref)
		assert.Equal(t, want, [2]string{name, tag}, ref)
	}
}

// Two containers with one coroot container_id in a collection: the running one, else the
// newest, carries it; the other is left out of the coroot-labelled output.
func TestAssignCorootNames(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := &containers.Container{ID: "/docker/" + hexA, Runtime: "docker", RuntimeID: hexA, Name: "web", FirstSeen: t0}
	newer := &containers.Container{ID: "/docker/" + hexB, Runtime: "docker", RuntimeID: hexB, Name: "web", FirstSeen: t0.Add(time.Minute)}
	other := &containers.Container{ID: "/system.slice/nginx.service", Runtime: "systemd", Name: "nginx.service", CgroupPath: "/system.slice/nginx.service"}

	names, skip := assignCorootNames([]*containers.Container{old, other, newer}, t0)
	assert.Equal(t, []bool{true, false, false}, skip, "the newer of two running containers named web carries /docker/web")
	assert.Equal(t, "/docker/web", names[2].containerID)
	assert.Equal(t, "/system.slice/nginx.service", names[1].containerID)

	names, skip = assignCorootNames([]*containers.Container{newer, old}, t0)
	assert.Equal(t, []bool{false, true}, skip, "order does not matter")
	assert.Equal(t, "/docker/web", names[0].containerID)
}
