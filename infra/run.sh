#!/usr/bin/env bash
# PathStream's main job in embedded mode (one machine, no servers): install, prepare the local
# database, then run `pathstream` with the given arguments (default: the demo).
#
#   infra/run.sh                   # install + migrate the embedded SQLite database + pathstream demo
#   infra/run.sh run SLIDE... --out DIR   # any pathstream command
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${PATHSTREAM_VENV:-$repo/.venv}
"$repo/infra/local/install.sh"
"$venv/bin/pathstream" db upgrade
if [ "$#" -eq 0 ]; then
  exec "$venv/bin/pathstream" demo
fi
exec "$venv/bin/pathstream" "$@"
