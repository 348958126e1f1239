#!/usr/bin/env bash
# Installs the console's pinned npm packages (web/package-lock.json) into
# web/node_modules; only when they are missing or the lock file changed since.
set -euo pipefail
cd "$(dirname "$0")/../web"
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
echo "console npm packages installed in web/node_modules"
