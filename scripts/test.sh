#!/usr/bin/env bash
# Set up .venv if needed, lint, and run the whole test suite (slow tests included), offline.
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
.venv/bin/ruff check src tests examples benchmarks
.venv/bin/ruff format --check src tests examples benchmarks
.venv/bin/python -m pytest "$@"
