#!/usr/bin/env bash
# PathStream's main job in embedded mode (one machine, no servers): install, prepare the local
# database, then run `pathstream` with the given arguments (default: list the commands).
#
#   infra/run.sh                   # install + migrate the embedded SQLite database + command list
#   infra/run.sh config            # any pathstream command
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${PATHSTREAM_VENV:-$repo/.venv}
"$repo/infra/local/install.sh"
"$venv/bin/pathstream" db upgrade
if [ "$#" -eq 0 ]; then
  exec "$venv/bin/pathstream" --help
fi
exec "$venv/bin/pathstream" "$@"
