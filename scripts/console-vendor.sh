#!/usr/bin/env bash
# Vendors the console's one third-party file from npm, or with --check proves
# the committed copy is byte-for-byte what npm serves for the pinned version.
# npm verifies the tarball against the registry's sha512 integrity itself.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=htm@3.1.1
SRC=package/preact/standalone.module.js
DST=internal/console/assets/vendor/htm-preact-standalone.mjs

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null && tar xzf ./*.tgz)

if [ "${1:-}" = "--check" ]; then
  if ! cmp -s "$tmp/$SRC" "$DST"; then
    echo "console-vendor: $DST differs from $SRC in npm's $PKG" >&2
    exit 1
  fi
  echo "console-vendor: $DST matches $PKG ($(sha256sum "$DST" | cut -d' ' -f1))"
  exit 0
fi
cp "$tmp/$SRC" "$DST"
cp "$tmp/package/LICENSE" internal/console/assets/vendor/htm-LICENSE
echo "console-vendor: wrote $DST from $PKG; update the sha256 in internal/console/VENDOR.md:"
sha256sum "$DST"
