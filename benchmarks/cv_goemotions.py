"""k-fold cross-validation on GoEmotions train: every metric as mean +- std over folds, per label,
and (with ``--test``) whether thresholds tuned on the out-of-fold predictions of every row beat
those tuned on one 10% validation slice, on the official test split.

    python benchmarks/cv_goemotions.py --baseline -o /tmp/cv-baseline            # TF-IDF + LR, a minute
    python benchmarks/cv_goemotions.py --encoder scratch-mini -o /tmp/cv-mini     # hours on 2 cores
    python benchmarks/cv_goemotions.py --baseline -o /tmp/cv-baseline --resume --test

The comparison with ``--test`` is between the two things a user would run: ``multihot cv --final``
(a model trained on all of train for the folds' median best epoch, with out-of-fold thresholds)
and ``multihot train`` without ``--val`` (a model trained on 90% of train, early-stopped and
thresholded on a stratified 10% slice). Test is read once for both, after the folds are done.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import (
    DEFAULT_DATA,
    describe_machine,
    load_goemotions,
    machine_line,
    serial_tokenizers,
    table,
    write_json,
)

from multihot import Classifier, cross_validate


def pm(stat: dict | None, digits: int = 4) -> str:
    """``mean +- std`` of a summary entry."""
    if not stat or stat.get("mean") is None:
        return "-"
    std = stat.get("std")
    return (
        f"{stat['mean']:.{digits}f} +- {std:.{digits}f}"
        if std is not None
        else f"{stat['mean']:.{digits}f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the CV directory")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--baseline", action="store_true", help="TF-IDF + logistic regression")
    parser.add_argument("--encoder", default="scratch-mini", help="without --baseline")
    parser.add_argument("--epochs", type=int, default=None, help="per fold (default: auto)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--test", action="store_true", help="--final, then read test once")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    serial_tokenizers()
    print(machine_line(describe_machine()))

    train, names = load_goemotions(args.data, "train")
    overrides = {} if args.baseline else {"encoder": args.encoder, "epochs": args.epochs}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    started = time.perf_counter()
    result = cross_validate(
        train,
        folds=args.folds,
        output=args.output,
        baseline=args.baseline,
        final=args.test,
        resume=args.resume,
        **overrides,
    )
    seconds = time.perf_counter() - started
    kind = "baseline (TF-IDF + LR)" if args.baseline else args.encoder
    print(f"{kind}, {args.folds} folds of {len(train)} GoEmotions train rows, {seconds:.0f} s")
    summary = result.summary
    print(
        table(
            ["metric", "mean +- std over folds", "out of fold (thresholds tuned on every row)"],
            [
                [m, pm(summary.get(m)), f"{result.oof_metrics[m]:.4f}"]
                for m in (
                    "macro_f1",
                    "micro_f1",
                    "macro_precision",
                    "macro_recall",
                    "macro_ap",
                    "macro_roc_auc",
                )
            ],
        )
    )
    support = result.targets.sum(axis=0)
    per_label = summary["per_label"]
    print()
    print(
        table(
            ["label", "support", "F1", "precision", "recall", "AP"],
            [
                [
                    name,
                    int(support[j]),
                    pm(per_label[name].get("f1"), 3),
                    pm(per_label[name].get("precision"), 3),
                    pm(per_label[name].get("recall"), 3),
                    pm(per_label[name].get("ap"), 3),
                ]
                for j, name in enumerate(result.label_names)
            ],
        )
    )
    record = {"kind": kind, "seconds": seconds, "summary": summary, "oof": result.oof_metrics}
    if args.test:
        test, _ = load_goemotions(args.data, "test")
        final = result.final_model
        sliced = (
            Classifier.train_baseline(train)
            if args.baseline
            else Classifier.train(train, **overrides)
        )
        rows = []
        for name, clf in (
            ("cv --final: all of train, out-of-fold thresholds", final),
            ("train: 90% of train, thresholds on a 10% slice", sliced),
        ):
            m = clf.evaluate(test, batch_size=128)
            rows.append([name, f"{m['macro_f1']:.4f}", f"{m['micro_f1']:.4f}"])
            record[name] = {"macro_f1": m["macro_f1"], "micro_f1": m["micro_f1"]}
        print()
        print(table(["on GoEmotions test", "macro F1", "micro F1"], rows))
    if args.json:
        write_json(args.json, record)


if __name__ == "__main__":
    main()
