package corootid

import (
	"strconv"
	"testing"
	"time"
)

func k8s(ns, pod, container string) map[string]string {
	return map[string]string{
		"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod, "io.kubernetes.container.name": container,
		"io.kubernetes.pod.uid": "0f6a6a4e-1111-2222-3333-444455556666",
	}
}

func TestID(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	minutes := func(at time.Time) string { return strconv.FormatInt(at.Unix()/60, 10) }
	cronPod := "backup-" + minutes(now.Add(-time.Hour)) + "-x7k2p"
	for _, tc := range []struct {
		name string
		c    Container
		want string
	}{
		{"docker by name", Container{Runtime: "docker", Name: "my-redis", Labels: map[string]string{"maintainer": "x"}}, "/docker/my-redis"},
		{"docker without name", Container{Runtime: "docker"}, ""},
		{"containerd by name is /docker too", Container{Runtime: "containerd", Name: "nginx-1"}, "/docker/nginx-1"},
		{"crio by name", Container{Runtime: "crio", Name: "web"}, "/docker/web"},
		{"podman", Container{Runtime: "podman", Name: "db"}, "/podman/db"},
		{"k8s on containerd", Container{Runtime: "containerd", Name: "app", Labels: k8s("shop", "cart-7d4b9c8f6-x2k9z", "app")}, "/k8s/shop/cart-7d4b9c8f6-x2k9z/app"},
		{"k8s on docker (cri-dockerd)", Container{Runtime: "docker", Name: "k8s_app_cart_shop_uid_0", Labels: k8s("shop", "cart-0", "app")}, "/k8s/shop/cart-0/app"},
		{"k8s without runtime metadata beyond labels", Container{Runtime: "kubepods", Labels: k8s("default", "web", "nginx")}, "/k8s/default/web/nginx"},
		{"pause container", Container{Runtime: "containerd", Labels: k8s("shop", "cart-0", "POD")}, ""},
		{"pod without container name", Container{Runtime: "containerd", Labels: k8s("shop", "cart-0", "")}, ""},
		{"cronjob run", Container{Runtime: "containerd", Labels: k8s("jobs", cronPod, "worker")}, "/k8s-cronjob/jobs/backup/worker"},
		{"cronjob run with dashes", Container{Runtime: "containerd", Labels: k8s("jobs", "nightly-report-"+minutes(now.Add(-6*24*time.Hour))+"-b2c4d", "worker")}, "/k8s-cronjob/jobs/nightly-report/worker"},
		{"8 digits out of the window", Container{Runtime: "containerd", Labels: k8s("jobs", "backup-"+minutes(now.Add(-8*24*time.Hour))+"-x7k2p", "worker")}, "/k8s/jobs/backup-" + minutes(now.Add(-8*24*time.Hour)) + "-x7k2p/worker"},
		{"not Kubernetes' random alphabet", Container{Runtime: "containerd", Labels: k8s("jobs", "backup-"+minutes(now)+"-aeiou", "worker")}, "/k8s/jobs/backup-" + minutes(now) + "-aeiou/worker"},
		{"swarm in a stack", Container{Runtime: "docker", Name: "shop_web.2.abcdefghij", Labels: map[string]string{
			"com.docker.swarm.task.name": "shop_web.2.abcdefghijklmnopqrstuvwxy", "com.docker.swarm.service.name": "shop_web", "com.docker.stack.namespace": "shop",
		}}, "/swarm/shop/web/2"},
		{"swarm without a stack", Container{Runtime: "docker", Name: "web.1.x", Labels: map[string]string{
			"com.docker.swarm.task.name": "web.1.qwertyuiop", "com.docker.swarm.service.name": "web",
		}}, "/swarm/_/web/1"},
		{"swarm global service (node id slot)", Container{Runtime: "docker", Labels: map[string]string{
			"com.docker.swarm.task.name": "agent.n0de1d.t4sk1d", "com.docker.swarm.service.name": "agent",
		}}, "/swarm/_/agent/n0de1d"},
		{"not a swarm task name", Container{Runtime: "docker", Name: "x", Labels: map[string]string{"com.docker.swarm.task.name": "web.1"}}, "/docker/x"},
		{"nomad", Container{Runtime: "docker", Name: "redis-8f1c", Env: map[string]string{
			"NOMAD_ALLOC_ID": "8f1c2d3e-aaaa-bbbb-cccc-111122223333", "NOMAD_GROUP_NAME": "cache", "NOMAD_JOB_NAME": "example",
			"NOMAD_NAMESPACE": "default", "NOMAD_TASK_NAME": "redis", "PATH": "/usr/bin",
		}}, "/nomad/default/example/cache/8f1c2d3e-aaaa-bbbb-cccc-111122223333/redis"},
		{"incomplete nomad env", Container{Runtime: "docker", Name: "redis", Env: map[string]string{"NOMAD_ALLOC_ID": "x", "NOMAD_JOB_NAME": "example"}}, "/docker/redis"},
		{"systemd service", Container{Runtime: "systemd", CgroupPath: "/system.slice/nginx.service"}, "/system.slice/nginx.service"},
		{"systemd service, nested cgroup", Container{Runtime: "systemd", CgroupPath: "/system.slice/containerd.service/shim"}, "/system.slice/containerd.service"},
		{"systemd sub-slice", Container{Runtime: "systemd", CgroupPath: "/system.slice/system-getty.slice/getty@tty1.service"}, "/system.slice/system-getty.slice"},
		{"systemd escape", Container{Runtime: "systemd", CgroupPath: `/system.slice/kube\x2dproxy.service`}, "/system.slice/kube-proxy.service"},
		{"runtime.slice", Container{Runtime: "systemd", CgroupPath: "/runtime.slice/kubelet.service"}, "/runtime.slice/kubelet.service"},
		{"systemd scope", Container{Runtime: "systemd", CgroupPath: "/system.slice/run-r1234.scope"}, ""},
		{"crio conmon", Container{Runtime: "systemd", CgroupPath: "/system.slice/crio-conmon-0123.scope"}, ""},
		{"user slice", Container{Runtime: "systemd", CgroupPath: "/user.slice/user-1000.slice/session-2.scope"}, ""},
		{"other cgroup", Container{Runtime: "cgroup", CgroupPath: "/process_api/123"}, ""},
	} {
		if got := ID(tc.c, now); got != tc.want {
			t.Errorf("%s: ID = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestAppID(t *testing.T) {
	for id, want := range map[string]string{
		"/k8s/otel-demo/otel-demo-frauddetectionservice-64cd4f9686-mvtnb/frauddetectionservice": "/k8s/otel-demo/otel-demo-frauddetectionservice",
		"/k8s/coroot/coroot-node-agent-np9pk/node-agent":                                        "/k8s/coroot/coroot-node-agent",
		"/k8s/coroot/pyroscope-df884bb79-hhxtv/pyroscope":                                       "/k8s/coroot/pyroscope",
		"/k8s/default/cassandra-main-12/cassandra":                                              "/k8s/default/cassandra-main",
		"/k8s/default/hello-28283967-khz2f/xz":                                                  "/k8s/default/hello", // a Job's pod reads as a Deployment's
		"/k8s/default/standalone/app":                                                           "",
		"/k8s-cronjob/jobs/backup/worker":                                                       "",
		"/system.slice/k3s.service":                                                             "",
		"/docker/container_name":                                                                "",
		"/swarm/shop/web/2":                                                                     "",
		"":                                                                                      "",
	} {
		if got := AppID(id); got != want {
			t.Errorf("AppID(%q) = %q, want %q", id, got, want)
		}
	}
}

func FuzzSystemdID(f *testing.F) {
	for _, s := range []string{"/system.slice/a.service", "/runtime.slice/", "/system.slice/x/y", `/system.slice/a\x2d.service`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		id := systemdID(p)
		if id != "" && (len(id) > len(p) || id[0] != '/') {
			t.Fatalf("systemdID(%q) = %q", p, id)
		}
		AppID(p)
	})
}
