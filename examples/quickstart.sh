#!/usr/bin/env bash
# The main job on the bundled GoEmotions sample (4,000 train / 500 dev / 500 test comments, 28 labels):
# set up .venv if needed, fine-tune the packaged pretrained encoder (all-MiniLM-L6-v2: BERT, 6 layers x
# 384, 22M parameters; the default encoder, `--encoder minilm`) on it, print the per-label report on the test sample, label a
# few new sentences, put its test figures beside an encoder trained from scratch on the same sample,
# and audit the sample's labels.
# About six minutes on 2 CPU cores, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
data=examples/goemotions
run=runs/quickstart
scratch=runs/quickstart-scratch

.venv/bin/multihot train "$data/train.jsonl" --val "$data/dev.jsonl" --epochs 6 --output "$run"
.venv/bin/multihot evaluate "$run" "$data/test.jsonl"
.venv/bin/multihot predict "$run" \
    --text "Thank you so much, this made my day!" \
    --text "I can't believe they cancelled it again, this is ridiculous." \
    --text "Wow, I did not see that coming." \
    --text "I'm so sorry for your loss."

echo
echo "For comparison: the same sample, a 4-layer encoder trained from nothing (scratch-mini)..."
.venv/bin/multihot train "$data/train.jsonl" --val "$data/dev.jsonl" \
    --encoder scratch-mini --epochs 10 --no-compare-baseline --output "$scratch" > /dev/null
.venv/bin/python - "$data/test.jsonl" "$run" "$scratch" <<'EOF'
import sys

from multihot import Classifier

test, *runs = sys.argv[1:]
print(f"\n{'test sample (500 comments)':34} {'macro F1':>9} {'micro F1':>9}")
for name, run in zip(("all-MiniLM-L6-v2, fine-tuned", "scratch-mini, from nothing"), runs):
    metrics = Classifier.load(run).evaluate(test)
    print(f"{name:34} {metrics['macro_f1']:9.4f} {metrics['micro_f1']:9.4f}")
EOF

echo
echo "Auditing the sample's labels (linear baseline, 5 folds; the page is runs/quickstart-audit/audit.html)..."
.venv/bin/multihot audit "$data/train.jsonl" --val "$data/dev.jsonl" -o runs/quickstart-audit --force

echo
echo "To try the fine-tuned model by hand: .venv/bin/multihot serve $run  (then open http://127.0.0.1:8000/)"
