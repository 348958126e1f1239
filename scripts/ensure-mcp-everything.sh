#!/usr/bin/env bash
# Installs the pinned npm MCP servers the e2e tests drive
# (tests/e2e/node/package-lock.json: @modelcontextprotocol/server-everything)
# into tests/e2e/node/node_modules; only when they are missing or the lock file
# changed since.
exec "$(dirname "$0")/ensure-npm.sh" tests/e2e/node
