package cgroups

import (
	"strings"
	"testing"
)

func TestParseProcCgroup(t *testing.T) {
	const dockerID = "7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
	tests := []struct {
		name    string
		in      string
		want    Paths
		primary string
		wantErr string
	}{
		{
			name:    "pure v2",
			in:      "0::/system.slice/docker-" + dockerID + ".scope\n",
			want:    Paths{Unified: "/system.slice/docker-" + dockerID + ".scope"},
			primary: "/system.slice/docker-" + dockerID + ".scope",
		},
		{
			name: "hybrid like this VM",
			in: "9:name=systemd:/docker/" + dockerID + "\n8:pids:/docker/" + dockerID + "\n7:blkio:/docker/" + dockerID +
				"\n4:memory:/docker/" + dockerID + "\n2:cpuacct:/docker/" + dockerID + "\n1:cpu:/docker/" + dockerID + "\n0::/docker/" + dockerID + "\n",
			want: Paths{
				Unified: "/docker/" + dockerID, Systemd: "/docker/" + dockerID, CPU: "/docker/" + dockerID,
				CPUAcct: "/docker/" + dockerID, Memory: "/docker/" + dockerID, Blkio: "/docker/" + dockerID, Other: "/docker/" + dockerID,
			},
			primary: "/docker/" + dockerID,
		},
		{
			name:    "v1 co-mounted cpu,cpuacct and root v2",
			in:      "4:cpu,cpuacct:/kubepods/pod1/abc\n10:memory:/kubepods/pod1/abc\n0::/\n",
			want:    Paths{Unified: "/", CPU: "/kubepods/pod1/abc", CPUAcct: "/kubepods/pod1/abc", Memory: "/kubepods/pod1/abc"},
			primary: "/kubepods/pod1/abc",
		},
		{
			name:    "shell of this VM: memory only",
			in:      "9:name=systemd:/\n4:memory:/process_api/62565e\n2:cpuacct:/\n1:cpu:/\n0::/\n",
			want:    Paths{Unified: "/", Systemd: "/", CPU: "/", CPUAcct: "/", Memory: "/process_api/62565e"},
			primary: "/process_api/62565e",
		},
		{
			name:    "path with colons (nested systemd driver)",
			in:      "0::/system.slice/containerd.service/kubepods-pod1.slice:cri-containerd:" + dockerID + "\n",
			want:    Paths{Unified: "/system.slice/containerd.service/kubepods-pod1.slice:cri-containerd:" + dockerID},
			primary: "/system.slice/containerd.service/kubepods-pod1.slice:cri-containerd:" + dockerID,
		},
		{
			name:    "deleted cgroup of a zombie",
			in:      "0::/docker/" + dockerID + " (deleted)\n",
			want:    Paths{Unified: "/docker/" + dockerID},
			primary: "/docker/" + dockerID,
		},
		{name: "root only", in: "0::/\n", want: Paths{Unified: "/"}, primary: "/"},
		{name: "empty", in: "", wantErr: "no cgroup listed"},
		{name: "no colon", in: "garbage\n", wantErr: "no ':'"},
		{name: "one colon", in: "0:/x\n", wantErr: "no controller list"},
		{name: "bad hierarchy id", in: "x::/a\n", wantErr: "not a number"},
		{name: "relative path", in: "0::docker/x\n", wantErr: "not absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcCgroup([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
			if p := got.Primary(); p != tt.primary {
				t.Fatalf("Primary() = %q, want %q", p, tt.primary)
			}
		})
	}
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("0::/system.slice/nginx.service\n"))
	f.Add([]byte("4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/\n"))
	f.Add([]byte("0::/a:b:c (deleted)\n"))
	f.Add([]byte("::\n:"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProcCgroup(data)
		if err != nil {
			return
		}
		prim := p.Primary()
		if prim == "" || prim[0] != '/' {
			t.Fatalf("Primary() = %q from accepted input %q", prim, data)
		}
		id := Identify(prim)
		if id.Kind != KindNone && !strings.HasPrefix(prim, id.Path) {
			t.Fatalf("identity path %q is not a prefix of %q", id.Path, prim)
		}
	})
}

func TestPathsIdentify(t *testing.T) {
	const id = "7ad0369cf258be147ad0369cf258be147ad0369cf258be147ad0369cf258be14"
	tests := []struct {
		name      string
		paths     Paths
		want      Identity
		container Paths
	}{
		{
			name:      "v1 user session but hand-made freezer cgroup",
			paths:     Paths{Unified: "/", Systemd: "/user.slice/user-0.slice/session-1.scope", Other: "/codexray-test-7"},
			want:      Identity{Kind: KindOther, Path: "/codexray-test-7"},
			container: Paths{Other: "/codexray-test-7"},
		},
		{
			name:      "container beats the service it runs under",
			paths:     Paths{Systemd: "/system.slice/containerd.service", CPU: "/k8s.io/" + id},
			want:      Identity{Kind: KindContainerd, ID: id, Path: "/k8s.io/" + id},
			container: Paths{CPU: "/k8s.io/" + id},
		},
		{
			name:      "podman sub-cgroup is trimmed to the container",
			paths:     Paths{Unified: "/machine.slice/libpod-" + id + ".scope/container"},
			want:      Identity{Kind: KindPodman, ID: id, Path: "/machine.slice/libpod-" + id + ".scope"},
			container: Paths{Unified: "/machine.slice/libpod-" + id + ".scope"},
		},
		{
			name:      "root everywhere",
			paths:     Paths{Unified: "/", CPU: "/"},
			want:      Identity{Kind: KindNone, Path: "/"},
			container: Paths{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.paths.Identify()
			if got != tt.want {
				t.Fatalf("Identify() = %+v, want %+v", got, tt.want)
			}
			if c := tt.paths.ContainerPaths(got); c != tt.container {
				t.Fatalf("ContainerPaths() = %+v, want %+v", c, tt.container)
			}
		})
	}
}
