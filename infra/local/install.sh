#!/usr/bin/env bash
# Install PathStream into a virtual environment (default .venv at the repository root).
#
#   infra/local/install.sh            runtime dependencies only
#   infra/local/install.sh test       plus what the test suite needs (pytest, the local broker,
#                                     Debian's chromium for the workstation's browser tests)
#
# Both also build the review workstation's pages from services/review/frontend (npm registry at
# install time; the bundles ship inside the package, nothing comes from a CDN at run time).
#
# Idempotent: a stamp records what was installed for which pyproject.toml; a second run with the
# same inputs does nothing. Set PATHSTREAM_VENV to use another environment location.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
venv=${PATHSTREAM_VENV:-$repo/.venv}
extras=${1:-}

pick_python() {
  for candidate in "${PATHSTREAM_PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "install: PathStream needs Python >= 3.11; none found (set PATHSTREAM_PYTHON)." >&2
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  python=$(pick_python)
  echo "install: creating virtual environment $venv with $("$python" --version 2>&1)" >&2
  "$python" -m venv "$venv"
fi

# What follows the Python packages, also on a machine whose environment is already up to date.
finish() {
  infra/local/build-workstation.sh
  if [ "$extras" = "test" ]; then
    infra/local/chromium.sh >/dev/null
  fi
}

stamp="$venv/.pathstream-install"
project_hash=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
want="$project_hash extras=${extras}"
if [ -f "$stamp" ] && "$venv/bin/python" -I -c 'import pathstream.services, pathstream.shared' 2>/dev/null; then
  have=$(cat "$stamp")
  # An install with extras also satisfies a plain one.
  if [ "$have" = "$want" ] || { [ -z "$extras" ] && [ "${have%% *}" = "$project_hash" ]; }; then
    echo "install: $venv is up to date" >&2
    finish
    exit 0
  fi
fi

spec="."
[ -n "$extras" ] && spec=".[${extras}]"
echo "install: pip install -e '$spec' into $venv (first run downloads PyTorch: a few minutes)" >&2
log=$(mktemp)
rc=0
"$venv/bin/python" -m pip install --disable-pip-version-check -q -e "$spec" >"$log" 2>&1 || rc=$?
# Local mirror indexes on some machines list packages they do not hold; pip warns for each.
grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
rm -f "$log"
if [ "$rc" -ne 0 ]; then
  echo "install: pip failed (exit $rc), see its output above" >&2
  exit "$rc"
fi
echo "$want" > "$stamp"
finish
echo "install: done" >&2
