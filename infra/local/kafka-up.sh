#!/usr/bin/env bash
# Start a local Apache Kafka broker (KRaft, one node: broker and controller in one process) on
# loopback and wait until it answers. For local runs and tests; production uses the hospital's cluster.
#
#   infra/local/kafka-up.sh [PORT]     (default: $PATHSTREAM_LOCAL_KAFKA_PORT or 9092)
#
# The broker (org.apache.kafka:kafka_2.13, version pinned in infra/local/kafka/pom.xml) is resolved
# with Maven from Maven Central into a cache outside the repository, once. Its storage is formatted
# once and kept on disk, so a broker stopped with `kafka-down.sh PORT --keep-data` comes back with
# its topics, messages and committed offsets. Idempotent: a broker already answering on PORT is
# reused. Needs Java 17+ and Maven.
#
# Environment (all optional):
#   PATHSTREAM_KAFKA_HOME                   broker jars   (default ~/.cache/pathstream/kafka-VERSION)
#   PATHSTREAM_RUN_DIR                      state folder  (default ~/.local/state/pathstream); the
#                                           broker keeps data, log and pid in $PATHSTREAM_RUN_DIR/kafka-PORT
#   PATHSTREAM_LOCAL_KAFKA_CONTROLLER_PORT  the KRaft controller's port (default PORT+1)
#   PATHSTREAM_KAFKA_HEAP_OPTS              JVM heap (default -Xms128m -Xmx512m)
#   PATHSTREAM_KAFKA_START_TIMEOUT_S        how long to wait for the broker to answer (default 60)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${PATHSTREAM_VENV:-$repo/.venv}
port=${1:-${PATHSTREAM_LOCAL_KAFKA_PORT:-9092}}
fail() { echo "kafka-up: $*" >&2; exit 1; }

[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65534 ] \
  || fail "PORT must be a number from 1024 to 65534, not '$port'"
controller_port=${PATHSTREAM_LOCAL_KAFKA_CONTROLLER_PORT:-$((port + 1))}
address="127.0.0.1:$port"
pom="$here/kafka/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
[ -n "$version" ] || fail "no <kafka.version> in $pom"
kafka_home=${PATHSTREAM_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/pathstream/kafka-$version}
# shellcheck source=kafka/broker-state.sh
. "$here/kafka/broker-state.sh"
log="$state/server.log"
timeout_s=${PATHSTREAM_KAFKA_START_TIMEOUT_S:-60}

# --- Java 17 or newer --------------------------------------------------------------------------
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
command -v "$java" >/dev/null 2>&1 \
  || fail "java not found; install Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
java_major=$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
[ -n "$java_major" ] && [ "$java_major" -ge 17 ] \
  || fail "Apache Kafka $version needs Java 17 or newer, $java is version ${java_major:-unknown}; install openjdk-17-jre-headless or set JAVA_HOME"

# --- Does something answer already? --------------------------------------------------------------
# The project's environment, when installed, asks the broker for cluster metadata: the same check
# the services and tests use.
metadata_probe=no
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import aiokafka' 2>/dev/null && metadata_probe=yes
metadata_answers() { (cd "$repo" && "$venv/bin/python" -m pathstream.shared.bus.probe "$address" --timeout "$1"); }
# Our broker answers once its log says "Kafka Server started" and its port is open, and (where the
# metadata probe is available) it returns metadata; the cheap checks come first, so no Python
# process competes with the JVM's start for the CPU.
answers() {
  grep -q "Kafka Server started" "$log" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
    && { [ "$metadata_probe" = no ] || metadata_answers "$1"; }
}
report() {
  local how=$1 pid
  pid=$(running_pid || echo "not started by kafka-up.sh")
  echo "kafka-up: Apache Kafka ${2:-$version} $how on $address (pid $pid, log $log, data $state/data)"
}

pid=$(running_pid || true)
if [ -n "$pid" ] && answers 3; then
  report "already answers"
  exit 0
