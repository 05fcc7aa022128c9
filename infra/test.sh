#!/usr/bin/env bash
# PathStream's test command: on a fresh machine, install everything the tests need, start the local
# Kafka-protocol broker and PostgreSQL, and run the whole suite. Extra arguments go to pytest.
#
#   infra/test.sh                 # everything
#   infra/test.sh tests/unit -x   # a subset
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
venv=${PATHSTREAM_VENV:-$repo/.venv}
kafka_port=${PATHSTREAM_TEST_KAFKA_PORT:-19092}

infra/local/install.sh test
infra/local/kafka-up.sh "$kafka_port"
infra/local/postgres-up.sh pathstream_test

export PATHSTREAM_TEST_KAFKA_BOOTSTRAP="127.0.0.1:$kafka_port"
export PATHSTREAM_TEST_PG_ADMIN_URL=${PATHSTREAM_TEST_PG_ADMIN_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}

rc=0
"$venv/bin/python" -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; that proves nothing, so this run fails" >&2
  exit 1
fi
exit "$rc"
