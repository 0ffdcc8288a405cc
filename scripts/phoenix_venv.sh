#!/usr/bin/env bash
# Create .venv-phoenix (Arize Phoenix, the reference that bench/ingest.py compares
# against; it is never imported by Tooltrail). Idempotent: does nothing when
# Phoenix already imports.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PHOENIX_VENV:-.venv-phoenix}
PHOENIX=arize-phoenix==20.26.1

if [ -x "$VENV/bin/phoenix" ] && "$VENV/bin/python" -c "import phoenix" 2>/dev/null; then
    exit 0
fi

python3.11 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "$PHOENIX"
"$VENV/bin/python" -c "import phoenix; print('phoenix ready', phoenix.__version__)"
