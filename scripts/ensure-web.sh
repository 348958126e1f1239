#!/usr/bin/env bash
# Installs the console's pinned npm packages (web/package-lock.json) into
# web/node_modules; only when they are missing or the lock file changed since.
exec "$(dirname "$0")/ensure-npm.sh" web
