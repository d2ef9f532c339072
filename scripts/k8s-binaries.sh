#!/usr/bin/env bash
# Builds the Kubernetes components and etcd that `make e2e-k8s` runs, from the Go module proxy
# at the versions test/k8s/build/go.mod pins (k8s.io/kubernetes, its staging modules at the
# matching v0.x release, go.etcd.io/etcd/server/v3), into a cache keyed by that module's
# go.mod and go.sum and this script: $CODEXRAY_K8S_CACHE (default /var/cache/codexray-k8s)
# /<kubernetes version>-<key>/. Prints that directory on stdout. Idempotent: a complete cache
# entry is reused as it is. Cold on 2 cores: see README.md's Kubernetes section.
set -euo pipefail
script=$(readlink -f "$0")
cd "$(dirname "$script")/../test/k8s/build"
export PATH=$PATH:/usr/local/go/bin
cache=${CODEXRAY_K8S_CACHE:-/var/cache/codexray-k8s}
version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' go.mod)
[ -n "$version" ] || { echo "k8s-binaries: no k8s.io/kubernetes requirement in go.mod" >&2; exit 1; }
key=$(cat go.mod go.sum "$script" | sha256sum | cut -c1-16)
dir=$cache/$version-$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one build at a time; a second caller waits and then finds it done
if [ -f "$dir/.complete" ]; then
	echo "$dir"
	exit 0
fi
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "k8s-binaries: building Kubernetes $version and etcd into $dir (cold: module download and a long compile)" >&2
v=k8s.io/component-base/version
minor=$(echo "$version" | cut -d. -f2)
# One go build for all: the packages they share compile once. No cgo, no debug info.
CGO_ENABLED=0 go build -trimpath -o "$tmp/" \
	-ldflags "-s -w -X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
	go.etcd.io/etcd/server/v3 \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubelet \
	k8s.io/kubernetes/cmd/kube-proxy >&2
mv "$tmp/server" "$tmp/etcd" # go names the etcd server module's command after its path
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
	[ -x "$tmp/$b" ] || { echo "k8s-binaries: $b was not built" >&2; exit 1; }
done
echo "built in $(($(date +%s) - start)) s on $(nproc) cores" >"$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "k8s-binaries: $(cat "$dir/.complete")" >&2
echo "$dir"
