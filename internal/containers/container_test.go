package containers

import (
	"testing"

	"github.com/codexray/codexray-node-agent/internal/cgroups"
)

func TestIDOf(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const podUID = "1c5f2b7e-6e2d-4c39-9a0b-4f1f2d3c4b5a"
	tests := []struct {
		name string
		path string // identified with cgroups.Identify, so the rule is tested on real shapes
		want ID
	}{
		{"docker cgroupfs", "/docker/" + hex, ID("/docker/" + hex)},
		{"docker systemd driver", "/system.slice/docker-" + hex + ".scope", ID("/docker/" + hex)},
		{"containerd systemd driver under kubepods", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
			"1c5f2b7e_6e2d_4c39_9a0b_4f1f2d3c4b5a.slice/cri-containerd-" + hex + ".scope", ID("/containerd/" + hex)},
		{"crio", "/kubepods.slice/crio-" + hex + ".scope", ID("/crio/" + hex)},
		{"podman", "/machine.slice/libpod-" + hex + ".scope", ID("/podman/" + hex)},
		{"kubepods cgroupfs", "/kubepods/besteffort/pod" + podUID + "/" + hex, ID("/kubepods/" + podUID + "/" + hex)},
		{"systemd service", "/system.slice/nginx.service", "/system.slice/nginx.service"},
		{"templated service", "/system.slice/system-getty.slice/getty@tty1.service", "/system.slice/system-getty.slice/getty@tty1.service"},
		{"other cgroup", "/machine.slice/machine-vm1.scope", "/machine.slice/machine-vm1.scope"},
		{"root", "/", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ident := cgroups.Identify(tt.path)
			if got := IDOf(ident); got != tt.want {
				t.Errorf("IDOf(%+v) = %q, want %q", ident, got, tt.want)
			}
		})
	}
}

// TestIDOfIdentity pins the rule on identities themselves, independent of path recognition.
func TestIDOfIdentity(t *testing.T) {
	tests := []struct {
		ident cgroups.Identity
		want  ID
	}{
		{cgroups.Identity{Kind: cgroups.KindDocker, ID: "abc", Path: "/docker/abc"}, "/docker/abc"},
		{cgroups.Identity{Kind: cgroups.KindContainerd, ID: "abc", Path: "/k8s.io/abc"}, "/containerd/abc"},
		{cgroups.Identity{Kind: cgroups.KindCRIO, ID: "abc", Path: "/crio-abc"}, "/crio/abc"},
		{cgroups.Identity{Kind: cgroups.KindPodman, ID: "abc", Path: "/libpod-abc.scope"}, "/podman/abc"},
		{cgroups.Identity{Kind: cgroups.KindKubepods, ID: "abc", PodUID: "u1", Path: "/kubepods/podu1/abc"}, "/kubepods/u1/abc"},
		{cgroups.Identity{Kind: cgroups.KindSystemd, ID: "a.service", Path: "/system.slice/a.service"}, "/system.slice/a.service"},
		{cgroups.Identity{Kind: cgroups.KindOther, Path: "/x/y"}, "/x/y"},
		{cgroups.Identity{Kind: cgroups.KindNone, Path: "/"}, "/"},
	}
	for _, tt := range tests {
		if got := IDOf(tt.ident); got != tt.want {
			t.Errorf("IDOf(%+v) = %q, want %q", tt.ident, got, tt.want)
		}
	}
}
