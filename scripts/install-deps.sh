#!/usr/bin/env bash
# Installs what a make target needs on a Debian/Ubuntu machine, by group:
#   build     Go check, gcc and libsystemd-dev (cgo, for the journald source), ocb    make build, make run
#   generate  clang, llvm and libbpf-dev (bpf2go)                                    make generate
#   test      build + generate, and the daemons and tools the privileged tests use   make test, make bench
# Usage: install-deps.sh GROUP...  (default: test). Idempotent: every step checks first and does
# nothing when its tool is already there. `make unit` and `make lint` need only Go.
set -euo pipefail

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: run as root (or with sudo) to install missing packages: $*" >&2
		exit 1
	fi
}

build_pkgs=(gcc libc6-dev libsystemd-dev)
generate_pkgs=(clang llvm libbpf-dev)
# The runtimes and journald the privileged tests drive (scripts/testbed.sh), Prometheus as a
# real scraper for the end-to-end tests, bpftool to inspect programs, iptables, iproute2 and
# conntrack for the retransmit and NAT tests, curl for the run and deploy checks, and the CNI
# plugins (bridge, host-local, loopback) of the single-node cluster of `make e2e-k8s`.
# The L7 tests run real servers and clients from Debian (redis-server and redis-cli, postgres
# and psql, nginx, memcached, dnsmasq, mariadbd and mysql, rabbitmq-server, nats-server, ZooKeeper
# and its JRE); wrk loads HTTP for the L7 overhead benchmark (make bench). The -core MariaDB
# packages carry the server and client without a service of their own.
test_pkgs=(bpftool docker.io containerd busybox-static prometheus systemd-journal-remote iptables iproute2
	conntrack curl ca-certificates containernetworking-plugins redis-server redis-tools postgresql
	postgresql-client nginx-light memcached dnsmasq-base mariadb-server-core mariadb-client-core
	rabbitmq-server nats-server zookeeper default-jre-headless wrk)

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(test)
pkgs=() want_ocb=0 want_crictl=0
for g in "${groups[@]}"; do
	case $g in
	build) pkgs+=("${build_pkgs[@]}") want_ocb=1 ;;
	generate) pkgs+=("${generate_pkgs[@]}") ;;
	test) pkgs+=("${build_pkgs[@]}" "${generate_pkgs[@]}" "${test_pkgs[@]}") want_ocb=1 want_crictl=1 ;;
	*)
		echo "install-deps: unknown group $g (build, generate, test)" >&2
		exit 2
		;;
	esac
done

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
if [ $want_ocb = 1 ]; then
	[ -x "$gobin/builder" ] && "$gobin/builder" version 2>/dev/null | grep -q 0.165.0 ||
		go install go.opentelemetry.io/collector/cmd/builder@v0.165.0
fi
if [ $want_crictl = 1 ]; then
	[ -x "$gobin/crictl" ] || go install sigs.k8s.io/cri-tools/cmd/crictl@v1.34.0
fi
exit 0
