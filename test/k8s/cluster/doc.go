// Package cluster runs a single-node Kubernetes cluster for the e2e-k8s scenario: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet on a containerd of its
// own (CRI, cgroupfs driver), kube-proxy (iptables mode) and pod networking through the CNI
// bridge plugin on a bridge and subnet of its own, with certificates it generates. The
// binaries come from test/k8s/build (scripts/k8s-binaries.sh).
//
// kube-proxy is there although a node agent test could do without most of Kubernetes'
// networking: a ClusterIP Service is only a virtual IP until something programs its NAT, and
// the conntrack entries of kube-proxy's rules are what the agent resolves into
// actual_destination. The kubelet uses the cgroupfs driver: the systemd driver creates every
// cgroup as a transient unit over systemd's D-Bus API, and the project's machines do not run
// systemd as PID 1.
//
// The machine it runs on is shared with other test runs (the testbed's dockerd and
// containerd, other agents): everything it creates has a name of its own (the cxk8s prefix:
// cgroup root, bridge, containerd socket, directories), everything it starts is stopped by
// pid, and Stop undoes every change, also those of a run that died (Start cleans up first).
//
// It owns the cluster's life and a minimal REST client for its API server; it must not import
// the agent's packages (it tests them from outside, as a user's cluster would).
package cluster
