// Package corootid names containers the way coroot-node-agent does, so that Coroot's server
// sees the same applications from codexray's Prometheus output: container_id
// (/docker/<name>, /k8s/<namespace>/<pod>/<container>, /k8s-cronjob/…, /swarm/…, /nomad/…,
// /system.slice/<unit>) and app_id, the workload an instance belongs to.
//
// It is a pure function of what the container registry knows (runtime, name, labels,
// environment, cgroup path, the time); it reads nothing and imports nothing of the agent.
package corootid

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Container is what ID needs to know of a container.
type Container struct {
	// Runtime is the registry's runtime name: "docker", "containerd", "crio", "podman",
	// "kubepods" (a Kubernetes container no runtime described), "systemd" or "cgroup".
	Runtime string
	// CgroupPath is the container's cgroup path (for systemd: /system.slice/nginx.service).
	CgroupPath string
	// Name is the runtime's container name (docker's without the leading slash).
	Name string
	// Labels are the runtime's labels: io.kubernetes.{pod.name,pod.namespace,container.name},
	// com.docker.swarm.{task.name,service.name}, com.docker.stack.namespace.
	Labels map[string]string
	// Env is the container's environment, when the runtime reported it (Nomad's NOMAD_* only
	// live there); nil otherwise.
	Env map[string]string
}

// ID returns the container's coroot container_id at time now (which decides whether a pod's
// name is a recent CronJob run), "" when coroot-node-agent would not report it: a pod sandbox,
// a runtime container without a name, a systemd scope, or a cgroup of no container.
func ID(c Container, now time.Time) string {
	switch c.Runtime {
	case "systemd":
		return systemdID(c.CgroupPath)
	case "docker", "containerd", "crio", "podman", "kubepods":
	default:
		return ""
	}
	if pod := c.Labels["io.kubernetes.pod.name"]; pod != "" {
		ns, name := c.Labels["io.kubernetes.pod.namespace"], c.Labels["io.kubernetes.container.name"]
		if name == "" || name == "POD" { // the pause container
			return ""
		}
		if job, ok := cronJob(pod, now); ok {
			return "/k8s-cronjob/" + ns + "/" + job + "/" + name
		}
		return "/k8s/" + ns + "/" + pod + "/" + name
	}
	if task := strings.SplitN(c.Labels["com.docker.swarm.task.name"], ".", 3); len(task) == 3 {
		ns := c.Labels["com.docker.stack.namespace"]
		service := c.Labels["com.docker.swarm.service.name"]
		if ns != "" {
			service = strings.TrimPrefix(service, ns+"_")
		} else {
			ns = "_"
		}
		return "/swarm/" + ns + "/" + service + "/" + task[1] // task[1]: the replica's slot
	}
	if id := nomadID(c.Env); id != "" {
		return id
	}
	if c.Name == "" || c.Runtime == "kubepods" {
		return ""
	}
	// Every named non-Kubernetes container is /docker/<name> in coroot-node-agent, whatever
	// its runtime (containerd and CRI-O too). Difference: coroot-node-agent does not report
	// podman containers; they are /podman/<name> here.
	if c.Runtime == "podman" {
		return "/podman/" + c.Name
	}
	return "/docker/" + c.Name
}

func nomadID(env map[string]string) string {
	alloc, group, job, ns, task := env["NOMAD_ALLOC_ID"], env["NOMAD_GROUP_NAME"], env["NOMAD_JOB_NAME"], env["NOMAD_NAMESPACE"], env["NOMAD_TASK_NAME"]
	if alloc == "" || group == "" || job == "" || ns == "" || task == "" {
		return ""
	}
	return "/nomad/" + ns + "/" + job + "/" + group + "/" + alloc + "/" + task
}

// systemdSlices are the top-level slices whose units coroot-node-agent reports.
var systemdSlices = []string{"/system.slice/", "/runtime.slice/", "/reserved.slice/"}

// systemdID is the unit's cgroup cut after the first component below its slice — the unit,
// or a sub-slice, as coroot-node-agent cuts it (/system.slice/system-getty.slice for every
// getty) — with systemd's \x2d escape undone. Scopes (transient units of sessions and
// runtimes) and CRI-O's conmon are not containers.
func systemdID(cgroupPath string) string {
	for _, s := range systemdSlices {
		rest, ok := strings.CutPrefix(cgroupPath, s)
		if !ok {
			continue
		}
		unit, _, _ := strings.Cut(rest, "/")
		if unit == "" || strings.HasSuffix(unit, ".scope") || strings.HasPrefix(unit, "crio-conmon-") {
			return ""
		}
		return strings.ReplaceAll(s+unit, `\x2d`, "-")
	}
	return ""
}

// cronJobPod is a pod of a Job a CronJob created: <cronjob>-<minutes since the epoch, 8
// digits>-<5 random characters of Kubernetes' alphabet>.
var cronJobPod = regexp.MustCompile(`^([a-z0-9-]+)-(\d{8})-[bcdfghjklmnpqrstvwxz2456789]{5}$`)

// cronJobWindow: an 8-digit number within a week of now is a schedule time, not chance.
const cronJobWindow = 7 * 24 * time.Hour

// cronJob returns the CronJob a pod belongs to. coroot-node-agent matches the same pattern
// without anchoring it; anchored, only a whole pod name counts.
func cronJob(pod string, now time.Time) (string, bool) {
	g := cronJobPod.FindStringSubmatch(pod)
	if g == nil {
		return "", false
	}
	minutes, err := strconv.ParseInt(g[2], 10, 64)
	if err != nil {
		return "", false
	}
	at := time.Unix(minutes*60, 0)
	if at.Before(now.Add(-cronJobWindow)) || at.After(now.Add(cronJobWindow)) {
		return "", false
	}
	return g[1], true
}

// Workload pod names below /k8s/<namespace>/: a Deployment's (<name>-<ReplicaSet hash>-<5>),
// a DaemonSet's (<name>-<5>) and a StatefulSet's (<name>-<ordinal>), tried in this order.
var workloadPods = []*regexp.Regexp{
	regexp.MustCompile(`^(/k8s/[a-z0-9-]+/[a-z0-9-]+)-[0-9a-f]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}/.+$`),
	regexp.MustCompile(`^(/k8s/[a-z0-9-]+/[a-z0-9-]+)-[bcdfghjklmnpqrstvwxz2456789]{5}/.+$`),
	regexp.MustCompile(`^(/k8s/[a-z0-9-]+/[a-z0-9-]+)-\d+/.+$`),
}

// AppID returns the app_id coroot-node-agent puts on a container's series: for a pod of a
// Deployment, DaemonSet or StatefulSet, /k8s/<namespace>/<workload>; "" for every other
// container (a bare pod, /docker/…, /k8s-cronjob/…, a systemd unit), which Coroot then
// groups by container_id. (coroot-node-agent has a CronJob pattern too, but only applies the
// patterns to ids starting with /k8s/, so /k8s-cronjob/ ids get none; so here.)
func AppID(containerID string) string {
	if !strings.HasPrefix(containerID, "/k8s/") {
		return ""
	}
	for _, re := range workloadPods {
		if g := re.FindStringSubmatch(containerID); g != nil {
			return g[1]
		}
	}
	return ""
}
