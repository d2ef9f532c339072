#!/usr/bin/env bash
# Starts (`up`) and stops (`down`) the real daemons the privileged tests use: dockerd (with the
# registry-free busybox image), a standalone containerd with CRI on private paths, and journald.
# Idempotent: `up` reuses what already runs. Pids and logs live in $TESTBED (below).
# Runs that overlap on one machine share the daemons: `up OWNER` and `down OWNER` register
# and unregister a user by pid (default: the caller's parent), users whose process is gone are
# forgotten, and only the last user's `down` stops what an `up` started.
# How the tests use them: ARCHITECTURE.md, "Building and testing".
set -euo pipefail

TESTBED=${TESTBED:-/tmp/codexray-testbed}
CTRD=$TESTBED/containerd
IMAGE=codexray-test/busybox:1
PAUSE=codexray-test/pause:1
mkdir -p "$TESTBED"

log() { printf 'testbed: %s\n' "$*" >&2; }

wait_for() { # seconds command...
	local n=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

# alive NAME: the daemon NAME started by this script still runs (a pid file can outlive its
# process, and its pid can be reused: the command name must match too).
alive() {
	local pid
	[ -f "$TESTBED/$1.pid" ] || return 1
	pid=$(cat "$TESTBED/$1.pid")
	kill -0 "$pid" 2>/dev/null && grep -q "${2:-$1}" "/proc/$pid/comm" 2>/dev/null
}

up_tracefs() {
	mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing || log "cannot mount tracefs"
}

up_dockerd() {
	if ! docker info >/dev/null 2>&1; then
		log "starting dockerd"
		# No bridge and no iptables rules: nothing of the node's network changes; test
		# containers run with --network none or host.
		setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$TESTBED/dockerd.log" 2>&1 9>&- &
		echo $! >"$TESTBED/dockerd.pid"
		wait_for 30 docker info || { log "dockerd did not start: $(tail -5 "$TESTBED/dockerd.log")"; return 1; }
	fi
	if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
		local root=$TESTBED/rootfs
		rm -rf "$root"
		mkdir -p "$root"/{bin,tmp,proc,sys,dev,etc,var/log}
		cp /bin/busybox "$root/bin/"
		for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
		tar -C "$root" -c . | docker import - "$IMAGE" >/dev/null
		tar -C "$root" -c . | docker import --change 'ENTRYPOINT ["/bin/sleep", "2147483647"]' - "$PAUSE" >/dev/null
		log "imported $IMAGE and $PAUSE"
	fi
}

up_containerd() {
	if ! alive containerd; then
		mkdir -p "$CTRD"/{root,state,cni}
		cat >"$CTRD/config.toml" <<TOML
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
[grpc]
  address = "$CTRD/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/$PAUSE"
  # Without CAP_SYS_RESOURCE (a VM's root may lack it) containerd cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$CTRD/cni"
TOML
		log "starting containerd on $CTRD/containerd.sock"
		setsid containerd --config "$CTRD/config.toml" >"$TESTBED/containerd.log" 2>&1 9>&- &
		echo $! >"$TESTBED/containerd.pid"
		wait_for 30 ctr -a "$CTRD/containerd.sock" version || { log "containerd did not start: $(tail -5 "$TESTBED/containerd.log")"; return 1; }
	fi
	if ! ctr -a "$CTRD/containerd.sock" -n k8s.io images ls -q | grep -q "codexray-test/pause"; then
		docker save "$IMAGE" "$PAUSE" | ctr -a "$CTRD/containerd.sock" -n k8s.io images import - >/dev/null
		log "imported images into containerd"
	fi
}

up_journald() {
	if [ ! -S /run/systemd/journal/socket ] || ! alive journald systemd-journal; then
		log "starting journald"
		setsid /lib/systemd/systemd-journald >"$TESTBED/journald.log" 2>&1 9>&- &
		echo $! >"$TESTBED/journald.pid"
		wait_for 10 test -S /run/systemd/journal/socket || { log "journald did not start"; return 1; }
	fi
	[ -e /dev/log ] || ln -sf /run/systemd/journal/dev-log /dev/log
}

down_one() {
	if alive "$1" "${2:-$1}"; then
		local pid
		pid=$(cat "$TESTBED/$1.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$TESTBED/$1.pid"
}

# One invocation at a time. The daemons are started with fd 9 closed (9>&-): a daemon that
# inherited it would hold the lock for as long as it runs.
exec 9>"$TESTBED/lock"
flock 9
owner=${2:-$PPID}
rm -f "$TESTBED/users" # the integer count of earlier versions of this script
mkdir -p "$TESTBED/users.d"
for u in "$TESTBED"/users.d/*; do
	[ -e "$u" ] || continue
	kill -0 "$(basename "$u")" 2>/dev/null || rm -f "$u"
done

case "${1:-up}" in
up)
	touch "$TESTBED/users.d/$owner"
	up_tracefs
	up_dockerd
	up_containerd
	up_journald
	log "up (logs in $TESTBED)"
	;;
down)
	rm -f "$TESTBED/users.d/$owner"
	others=$(find "$TESTBED/users.d" -mindepth 1 | wc -l)
	if [ "$others" -gt 0 ]; then
		log "still used by $others other run(s): daemons left up"
		exit 0
	fi
	if docker info >/dev/null 2>&1; then
		ids=$(docker ps -aq --filter label=codexray-test)
		[ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
	fi
	down_one containerd
	down_one dockerd
	down_one journald systemd-journal
	log "down"
	;;
*)
	echo "usage: $0 up|down [owner pid]" >&2
	exit 2
	;;
esac
