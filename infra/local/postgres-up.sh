#!/usr/bin/env bash
# Make sure the local PostgreSQL server runs and the test database exists; idempotent.
#
#   infra/local/postgres-up.sh [DBNAME]     (default: pathstream_test)
#
# Expects a Debian-style cluster (pg_ctlcluster) on 127.0.0.1:5432 that trusts local connections,
# as on PathStream's development and CI machines. PGHOST/PGPORT/PGUSER override the defaults.
set -euo pipefail
dbname=${1:-pathstream_test}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

if ! pg_isready -q; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ]; then
    echo "postgres-up: PostgreSQL is not running on $PGHOST:$PGPORT and no Debian cluster is installed to start" >&2
    exit 1
  fi
  for version in $(ls /etc/postgresql); do
    echo "postgres-up: starting PostgreSQL $version" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
for _ in $(seq 1 60); do
  pg_isready -q && break
  sleep 0.5
done
pg_isready -q || { echo "postgres-up: PostgreSQL does not accept connections on $PGHOST:$PGPORT" >&2; exit 1; }

if [ "$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'")" != "1" ]; then
  createdb "$dbname"
  echo "postgres-up: created database $dbname" >&2
fi
echo "postgres-up: PostgreSQL ready on $PGHOST:$PGPORT, database $dbname" >&2
