#!/usr/bin/env bash
# Make sure a PostgreSQL server runs on loopback, with PathStream's role and a database; idempotent.
#
#   infra/local/postgres-up.sh [DBNAME]     (default: pathstream_test)
#
# Where no server answers on $PGHOST:$PGPORT, PostgreSQL is installed from Debian's packages when it
# is missing (needs root), a cluster is created when there is none on that port, and it is started.
# Then the login role $PATHSTREAM_PG_USER (password $PATHSTREAM_PG_PASSWORD, allowed to create
# databases, as the tests do) and the database DBNAME owned by it are created if missing.
# A server that already runs is used as it is. Prints the database's SQLAlchemy URL on stdout.
#
# Environment (all optional): PGHOST (127.0.0.1), PGPORT (5432), PATHSTREAM_PG_USER (pathstream),
# PATHSTREAM_PG_PASSWORD (pathstream: a loopback-only development server), and PGUSER/PGPASSWORD
# for an administrator where the server is not this machine's Debian cluster.
set -euo pipefail
dbname=${1:-pathstream_test}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
role=${PATHSTREAM_PG_USER:-pathstream}
password=${PATHSTREAM_PG_PASSWORD:-pathstream}
fail() { echo "postgres-up: $*" >&2; exit 1; }
# Callers read stdout as the URL: whatever the tools below print (pg_ctlcluster's "Removed stale pid
# file.", apt's progress) goes to stderr; only the last line reaches the saved stdout (fd 3), which
# the server and installers are started without so that a caller's $(...) does not wait for them.
exec 3>&1 1>&2

for name in "$dbname" "$role"; do
  [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || fail "'$name' is not a plain lower-case PostgreSQL name (letters, digits, _)"
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else fail "this step needs root: $*"; fi
}

# The Debian cluster serving $PGPORT, as "VERSION NAME", or nothing.
cluster_on_port() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters --no-header 2>/dev/null | awk -v port="$PGPORT" '$3 == port { print $1, $2; exit }'
}

if ! pg_isready -q 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "postgres-up: PostgreSQL is not installed; installing Debian's postgresql package" >&2
    [ "$(id -u)" -eq 0 ] || fail "PostgreSQL is missing; install it (apt-get install postgresql) or run this as root"
    log=$(mktemp)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } >"$log" 2>&1 3>&-; then
      tail -n 20 "$log" >&2
      fail "apt-get could not install postgresql (output above)"
    fi
    rm -f "$log"
  fi
  cluster=$(cluster_on_port)
  if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    name=main
    pg_lsclusters --no-header 2>/dev/null | awk '{ print $1, $2 }' | grep -qx "$version main" && name=pathstream
    echo "postgres-up: creating PostgreSQL $version cluster '$name' on port $PGPORT" >&2
    as_root pg_createcluster "$version" "$name" --port "$PGPORT" >/dev/null 3>&-
    cluster="$version $name"
  fi
  echo "postgres-up: starting PostgreSQL cluster $cluster" >&2
  # --skip-systemctl-redirect: machines without systemd (containers, CI) start it directly.
  # shellcheck disable=SC2086
  as_root pg_ctlcluster --skip-systemctl-redirect $cluster start 3>&- \
    || fail "pg_ctlcluster could not start cluster $cluster; see /var/log/postgresql/"
fi
for _ in $(seq 1 120); do
  pg_isready -q && break
  sleep 0.5
done
pg_isready -q || fail "PostgreSQL does not accept connections on $PGHOST:$PGPORT"

# The administrator: this machine's cluster through its socket as the postgres user (Debian's peer
# authentication), or whatever PGUSER/PGPASSWORD name for another server.
admin_psql() {
  local socket=/var/run/postgresql
  if [ "$(id -u)" -eq 0 ] && [ -S "$socket/.s.PGSQL.$PGPORT" ] && [ -n "$(cluster_on_port)" ]; then
    runuser -u postgres -- env -u PGHOST -u PGUSER -u PGPASSWORD psql -h "$socket" -p "$PGPORT" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
  else
    PGUSER=${PGUSER:-postgres} psql -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
  fi
}

admin_psql -c "SELECT 1" >/dev/null \
  || fail "cannot log in to PostgreSQL on $PGHOST:$PGPORT as an administrator; set PGUSER and PGPASSWORD"
if [ "$(admin_psql -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != "1" ]; then
  admin_psql -c "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password'" >/dev/null
  echo "postgres-up: created role $role" >&2
else
  # Keeps the documented password true after someone changed it by hand.
  admin_psql -c "ALTER ROLE $role LOGIN CREATEDB PASSWORD '$password'" >/dev/null
fi
if [ "$(admin_psql -c "SELECT 1 FROM pg_database WHERE datname = '$dbname'")" != "1" ]; then
  admin_psql -c "CREATE DATABASE $dbname OWNER $role" >/dev/null
  echo "postgres-up: created database $dbname" >&2
fi
PGPASSWORD=$password psql -U "$role" -d "$dbname" -qtAc "SELECT 1" >/dev/null \
  || fail "role $role cannot log in to $dbname over TCP on $PGHOST:$PGPORT; check pg_hba.conf allows password (scram-sha-256) logins from $PGHOST"
echo "postgres-up: PostgreSQL $(psql --version | awk '{ print $3 }') ready on $PGHOST:$PGPORT, database $dbname, role $role" >&2
echo "postgresql+psycopg://$role:$password@$PGHOST:$PGPORT/$dbname" >&3
