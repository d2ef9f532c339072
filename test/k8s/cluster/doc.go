// Package cluster runs a single-node Kubernetes cluster for the e2e-k8s scenario: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet on a containerd of its
// own (CRI, cgroupfs driver), kube-proxy (iptables mode) and pod networking through the CNI
// bridge plugin on a bridge and subnet of its own, with certificates it generates. The
// binaries come from test/k8s/build (scripts/k8s-binaries.sh).
//
// The machine it runs on is shared with other test runs (the testbed's dockerd and
// containerd, other agents): everything it creates has a name of its own (the cxk8s prefix:
// cgroup root, bridge, containerd socket, directories), everything it starts is stopped by
// pid, and Stop undoes every change, also those of a run that died (Start cleans up first).
//
// It owns the cluster's life and a minimal REST client for its API server; it must not import
// the agent's packages (it tests them from outside, as a user's cluster would).
package cluster
