#!/usr/bin/env bash
# Installs the pinned npm packages of a folder of this repository (its
# package-lock.json) into its node_modules; only when they are missing or the
# lock file changed since. Usage: scripts/ensure-npm.sh FOLDER (relative to the
# repository root).
set -euo pipefail
dir=${1:?usage: ensure-npm.sh FOLDER}
cd "$(dirname "$0")/../$dir"
if ! command -v npm >/dev/null; then
  echo "npm is missing: install Node.js 20 or newer (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
stamp=node_modules/.lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -d node_modules ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
# `npm ci` refuses a lock file that lacks other platforms' optional packages (as
# one written against a registry mirror that serves only this platform's); then
# `npm install`, which still installs the locked versions.
npm ci --no-audit --no-fund --loglevel=silent || npm install --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
echo "npm packages installed in $dir/node_modules"
