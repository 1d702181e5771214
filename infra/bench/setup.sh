#!/usr/bin/env bash
# Creates the Python environment that the parse benchmark's baselines run in
# (`cargo bench -p avatar-formats --bench parse`). Idempotent: does nothing when the venv
# already has whatstk, so the bench can call it on every run.
set -euo pipefail

VENV="${AVATAR_BENCH_VENV:-$HOME/.cache/avatar/bench-venv}"
PY="${PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import whatstk' >/dev/null 2>&1; then
    echo "bench venv ready: $VENV" >&2
    exit 0
fi

echo "creating bench venv at $VENV (once)" >&2
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'whatstk>=0.7,<1' >&2
"$VENV/bin/python" -c 'import whatstk, sys; print("whatstk", whatstk.__version__, file=sys.stderr)'
