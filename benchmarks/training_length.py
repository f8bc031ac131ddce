"""How long to train when the user does not say: the old fixed 3 epochs against the data-dependent
default (about 2,000 optimiser steps, early stopping), beside ``multihot baseline``, on any labelled
set. Made for a set unlike GoEmotions: Reuters-21578 (ModApte, 90 labels, 7.7k news articles), built
by ``benchmarks/prepare_reuters.py``.

Every system is trained on ``--train`` and tuned on ``--val`` (default: the same 10% multi-label
stratified hold-out of train that ``multihot train`` makes); ``--test`` is read once per system,
after it is trained.

    python benchmarks/training_length.py --train ../data/reuters/train.jsonl \\
        --test ../data/reuters/test.jsonl                            # scratch-mini, ~10 min
    python benchmarks/training_length.py ... --encoder minilm       # the pretrained encoder
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import describe_machine, machine_line, serial_tokenizers, setup_logging, table

from multihot import Classifier
from multihot.data.readers import read_dataset

SYSTEMS = {
    "fixed 3 epochs (old default)": {"epochs": 3, "patience": 0},
    "auto epochs + early stopping (default)": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, help="validation file (default: a hold-out of train)")
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--encoder", default="scratch-mini")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--flags", default="{}", help="more Classifier.train flags, as JSON")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    serial_tokenizers()
    setup_logging("multihot.training.run")

    train, test = read_dataset(args.train), read_dataset(args.test)
    val = read_dataset(args.val) if args.val else None
    common = {"encoder": args.encoder, "max_length": args.max_length, "compare_baseline": False}
    common.update(json.loads(args.flags))
    print(machine_line(describe_machine()))
    print(f"data: train {len(train)} ({args.train}), test {len(test)}, flags {common}")
    runs = Path(tempfile.mkdtemp(prefix="multihot-length-"))
    results = {}
    for index, (name, flags) in enumerate(SYSTEMS.items()):
        started = time.perf_counter()
        clf = Classifier.train(train, val, output=runs / f"r{index}", **common, **flags)
        seconds = time.perf_counter() - started
        results[name] = _row(clf, test, seconds)
        results[name]["epochs run"] = f"{clf.history[-1]['epoch']:g} of {clf.config.train.epochs}"
        print(f"{name}: {results[name]}", flush=True)
    started = time.perf_counter()
    baseline = Classifier.train_baseline(train, val, output=runs / "baseline")
    results["multihot baseline (TF-IDF + LR)"] = _row(baseline, test, time.perf_counter() - started)
    results["multihot baseline (TF-IDF + LR)"]["epochs run"] = "-"

    print()
    columns = ["val macro F1", "test macro F1", "test micro F1", "epochs run", "seconds"]
    print(table(["system", *columns], [[n, *(r[c] for c in columns)] for n, r in results.items()]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def _row(clf: Classifier, test, seconds: float) -> dict:
    metrics = clf.evaluate(test)  # test, read once for this system
    return {
        "val macro F1": f"{clf.metrics['validation']['macro_f1']:.4f}",
        "test macro F1": f"{metrics['macro_f1']:.4f}",
        "test micro F1": f"{metrics['micro_f1']:.4f}",
        "seconds": f"{seconds:.0f}",
    }


if __name__ == "__main__":
    main()
