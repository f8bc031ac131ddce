"""Does a 0.8 mean 80%? A run's calibration error on GoEmotions test before and after a temperature
and a bias per label (or ``--method temperature``: the temperature alone) fitted on dev, and what re-tuning the thresholds on the calibrated dev probabilities does
to test macro F1.

    python benchmarks/calibration.py runs/minilm
    python benchmarks/calibration.py runs/minilm --report report.html   # and the report on dev

The run is calibrated in memory (its directory is not changed): ``Classifier.calibrate`` on dev,
exactly what ``multihot tune-thresholds RUN dev.tsv --calibrate`` does. Test is read once, after
everything is fixed on dev.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import (
    DEFAULT_DATA,
    describe_machine,
    load_goemotions,
    machine_line,
    serial_tokenizers,
    table,
    write_json,
)

from multihot import Classifier
from multihot.scoring.calibration import expected_calibration_error
from multihot.scoring.probabilities import sigmoid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a run directory trained on GoEmotions train")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--method", default="platt", help="platt (default) or temperature")
    parser.add_argument(
        "--report", type=Path, help="also write the calibrated run's HTML report on dev"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    serial_tokenizers()
    print(machine_line(describe_machine()))

    clf = Classifier.load(args.run)
    dev, _ = load_goemotions(args.data, "dev")
    test, _ = load_goemotions(args.data, "test")
    test_targets = clf.labels.encode(test.labels)
    started = time.perf_counter()
    test_logits = clf.uncalibrated_logits(test.texts, batch_size=128)
    before = clf.thresholds.metrics(test_targets, sigmoid(test_logits), clf.label_names)

    # Fits on dev, re-tunes the thresholds on dev.
    tuned = clf.calibrate(dev, method=args.method, batch_size=128)
    calibrated_test = sigmoid(clf.calibration.apply(test_logits))
    after = clf.thresholds.metrics(test_targets, calibrated_test, clf.label_names)
    seconds = time.perf_counter() - started

    rows = [
        [
            "dev (fitted here)",
            f"{tuned['calibration']['ece_before']:.4f}",
            f"{tuned['calibration']['ece_after']:.4f}",
            "-",
            "-",
        ],
        [
            "test",
            f"{expected_calibration_error(test_targets, sigmoid(test_logits)):.4f}",
            f"{expected_calibration_error(test_targets, calibrated_test):.4f}",
            f"{before['macro_f1']:.4f}",
            f"{after['macro_f1']:.4f}",
        ],
    ]
    print(
        f"run {args.run}; {args.method} calibration fitted on dev ({len(dev)} texts), thresholds "
        f"re-tuned there; dev and test predicted in {seconds:.0f} s"
    )
    print(
        table(
            [
                "split",
                "ECE before",
                "ECE after",
                "macro F1 before (run's thresholds)",
                "macro F1 after (re-tuned on calibrated dev)",
            ],
            rows,
        )
    )
    t, b = clf.calibration.temperatures, clf.calibration.biases
    print(
        f"temperatures: min {t.min():.3f}, median {np.median(t):.3f}, max {t.max():.3f}; "
        f"biases: min {b.min():.3f}, median {np.median(b):.3f}, max {b.max():.3f}"
    )
    print(
        f"test micro F1 {before['micro_f1']:.4f} -> {after['micro_f1']:.4f}; "
        f"macro AUC {before['macro_roc_auc']:.4f} -> {after['macro_roc_auc']:.4f}"
    )
    if args.report:
        from multihot.report.build import report_inputs
        from multihot.report.html import write_report

        write_report(report_inputs(clf, args.run, dev, batch_size=128), args.report)
        print(f"wrote {args.report}")
    if args.json:
        write_json(
            args.json,
            {
                "run": str(args.run),
                "seconds": seconds,
                "before": before,
                "after": after,
                "calibration": tuned["calibration"],
                "method": args.method,
            },
        )


if __name__ == "__main__":
    main()
