package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// startContainerd starts the node's own containerd: the testbed's is shared with other runs,
// and a kubelet garbage-collects whatever it finds in its runtime's k8s.io namespace. The CRI
// uses the cgroupfs driver (see README's Kubernetes section for why not systemd here) and
// runc's state lives below the node's root too.
func (c *Cluster) startContainerd(ctx context.Context) error {
	dir := filepath.Join(c.root, "containerd")
	cniDir := filepath.Join(c.root, "cni", "net.d")
	for _, d := range []string{dir, cniDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	conf, err := cniConfig(filepath.Join(c.root, "cni", "ipam"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-cxk8s.conflist"), conf, 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[3]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # No CAP_SYS_RESOURCE on these machines: the kubelet's negative oom_score_adj for
  # guaranteed pods and sandboxes is clamped to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
    max_conf_num = 1
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), ContainerdSocket, filepath.Join(dir, "opt"),
		PauseImage, filepath.Join(dir, "runc"), cniDir)
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			return fmt.Errorf("CNI plugin %s (containernetworking-plugins): %w", plugin, err)
		}
	}
	p, err := c.start("containerd", "/usr/bin/containerd", "--config", configPath)
	if err != nil {
		return err
	}
	return poll(ctx, 30*time.Second, func() error {
		if err := p.running(); err != nil {
			return err
		}
		return exec.CommandContext(ctx, "ctr", "--address", ContainerdSocket, "version").Run()
	})
}

// startKubelet runs the kubelet with a configuration that keeps it inside its own corner of
// the machine: its cgroup root, its runtime, its directories, no iptables chains, no eviction
// of pods over the machine's memory or disk (the machine is shared: other runs' usage is not
// the node's), no image garbage collection (the images cannot be pulled again).
func (c *Cluster) startKubelet(ctx context.Context) error {
	port, err := freePort(NodeIP)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.root, "kubelet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %[3]s
tlsPrivateKeyFile: %[4]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[5]s}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://%[6]s
cgroupDriver: cgroupfs
cgroupRoot: %[7]s
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
# These machines mount cgroup v1 controllers (hybrid): the kubelet starts on v1 only when told.
failCgroupV1: false
failSwapOn: false
podLogsDir: %[8]s
makeIPTablesUtilChains: false
oomScoreAdj: 0
evictionHard: {memory.available: "1Mi", nodefs.available: "0%%", nodefs.inodesFree: "0%%", imagefs.available: "0%%", imagefs.inodesFree: "0%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
staticPodPath: ""
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
`, NodeIP, port, c.pki("kubelet-serving.crt"), c.pki("kubelet-serving.key"), c.pki("ca.crt"),
		ContainerdSocket, CgroupRoot, PodLogsDir)
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	c.kubelet, err = c.start("kubelet", c.bin("kubelet"),
		"--config="+configPath,
		"--kubeconfig="+c.pki("kubelet.kubeconfig"),
		"--root-dir="+filepath.Join(dir, "root"),
		"--hostname-override="+NodeName,
		"--node-ip="+NodeIP,
		"--v=2")
	if err != nil {
		return err
	}
	return poll(ctx, 120*time.Second, func() error {
		if err := c.Running(); err != nil {
			return err
		}
		var node Node
		if err := c.api.Get(ctx, "/api/v1/nodes/"+NodeName, &node); err != nil {
			return err
		}
		if !node.Ready() {
			return fmt.Errorf("node %s not Ready: %+v", NodeName, node.Status.Conditions)
		}
		return nil
	})
}
