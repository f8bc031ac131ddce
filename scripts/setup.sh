#!/usr/bin/env bash
# Make .venv ready to run multihot: create it if missing, install torch 2.13.0 (CPU) first when torch is
# missing (a plain `torch` requirement would pull a newer release with gigabytes of CUDA packages), then
# the package itself with its dev extras. Re-running is cheap: nothing is reinstalled unless
# pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv" >&2
    "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "installing torch==2.13.0" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
fi
stamp=.venv/.multihot-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import multihot" 2>/dev/null; then
    echo "installing multihot and its dependencies" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    echo "$want" > "$stamp"
fi
