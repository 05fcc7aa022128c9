#!/usr/bin/env bash
# Stop a local broker started by kafka-up.sh:  infra/local/kafka-down.sh [PORT]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-${PATHSTREAM_LOCAL_KAFKA_PORT:-9092}}
pidfile=${PATHSTREAM_RUN_DIR:-$repo/.run}/tansu-$port.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill "$(cat "$pidfile")"
  echo "kafka-down: stopped the broker on port $port" >&2
else
  echo "kafka-down: no broker started by kafka-up.sh runs on port $port" >&2
fi
rm -f "$pidfile"
