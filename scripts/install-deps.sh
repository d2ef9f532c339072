#!/usr/bin/env bash
# Installs what `make run`, `make test` and `make bench` need on a Debian/Ubuntu machine.
# Idempotent: every step checks first and does nothing when its tool is already there.
set -euo pipefail

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: run as root (or with sudo) to install missing packages: $*" >&2
		exit 1
	fi
}

# Debian packages: gcc for cgo (the journald source), the BPF toolchain, the container runtimes and journald used by the
# privileged tests, Prometheus (a real scraper for the end-to-end test), iptables for
# retransmit/NAT tests, and libsystemd for the cgo journald source.
pkgs=(gcc libc6-dev clang llvm libbpf-dev bpftool docker.io containerd busybox-static prometheus
	systemd-journal-remote libsystemd-dev iptables iproute2 conntrack curl ca-certificates)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	need_root "${missing[@]}"
	echo "install-deps: installing ${missing[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		export PATH=$PATH:/usr/local/go/bin
	else
		echo "install-deps: Go is not installed; install Go 1.26 or newer (https://go.dev/doc/install)" >&2
		exit 1
	fi
fi

gobin=$(go env GOPATH)/bin
# Pinned tools: ocb at the collector release of go.mod, crictl for the CRI tests.
[ -x "$gobin/builder" ] && "$gobin/builder" version 2>/dev/null | grep -q 0.165.0 ||
	go install go.opentelemetry.io/collector/cmd/builder@v0.165.0
[ -x "$gobin/crictl" ] || go install sigs.k8s.io/cri-tools/cmd/crictl@v1.34.0
exit 0
