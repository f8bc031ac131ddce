#!/usr/bin/env bash
# The main job on the bundled GoEmotions sample (4,000 train / 500 dev / 500 test comments, 28 labels):
# set up .venv if needed, train a scratch-mini encoder from nothing, print the per-label report on the
# test sample, and label a few new sentences. A few minutes on 2 CPU cores, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
run=runs/quickstart

.venv/bin/multihot train examples/goemotions/train.jsonl --val examples/goemotions/dev.jsonl \
    --encoder scratch-mini --epochs 10 --output "$run"
.venv/bin/multihot evaluate "$run" examples/goemotions/test.jsonl
.venv/bin/multihot predict "$run" \
    --text "Thank you so much, this made my day!" \
    --text "I can't believe they cancelled it again, this is ridiculous." \
    --text "Wow, I did not see that coming." \
    --text "I'm so sorry for your loss."
