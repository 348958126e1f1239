#!/usr/bin/env bash
# Creates .venv with the pinned test clients (tests/e2e/requirements.txt). Reinstalls
# only when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
req=tests/e2e/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "python test clients installed in .venv"