fi
if [ -z "$pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  if [ "$metadata_probe" = yes ] && metadata_answers 3; then
    echo "kafka-up: a Kafka broker not started by this script already answers on $address; using it" >&2
    exit 0
  fi
  fail "port $port is taken by something that is not a Kafka broker started here; choose another port"
fi

wait_for_broker() {
  local started=$1 deadline=$(( $(date +%s) + timeout_s )) elapsed running_version
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if ! running_pid >/dev/null; then
      echo "kafka-up: the broker exited during start-up; the end of its logs:" >&2
      tail -n 20 "$log" "$state/stdout.log" >&2
      exit 1
    fi
    if answers 1; then
      elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      # The version as the broker itself states it, so a test log shows which Kafka it ran against.
      running_version=$(sed -n 's/.*Kafka version: \([^ ]*\).*/\1/p' "$log" | head -n1)
      report "answers after $elapsed s" "${running_version:-$version}"
      exit 0
    fi
    sleep 0.25
  done
  fail "the broker did not answer on $address within $timeout_s s; see $log"
}
if [ -n "$pid" ]; then
  echo "kafka-up: the broker started earlier (pid $pid) is still starting; waiting for it" >&2
  wait_for_broker "$(date +%s.%N)"
fi

# --- The broker's jars, resolved once ------------------------------------------------------------
pom_hash=$(sha256sum "$pom" | cut -d' ' -f1)
if [ "$(cat "$kafka_home/.resolved" 2>/dev/null)" != "$pom_hash" ]; then
  command -v mvn >/dev/null 2>&1 || fail "mvn not found; install Maven (Debian: apt-get install maven) to fetch Apache Kafka $version"
  mkdir -p "$kafka_home"
  echo "kafka-up: resolving Apache Kafka $version with Maven into $kafka_home (once)" >&2
  rm -rf "$kafka_home/lib.partial"
  if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$kafka_home/lib.partial" >"$kafka_home/maven.log" 2>&1; then
    fail "Maven could not resolve org.apache.kafka:kafka_2.13:$version from Maven Central (its output: $kafka_home/maven.log); check the network or the mirror in ~/.m2/settings.xml"
  fi
  rm -rf "$kafka_home/lib"
  mv "$kafka_home/lib.partial" "$kafka_home/lib"
  echo "$pom_hash" >"$kafka_home/.resolved"
fi
classpath="$kafka_home/lib/*"

# --- Configuration and storage (formatted once) ---------------------------------------------------
mkdir -p "$state/data"
cp "$here/kafka/log4j2.properties" "$state/log4j2.properties"
cat >"$state/server.properties" <<EOF
# Written by infra/local/kafka-up.sh; rewritten at every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://$address,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://$address
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state/data
# One node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50 make a cold start and the first group join faster.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
# Tests start consumers one after another; waiting 3 s for more members is only delay here.
group.initial.rebalance.delay.ms=0
# Tests use 2 s consumer sessions so a killed worker's messages move on quickly; Apache Kafka's
# default floor is 6 s (production clusters keep it, and PathStream's default session is 10 s).
group.min.session.timeout.ms=1000
# The broker's default message limit (1 MiB), stated so producers can be configured to match.
message.max.bytes=1048588
EOF
java_opts=(${PATHSTREAM_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true
  -Dkafka.logs.dir="$state" -Dlog4j2.configurationFile="$state/log4j2.properties")
if [ ! -f "$state/data/meta.properties" ]; then
  cluster_id=$("$java" -cp "$classpath" kafka.tools.StorageTool random-uuid 2>>"$state/format.log")
  "$java" "${java_opts[@]}" -cp "$classpath" kafka.tools.StorageTool format --ignore-formatted \
      -t "$cluster_id" -c "$state/server.properties" >>"$state/format.log" 2>&1 \
    || fail "formatting the broker's storage in $state/data failed; see $state/format.log"
fi

# --- Start and wait -------------------------------------------------------------------------------
started=$(date +%s.%N)
# The previous run's log is kept one generation; the readiness check reads only this run's.
[ -f "$log" ] && mv "$log" "$log.previous"
setsid nohup "$java" "${java_opts[@]}" -cp "$classpath" kafka.Kafka "$state/server.properties" \
  >"$state/stdout.log" 2>&1 </dev/null &
echo $! >"$pidfile"
wait_for_broker "$started"
