#!/usr/bin/env bash
# Stop a local broker started by kafka-up.sh, by its pid.
#
#   infra/local/kafka-down.sh [PORT] [--keep-data]
#
# Without --keep-data the broker's storage (topics, messages, committed offsets) is deleted, so the
# next kafka-up.sh starts empty; with it, the next kafka-up.sh PORT resumes from that storage (the
# restart tests use this). PATHSTREAM_RUN_DIR must match the one kafka-up.sh was given.
set -euo pipefail
port=${PATHSTREAM_LOCAL_KAFKA_PORT:-9092}
keep=no
for arg in "$@"; do
  case "$arg" in
    --keep-data) keep=yes ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) [[ "$arg" =~ ^[0-9]+$ ]] || { echo "kafka-down: unknown argument '$arg'" >&2; exit 2; }; port=$arg ;;
  esac
done
# shellcheck source=kafka/broker-state.sh
. "$(dirname "$0")/kafka/broker-state.sh"
stop_timeout_s=${PATHSTREAM_KAFKA_STOP_TIMEOUT_S:-30}

# Only a process that is this broker is stopped: the pid may have been reused after a crash.
if pid=$(running_pid); then
  # SIGTERM makes Kafka shut down cleanly (logs flushed, no recovery at the next start).
  kill -TERM "$pid"
  for _ in $(seq 1 $((stop_timeout_s * 4))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka-down: the broker (pid $pid) did not stop within $stop_timeout_s s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  echo "kafka-down: stopped the broker on port $port (pid $pid)" >&2
else
  echo "kafka-down: no broker started by kafka-up.sh runs on port $port" >&2
fi
rm -f "$pidfile"
if [ "$keep" = yes ]; then
  echo "kafka-down: kept its data in $state/data" >&2
elif [ -d "$state" ]; then
  rm -rf "$state"
fi
