"""How good are runs (or their average) on GoEmotions dev, without reading test?

Tuning per-label thresholds on dev and measuring on the same dev flatters a model: the thresholds
have seen the answers. This script prints that figure next to a cross-fitted one: thresholds tuned on
a random half of dev and macro F1 measured on the other half, both ways, over three random splits.
With several runs it scores the average of their probabilities (as ``--ensemble`` does), so you can
ask whether two runs are worth combining before training the ensemble.

    python benchmarks/dev_crossfit.py runs/a runs/b            # each run, then their average
    python benchmarks/dev_crossfit.py runs/a runs/b --only-average

It reads only dev.tsv; runs come from ``multihot train`` or ``multihot baseline``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import DEFAULT_DATA, load_goemotions, serial_tokenizers, tuned_macro_f1

from multihot import Classifier


def dev_scores(targets: np.ndarray, probs: np.ndarray, config, names, splits: int = 3):
    """(macro F1 tuned and measured on all of dev, cross-fitted macro F1 over half-splits)."""
    whole = tuned_macro_f1(targets, probs, config, names)
    rng = np.random.default_rng(0)
    halves = []
    for _ in range(splits):
        order = rng.permutation(len(targets))
        a, b = order[: len(order) // 2], order[len(order) // 2 :]
        for tune, measure in ((a, b), (b, a)):
            held_out = (targets[measure], probs[measure])
            halves.append(tuned_macro_f1(targets[tune], probs[tune], config, names, held_out))
    return whole, float(np.mean(halves))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run directories")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--only-average", action="store_true", help="skip the single-run rows")
    args = parser.parse_args()
    serial_tokenizers()

    dev, names = load_goemotions(args.data, "dev")
    runs = [Classifier.load(path) for path in args.runs]
    targets = runs[0].labels.encode(dev.labels)
    probs = [run.predict_proba(dev.texts, batch_size=128) for run in runs]
    rows = [] if args.only_average else [(str(p), q) for p, q in zip(args.runs, probs, strict=True)]
    if len(runs) > 1:
        rows.append((" + ".join(str(p) for p in args.runs), np.mean(probs, axis=0)))
    print("| runs | dev macro F1 (tuned on dev) | dev macro F1 (cross-fitted halves) |")
    print("| --- | --- | --- |")
    for name, p in rows:
        whole, crossed = dev_scores(targets, p, runs[0].config.train, names)
        print(f"| {name} | {whole:.4f} | {crossed:.4f} |")


if __name__ == "__main__":
    main()
