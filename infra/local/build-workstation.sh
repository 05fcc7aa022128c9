#!/usr/bin/env bash
# Build the review workstation's pages (services/review/frontend -> services/review/web/static) with
# the machine's Node.js and npm: `npm ci` from the committed package-lock.json, then esbuild.
# Idempotent: a stamp of the sources and the lock file skips a build that is already current.
#
# Without npm the review API still works; /ui/ then answers 503 naming this script.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
frontend="$repo/services/review/frontend"
static="$repo/services/review/web/static"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "build-workstation: Node.js and npm are missing, so the workstation's pages are not built;" \
    "install them (apt-get install nodejs npm) and run infra/local/build-workstation.sh" >&2
  exit 1
fi
sources=$(cd "$frontend" && find package.json package-lock.json build.mjs src -type f -print0 | sort -z \
  | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -f "$static/.build-stamp" ] && [ "$(cat "$static/.build-stamp")" = "$sources" ]; then
  echo "build-workstation: $static is up to date" >&2
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$frontend"
# esbuild's postinstall only picks its platform binary, which npm already installed as a dependency.
if ! npm ci --no-audit --no-fund --ignore-scripts >"$log" 2>&1 || ! npm run --silent build >>"$log" 2>&1; then
  cat "$log" >&2
  echo "build-workstation: npm could not build the workstation (output above)" >&2
  exit 1
fi
echo "$sources" > "$static/.build-stamp"
echo "build-workstation: built $static" >&2
