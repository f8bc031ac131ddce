"""Does calibrating on the rows the thresholds are tuned on cost F1? ``multihot train`` calibrates
on its validation rows and tunes the thresholds there, on the calibrated probabilities. This script
answers from a run's saved validation rows alone (``validation.jsonl``: uncalibrated logits), dev
only: over random halves A/B of those rows, both ways,

- *uncalibrated*: thresholds tuned on A's raw probabilities, measured on B;
- *same rows*: calibration fitted on A, thresholds tuned on A's calibrated probabilities (what
  ``train`` does), measured on B;
- *cross-fitted*: calibration fitted on one half of A, thresholds tuned on the other half's
  calibrated probabilities, and the other way round, the two thresholds averaged, measured on B.

B's macro F1 and ECE for each. If *same rows* is no worse than *cross-fitted*, there is nothing to
cross-fit.

    python benchmarks/calibration_crossfit.py runs/minilm [more runs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import table

from multihot import Classifier
from multihot.artifacts.validation import read_validation
from multihot.scoring.calibration import Calibration, expected_calibration_error
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import Thresholds, tune_thresholds


def scores(targets, logits, settings, names, splits: int = 3, seed: int = 0) -> dict[str, float]:
    """Mean macro F1 and ECE on the measured halves, per way of fitting (see the module)."""
    rng = np.random.default_rng(seed)
    results: dict[str, list[tuple[float, float]]] = {"uncalibrated": [], "same rows": []}
    results["cross-fitted"] = []
    for _ in range(splits):
        order = rng.permutation(len(targets))
        halves = order[: len(order) // 2], order[len(order) // 2 :]
        for fit, measure in (halves, halves[::-1]):
            y, z = targets[fit], logits[fit]
            ym, zm = targets[measure], logits[measure]
            raw = tune_thresholds(y, sigmoid(z), **settings)
            results["uncalibrated"].append(_measure(raw, ym, sigmoid(zm), names))
            calibration = Calibration.fit(y, z, min_positives=max(1, settings["min_support"]))
            same = tune_thresholds(y, sigmoid(calibration.apply(z)), **settings)
            calibrated_m = sigmoid(calibration.apply(zm))
            results["same rows"].append(_measure(same, ym, calibrated_m, names))
            results["cross-fitted"].append(
                _measure(_cross_fitted(y, z, settings), ym, calibrated_m, names)
            )
    return {k: tuple(np.mean(v, axis=0)) for k, v in results.items()}


def _cross_fitted(y, z, settings) -> Thresholds:
    """Thresholds tuned on one half's probabilities calibrated on the other, both ways, averaged
    (in the calibrated scale of a calibration fitted on all of ``y``, which the measured half
    uses)."""
    half = len(y) // 2
    parts = (slice(0, half), slice(half, None))
    values = []
    for cal, tune in (parts, parts[::-1]):
        calibration = Calibration.fit(y[cal], z[cal], min_positives=max(1, settings["min_support"]))
        values.append(tune_thresholds(y[tune], sigmoid(calibration.apply(z[tune])), **settings))
    first = values[0]
    return Thresholds(
        np.mean([v.values for v in values], axis=0),
        first.strategy,
        float(np.mean([v.global_value for v in values])),
        top1_fallback=first.top1_fallback,
    )


def _measure(thresholds: Thresholds, targets, probs, names) -> tuple[float, float]:
    macro = thresholds.metrics(targets, probs, names)["macro_f1"]
    return macro, expected_calibration_error(targets, probs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        clf = Classifier.load(run)
        validation = read_validation(run, clf.labels)
        if validation is None:
            raise SystemExit(f"{run}: no validation.jsonl")
        settings = clf.config.train.threshold_settings()
        for way, (macro, ece) in scores(
            validation.targets, validation.logits, settings, clf.label_names
        ).items():
            rows.append((str(run), way, f"{macro:.4f}", f"{ece:.4f}"))
    print(table(("run", "fitted", "macro F1 on the other half", "ECE there"), rows))


if __name__ == "__main__":
    main()
