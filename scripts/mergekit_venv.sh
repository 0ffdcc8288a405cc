#!/usr/bin/env bash
# Create .venv-mergekit (the reference implementation, used only by tests and
# bench/merge.py). Idempotent: does nothing when mergekit-yaml already runs.
# torch is installed first and pinned, so pip never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-mergekit
TORCH=torch==2.13.0
MERGEKIT=mergekit==0.1.5

if [ -x "$VENV/bin/mergekit-yaml" ] && "$VENV/bin/python" -c "import mergekit, torch" 2>/dev/null; then
    exit 0
fi

python3.11 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "$TORCH"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "$TORCH" >"$constraints"
"$VENV/bin/pip" install --quiet -c "$constraints" "$MERGEKIT"
"$VENV/bin/python" -c "import mergekit, torch; print('mergekit ready, torch', torch.__version__)"
