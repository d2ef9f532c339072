package logs

import (
	"testing"

	"github.com/codexray/codexray-node-agent/internal/containers"
)

const (
	testCgroupID  = "4c01db0b339c7bd4a2da1c5b5d7c3b6e8b7fa8d2a3f33d9b2e1c4a5b6c7d8e9f"
	testPodUID    = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
	testPodUIDEsc = "1b2c3d4e_5f60_4a7b_8c9d_0e1f2a3b4c5d"
)

// The cgroup of a journal entry's sender maps to the ID the registry gives that container.
func TestContainerOfCgroup(t *testing.T) {
	k8s := &containers.Container{ID: "/k8s/shop/api-1/api", Name: "api"}
	lookup := &fakeLookup{byRuntime: map[string]*containers.Container{testCgroupID: k8s}}
	tests := []struct {
		name, path string
		lookup     ContainerLookup
		want       containers.ID
		wantKnown  bool // the registry's own container
		wantNode   bool
	}{
		{"service", "/system.slice/nginx.service", noLookup{}, "/system.slice/nginx.service", false, false},
		{"a service's sub-cgroup", "/system.slice/nginx.service/worker", noLookup{}, "/system.slice/nginx.service", false, false},
		{
			"templated service in its slice", "/system.slice/system-getty.slice/getty@tty1.service",
			noLookup{},
			"/system.slice/system-getty.slice/getty@tty1.service", false, false,
		},
		{
			"scope outside system.slice", "/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope",
			noLookup{},
			"/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope", false, false,
		},
		{"transient scope in system.slice", "/system.slice/run-r3f2a.scope", noLookup{}, "/system.slice/run-r3f2a.scope", false, false},
		{
			"docker scope, registry does not know it", "/system.slice/docker-" + testCgroupID + ".scope",
			noLookup{},
			containers.ID("/docker/" + testCgroupID), false, false,
		},
		{"CRI container scope the registry knows", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testPodUIDEsc +
			".slice/cri-containerd-" + testCgroupID + ".scope", lookup, k8s.ID, true, false},
		{"CRI container scope, registry does not know it", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testPodUIDEsc +
			".slice/cri-containerd-" + testCgroupID + ".scope", noLookup{}, containers.ID("/containerd/" + testCgroupID), false, false},
		{
			"kubepods cgroupfs driver", "/kubepods/besteffort/pod" + testPodUID + "/" + testCgroupID,
			noLookup{},
			containers.ID("/kubepods/" + testPodUID + "/" + testCgroupID), false, false,
		},
		{"user session", "/user.slice/user-1000.slice/session-3.scope", lookup, NodeID, false, true},
		{"init.scope", "/init.scope", lookup, NodeID, false, true},
		{"root", "/", lookup, NodeID, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, c, ok := containerOfCgroup(tt.lookup, tt.path, true)
			if id != tt.want || (c != nil) != tt.wantKnown || ok == tt.wantNode {
				t.Fatalf("got %q (registry's: %v, container: %v), want %q (registry's: %v, container: %v)",
					id, c != nil, ok, tt.want, tt.wantKnown, !tt.wantNode)
			}
		})
	}
}

// Without containers.include_other_cgroups, entries of cgroups that are neither a runtime's
// container nor a service are the node's, as the registry reports no such cgroup.
func TestContainerOfCgroupWithoutOtherCgroups(t *testing.T) {
	for path, want := range map[string]containers.ID{
		"/machine.slice/machine-vm1.scope":                           NodeID,
		"/process_api/7b7dbf92":                                      NodeID,
		"/system.slice/run-r3f2a.scope":                              NodeID,
		"/system.slice/nginx.service":                                "/system.slice/nginx.service",
		"/system.slice/docker-" + testCgroupID + ".scope":            containers.ID("/docker/" + testCgroupID),
		"/kubepods/besteffort/pod" + testPodUID + "/" + testCgroupID: containers.ID("/kubepods/" + testPodUID + "/" + testCgroupID),
	} {
		id, _, ok := containerOfCgroup(noLookup{}, path, false)
		if id != want || ok != (want != NodeID) {
			t.Errorf("%s: got %q (container: %v), want %q", path, id, ok, want)
		}
	}
}

// Without _SYSTEMD_CGROUP, a unit's name alone says where systemd put it by default.
func TestUnitCgroupPath(t *testing.T) {
	tests := []struct{ unit, want string }{
		{"nginx.service", "/system.slice/nginx.service"},
		{"getty@tty1.service", "/system.slice/system-getty.slice/getty@tty1.service"},
		{"serial-getty@ttyS0.service", "/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service"},
		{"container-getty@1.service", "/system.slice/system-container\\x2dgetty.slice/container-getty@1.service"},
		{"docker-" + testCgroupID + ".scope", "/system.slice/docker-" + testCgroupID + ".scope"},
		{"init.scope", "/init.scope"},
		{"session-3.scope", "/user.slice/session-3.scope"},
		{"user@1000.service", "/user.slice/user@1000.service"},
	}
	for _, tt := range tests {
		if got := unitCgroupPath(tt.unit); got != tt.want {
			t.Errorf("unitCgroupPath(%q) = %q, want %q", tt.unit, got, tt.want)
		}
	}
	// And through the registry's identification: a session is the node's, a docker scope its
	// container's, a templated instance its own cgroup path.
	for unit, want := range map[string]containers.ID{
		"session-3.scope":                   NodeID,
		"init.scope":                        NodeID,
		"docker-" + testCgroupID + ".scope": containers.ID("/docker/" + testCgroupID),
		"getty@tty1.service":                "/system.slice/system-getty.slice/getty@tty1.service",
	} {
		if got, _, _ := containerOfCgroup(noLookup{}, unitCgroupPath(unit), true); got != want {
			t.Errorf("unit %q: got %q, want %q", unit, got, want)
		}
	}
}

func TestEscapeUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"getty":        "getty",
		"serial-getty": "serial\\x2dgetty",
		"a/b":          "a-b",
		".hidden":      "\\x2ehidden",
		"x y:z_1.2":    "x\\x20y:z_1.2",
	} {
		if got := escapeUnitName(in); got != want {
			t.Errorf("escapeUnitName(%q) = %q, want %q", in, got, want)
		}
	}
}
