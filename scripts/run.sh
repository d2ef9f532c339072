#!/usr/bin/env bash
# `make run`: start the built distribution with the default config, as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=_build/otelcol-codexray
config=${CODEXRAY_CONFIG:-config/default.yaml}
if [ "$(id -u)" != 0 ]; then
	echo "make run: the agent needs root (eBPF, taskstats, cgroups, container runtimes); run: sudo make run" >&2
	exit 1
fi
endpoint=${CODEXRAY_PROMETHEUS_ENDPOINT:-127.0.0.1:9464}
health=${CODEXRAY_HEALTH_ENDPOINT:-127.0.0.1:13133}
cat <<MSG
otelcol-codexray is starting with $config
  metrics (Prometheus text format): http://$endpoint/metrics
    e.g. curl -s http://$endpoint/metrics | grep -E '^(node_info|container_)'
  health:                           http://$health/
  log patterns:                     printed below by the debug exporter
Stop with Ctrl-C.
MSG
exec "$bin" --config "$config"
