package cgroups

import "testing"

func TestIdentify(t *testing.T) {
	const (
		id     = "7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
		uid    = "8d4e1f6a-52b3-4c70-9e21-3f5a6b7c8d90"
		uidSys = "8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90"
	)
	tests := []struct {
		path string
		want Identity
	}{
		// docker
		{"/docker/" + id, Identity{KindDocker, id, "", "/docker/" + id}},
		{"/system.slice/docker-" + id + ".scope", Identity{KindDocker, id, "", "/system.slice/docker-" + id + ".scope"}},
		{"/docker/" + id + "/nested", Identity{KindDocker, id, "", "/docker/" + id}},
		// containerd, cgroupfs: its CRI namespace directory
		{"/k8s.io/" + id, Identity{KindContainerd, id, "", "/k8s.io/" + id}},
		{"/system.slice/cri-containerd-" + id + ".scope", Identity{KindContainerd, id, "", "/system.slice/cri-containerd-" + id + ".scope"}},
		// kubepods, cgroupfs driver: all QoS classes; the runtime is not in the path
		{"/kubepods/pod" + uid + "/" + id, Identity{KindKubepods, id, uid, "/kubepods/pod" + uid + "/" + id}},
		{"/kubepods/burstable/pod" + uid + "/" + id, Identity{KindKubepods, id, uid, "/kubepods/burstable/pod" + uid + "/" + id}},
		{"/kubepods/besteffort/pod" + uid + "/" + id, Identity{KindKubepods, id, uid, "/kubepods/besteffort/pod" + uid + "/" + id}},
		{"/kubepods/burstable/pod" + uid + "/crio-" + id, Identity{KindCRIO, id, uid, "/kubepods/burstable/pod" + uid + "/crio-" + id}},
		// kubepods, systemd driver: all QoS classes and runtimes
		{
			"/kubepods.slice/kubepods-pod" + uidSys + ".slice/cri-containerd-" + id + ".scope",
			Identity{KindContainerd, id, uid, "/kubepods.slice/kubepods-pod" + uidSys + ".slice/cri-containerd-" + id + ".scope"},
		},
		{
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSys + ".slice/crio-" + id + ".scope",
			Identity{KindCRIO, id, uid, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSys + ".slice/crio-" + id + ".scope"},
		},
		{
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSys + ".slice/docker-" + id + ".scope",
			Identity{KindDocker, id, uid, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSys + ".slice/docker-" + id + ".scope"},
		},
		// systemd driver seen through a cgroup namespace (kind, nested containerd)
		{
			"/system.slice/containerd.service/kubepods-burstable-pod" + uidSys + ".slice:cri-containerd:" + id,
			Identity{KindContainerd, id, uid, "/system.slice/containerd.service/kubepods-burstable-pod" + uidSys + ".slice:cri-containerd:" + id},
		},
		// pod-level and QoS cgroups are not containers
		{"/kubepods/burstable/pod" + uid, Identity{KindNone, "", "", "/kubepods/burstable/pod" + uid}},
		{"/kubepods.slice/kubepods-burstable.slice", Identity{KindNone, "", "", "/kubepods.slice/kubepods-burstable.slice"}},
		// CRI-O
		{"/system.slice/crio-" + id + ".scope", Identity{KindCRIO, id, "", "/system.slice/crio-" + id + ".scope"}},
		{"/system.slice/crio-conmon-" + id + ".scope", Identity{KindNone, "", "", "/system.slice/crio-conmon-" + id + ".scope"}},
		// podman, rootful and rootless (inside user.slice), with its "container" sub-cgroup
		{"/machine.slice/libpod-" + id + ".scope", Identity{KindPodman, id, "", "/machine.slice/libpod-" + id + ".scope"}},
		{"/machine.slice/libpod-" + id + ".scope/container", Identity{KindPodman, id, "", "/machine.slice/libpod-" + id + ".scope"}},
		{
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope",
			Identity{KindPodman, id, "", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope"},
		},
		{"/machine.slice/libpod-conmon-" + id + ".scope", Identity{KindNone, "", "", "/machine.slice/libpod-conmon-" + id + ".scope"}},
		{"/libpod_parent/libpod-" + id, Identity{KindPodman, id, "", "/libpod_parent/libpod-" + id}},
		// systemd services
		{"/system.slice/nginx.service", Identity{KindSystemd, "nginx.service", "", "/system.slice/nginx.service"}},
		{"/system.slice/containerd.service/worker", Identity{KindSystemd, "containerd.service", "", "/system.slice/containerd.service"}},
		{"/system.slice/system-getty.slice/getty@tty1.service", Identity{KindSystemd, "getty@tty1.service", "", "/system.slice/system-getty.slice/getty@tty1.service"}},
		// not containers
		{"/", Identity{KindNone, "", "", "/"}},
		{"", Identity{KindNone, "", "", "/"}},
		{"/init.scope", Identity{KindNone, "", "", "/init.scope"}},
		{"/user.slice/user-0.slice/session-1.scope", Identity{KindNone, "", "", "/user.slice/user-0.slice/session-1.scope"}},
		// everything else: other cgroups
		{"/process_api/62565ef583e86d5aca5ca9b2c6406f80", Identity{KindOther, "", "", "/process_api/62565ef583e86d5aca5ca9b2c6406f80"}},
		{"/codexray-test-3", Identity{KindOther, "", "", "/codexray-test-3"}},
		{"/system.slice/run-r1234.scope", Identity{KindOther, "", "", "/system.slice/run-r1234.scope"}},
		{"/system.slice/.service", Identity{KindOther, "", "", "/system.slice/.service"}},
		{"/docker/notanid", Identity{KindOther, "", "", "/docker/notanid"}},
		{"/docker/" + id[:63] + "G", Identity{KindOther, "", "", "/docker/" + id[:63] + "G"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := Identify(tt.path); got != tt.want {
				t.Fatalf("Identify(%q)\n got  %+v\n want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{
		KindNone: "none", KindDocker: "docker", KindContainerd: "containerd", KindCRIO: "crio",
		KindPodman: "podman", KindKubepods: "kubepods", KindSystemd: "systemd", KindOther: "cgroup", Kind(99): "unknown",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), s)
		}
	}
}

func BenchmarkIdentify(b *testing.B) {
	path := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d4e1f6a_52b3_4c70_9e21_3f5a6b7c8d90.slice/cri-containerd-7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14.scope"
	b.ReportAllocs()
	for b.Loop() {
		if Identify(path).Kind != KindContainerd {
			b.Fatal("wrong kind")
		}
	}
}
