package codexrayreceiver

import (
	"strings"
	"time"

	"github.com/codexray/codexray-node-agent/internal/containers"
	"github.com/codexray/codexray-node-agent/internal/corootid"
	"github.com/codexray/codexray-node-agent/receiver/codexrayreceiver/internal/metadata"
)

// A container's resource names it three ways, for three consumers:
//
//   - the OpenTelemetry semantic conventions (container.id = the runtime's id, container.name,
//     container.image.name and .tags, container.runtime.name, k8s.*), what OTLP backends join
//     with the application's own telemetry: an SDK's container detector reports the same
//     container.id from inside the container;
//   - the agent's own codexray.container.id (the registry's ID, stable over a Kubernetes
//     container's restarts) and, for a systemd service, codexray.systemd.unit instead of any
//     container.* attribute: a unit is no container;
//   - coroot-node-agent's container_id and app_id (coroot.* resource attributes, off by
//     default, on in config/default.yaml), what Coroot's server keys applications by.

// semconvRuntimes maps the registry's runtime names to container.runtime.name values; a
// runtime not listed (systemd, cgroup, kubepods: no runtime described the container) has none.
var semconvRuntimes = map[string]string{
	"docker": "docker", "containerd": "containerd", "crio": "cri-o", "cri-o": "cri-o", "podman": "podman",
}

// describeContainer sets the container's own attributes; the node's are added by
// nodeSource.describeContainerNode. coroot holds its coroot names (zero when off).
func describeContainer(rb *metadata.ResourceBuilder, c *containers.Container, coroot corootNames) {
	rb.SetCodexrayContainerID(string(c.ID))
	rb.SetCorootContainerID(coroot.containerID)
	rb.SetCorootAppID(coroot.appID)
	switch runtime, isContainer := semconvRuntimes[c.Runtime]; {
	case c.Runtime == "systemd":
		rb.SetCodexraySystemdUnit(c.Name)
		return
	case isContainer || c.Runtime == "kubepods":
		rb.SetContainerID(c.RuntimeID)
		rb.SetContainerName(c.Name)
		rb.SetContainerRuntimeName(runtime)
		if name, tag := splitImage(c.Image); name != "" {
			rb.SetContainerImageName(name)
			if tag != "" {
				rb.SetContainerImageTags(tag)
			}
		}
	}
	rb.SetK8sPodName(c.PodName)
	rb.SetK8sPodUID(c.PodUID)
	rb.SetK8sNamespaceName(c.Namespace)
	rb.SetK8sContainerName(c.ContainerName)
}

// splitImage splits an image reference ([registry[:port]/]path[:tag][@digest]) into the
// semantic conventions' container.image.name (without tag and digest) and its tag. A bare
// image id ("sha256:<hex>", what a runtime reports when it knows no name) has no name.
func splitImage(ref string) (name, tag string) {
	if ref == "" || strings.HasPrefix(ref, "sha256:") {
		return "", ""
	}
	if at := strings.IndexByte(ref, '@'); at >= 0 {
		ref = ref[:at]
	}
	// A tag follows the last ':' after the last '/'; a ':' before it is a registry's port.
	if colon := strings.LastIndexByte(ref, ':'); colon > strings.LastIndexByte(ref, '/') {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}

// corootNames are coroot-node-agent's container_id and app_id of one container.
type corootNames struct {
	containerID, appID string
}

// corootNamesOf returns the names coroot-node-agent would give c at now (internal/corootid);
// where it would not report c at all, container_id is the agent's own ID, so that every
// container series still names its container (see coroot_differences in metadata.yaml).
func corootNamesOf(c *containers.Container, now time.Time) corootNames {
	id := corootid.ID(corootid.Container{
		Runtime:    corootRuntime(c.Runtime),
		CgroupPath: c.CgroupPath,
		Name:       c.Name,
		Labels:     kubernetesLabels(c),
		Env:        c.Env,
	}, now)
	if id == "" {
		id = string(c.ID)
	}
	return corootNames{containerID: id, appID: corootid.AppID(id)}
}

// corootRuntime is the runtime name corootid knows: a CRI runtime describing a kubepods
// container calls itself "cri-o".
func corootRuntime(runtime string) string {
	if runtime == "cri-o" {
		return "crio"
	}
	return runtime
}

// kubernetesLabels returns c's labels with the io.kubernetes.* names the registry learnt from
// the pod sandbox when the container's own labels lack them (a runtime driven by another CRI
// client than the kubelet): coroot-node-agent reads the labels, kubelet always sets them.
func kubernetesLabels(c *containers.Container) map[string]string {
	if c.PodName == "" || c.Labels["io.kubernetes.pod.name"] != "" {
		return c.Labels
	}
	labels := make(map[string]string, len(c.Labels)+3)
	for k, v := range c.Labels {
		labels[k] = v
	}
	labels["io.kubernetes.pod.name"] = c.PodName
	labels["io.kubernetes.pod.namespace"] = c.Namespace
	labels["io.kubernetes.container.name"] = c.ContainerName
	return labels
}

// assignCorootNames gives each container of one collection its coroot names. Two containers
// the agent tells apart may map to one container_id (a docker container re-created under its
// name while the old one is still within the retention): coroot-node-agent sees one
// container, and two resources with one container_id would overwrite each other's series in
// the Prometheus exporter. So the running one, else the newest, keeps the names and the
// others are marked skip: with coroot's labels on, they are not reported.
func assignCorootNames(list []*containers.Container, now time.Time) (names []corootNames, skip []bool) {
	names = make([]corootNames, len(list))
	skip = make([]bool, len(list))
	owner := make(map[string]int, len(list))
	for i, c := range list {
		names[i] = corootNamesOf(c, now)
		j, taken := owner[names[i].containerID]
		if !taken {
			owner[names[i].containerID] = i
			continue
		}
		if preferred(c, list[j]) {
			skip[j] = true
			owner[names[i].containerID] = i
		} else {
			skip[i] = true
		}
	}
	return names, skip
}

// preferred reports whether a should carry a shared container_id rather than b: a running
// container over a gone one, then the one first seen later.
func preferred(a, b *containers.Container) bool {
	aGone, bGone := !a.GoneAt().IsZero(), !b.GoneAt().IsZero()
	if aGone != bGone {
		return bGone
	}
	return a.FirstSeen.After(b.FirstSeen)
}
