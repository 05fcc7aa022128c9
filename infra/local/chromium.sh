#!/usr/bin/env bash
# Debian's chromium for the workstation's browser tests: installed from Debian's packages when
# missing (as root), never a browser a test tool downloads. Prints its path.
set -euo pipefail
browser=${PATHSTREAM_TEST_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$browser" ]; then
  [ "$(id -u)" -eq 0 ] || {
    echo "chromium: $browser is missing; install Debian's chromium (apt-get install chromium) or run this as root" >&2
    exit 1
  }
  echo "chromium: installing Debian's chromium (once)" >&2
  log=$(mktemp)
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "chromium: apt-get could not install chromium (output above)" >&2
    exit 1
  fi
  rm -f "$log"
  [ -x "$browser" ] || { echo "chromium: Debian's chromium is installed, but $browser is still missing" >&2; exit 1; }
fi
echo "chromium: $("$browser" --version 2>/dev/null | head -1) at $browser" >&2
echo "$browser"
