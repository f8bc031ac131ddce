#!/usr/bin/env bash
# Set up .venv if needed, lint, type-check src/, and run the whole test suite (slow tests included),
# offline, measuring line coverage; a table of coverage per layer ends the output.
# The browser tests drive headless Chromium: run as root, this installs Debian's chromium when it
# is missing; otherwise those tests are skipped without it (and fail under MULTIHOT_REQUIRE_BROWSER).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium for the browser tests" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "no chromium: the browser tests will be skipped (apt-get install chromium)" >&2
    fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check src tests examples benchmarks scripts
.venv/bin/ruff format --check src tests examples benchmarks scripts
.venv/bin/mypy  # src/, as [tool.mypy] in pyproject.toml says; its cache is .mypy_cache/
# Coverage settings (subprocesses included) are [tool.coverage.*] in pyproject.toml. The table is
# printed whether or not the tests pass; the script's status is pytest's.
status=0
.venv/bin/python -m pytest --cov --cov-report= "$@" || status=$?
.venv/bin/python scripts/coverage_layers.py
exit "$status"
