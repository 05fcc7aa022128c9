#!/usr/bin/env bash
# PathStream's test command: on a fresh machine, install everything the tests need, start a local
# Apache Kafka broker and PostgreSQL (installing it where missing), and run the whole suite.
# Extra arguments go to pytest.
#
#   infra/test.sh                 # everything
#   infra/test.sh tests/unit -x   # a subset
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
venv=${PATHSTREAM_VENV:-$repo/.venv}
kafka_port=${PATHSTREAM_TEST_KAFKA_PORT:-19092}

infra/local/install.sh test
# HL7's FHIR R4 JSON schema, which tests/fhir_schema.py checks PathStream's FHIR against (fetched once).
# Assigned before the export: `export X="$(...)"` would hide the script's failure from `set -e`.
fhir_schema=$(infra/local/fhir-schema.sh)
export PATHSTREAM_FHIR_SCHEMA="$fhir_schema"
infra/local/kafka-up.sh "$kafka_port"
pg_url=$(infra/local/postgres-up.sh pathstream_test)
[[ "$pg_url" =~ ^postgresql\+psycopg://[^[:space:]]+$ ]] \
  || { echo "test: postgres-up printed '$pg_url' where one database URL was expected" >&2; exit 1; }

export PATHSTREAM_TEST_KAFKA_BOOTSTRAP="127.0.0.1:$kafka_port"
# The tests create and drop a database each; they connect to `postgres` as the role made above.
export PATHSTREAM_TEST_PG_ADMIN_URL=${PATHSTREAM_TEST_PG_ADMIN_URL:-${pg_url%/*}/postgres}

# Test files run side by side on PATHSTREAM_TEST_WORKERS processes (default 2, the cores CI has;
# 0 = one process). Each file stays on one process so its module fixtures are built once, and one
# torch thread per process keeps them from oversubscribing the cores. On 2 processes the fresh-clone
# suite took 26.8 min on 2 cores, against 42-48 min on one.
workers=${PATHSTREAM_TEST_WORKERS:-2}
[[ "$workers" =~ ^[0-9]+$ ]] \
  || { echo "test: PATHSTREAM_TEST_WORKERS must be a whole number (0 = one process), not '$workers'" >&2; exit 2; }
parallel=()
if [ "$workers" != "0" ]; then
  # In collection order (tests/conftest.py puts the longest files first), not xdist's default of
  # the files with the most tests first.
  parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi

rc=0
"$venv/bin/python" -m pytest "${parallel[@]}" --durations=30 "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; that proves nothing, so this run fails" >&2
  exit 1
fi
exit "$rc"
