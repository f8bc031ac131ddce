"""Partial labels on GoEmotions: two halves of train labelled for different halves of the 28 labels,
trained together with the unknown pairs masked, against the alternatives (issue 34). Dev is read
only to score; test is never read.

The data (``--seed``):

- GoEmotions train (or a seeded ``--train-limit`` rows of it) is cut at random into halves H1 and
  H2;
- the 28 labels into L1 and L2, 14 each, balanced by frequency: labels sorted by their train
  positives, each consecutive pair split at random between L1 and L2 (so neither side gets all
  the frequent ones; ``neutral`` pairs with ``admiration``);
- H1 is labelled for L1 only, H2 for L2 only: a row keeps its labels of its side, and the others
  are unknown. This is two teams' datasets, each labelled for its own label set.

The systems, each written as a JSONL file of ``text``, ``labels``, ``labels_known`` (README
"### Partial labels") and trained by ``Classifier.train(FILE)`` with the same settings:

- **masked merge** (the feature): H1 and H2 concatenated, ``labels_known`` L1 on H1 rows and L2 on
  H2 rows: an unknown pair counts nowhere (loss, thresholds, calibration, the hold-out split);
- **naive merge**: the same rows and labels, every label known (``labels_known`` all 28): an
  unknown pair is taken as "no";
- **each half alone**: one run on H1 for L1 and one on H2 for L2 (``labels_known`` its 14 labels,
  so its label set is those 14), the two read together as one 28-label system: L1 from the first
  run, L2 from the second, each with its own thresholds;
- **fully labelled**: all rows with all their labels (the reference that partial labels cannot
  beat).

Every run: ``--epochs`` (3) epochs of its own file, the default 10% stratified hold-out of that
file for early stopping, calibration and thresholds (for the masked merge a partially labelled
hold-out, scored on its known pairs; for the naive merge a hold-out with the same false "no"s: part
of its cost), ``--seed``, every other setting the library's default. A half run sees half the
texts for as many epochs: half the steps, and the two together as many as one run on all.

The score: dev macro F1 over the 28 labels, as the mean of the 28 per-label F1s of
:meth:`multihot.Classifier.evaluate` (the runs' own thresholds); for the halves, each run scores
its 14 labels and the 28 are averaged together. Also the macro F1 over L1 and over L2.

Targets: the masked merge beats the naive merge by >= 0.05 dev macro F1 and is within 0.02 of the
fully labelled run.

    python benchmarks/partial_labels.py --json partial.json --runs runs/partial   # MiniLM
    python benchmarks/partial_labels.py --smoke                                   # a minute
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEFAULT_DATA,
    check_kept_settings,
    describe_machine,
    load_goemotions,
    log,
    machine_line,
    met,
    serial_tokenizers,
    setup_logging,
    subset,
    table,
    write_json,
)

from multihot import Classifier
from multihot.core.errors import MultihotError
from multihot.data.readers import Dataset

BEAT_NAIVE = 0.05
NEAR_FULL = 0.02
ARMS = ("masked", "naive", "halves", "full")
NAMES = {
    "masked": "masked merge (labels_known)",
    "naive": "naive merge (unknown = no)",
    "halves": "each half alone (L1 from H1, L2 from H2)",
    "full": "fully labelled train (reference)",
}


# ------------------------------------------------------------------------------------------ data
def split_labels(train: Dataset, names: list[str], seed: int) -> tuple[list[str], list[str]]:
    """L1 and L2 (in ``names`` order): labels by train positives, each consecutive pair split at
    random."""
    counts = {name: 0 for name in names}
    for labels in train.labels:
        for name in labels:
            counts[name] += 1
    ranked = sorted(names, key=lambda n: (-counts[n], n))
    rng = np.random.default_rng([seed, 1])
    first: set[str] = set()
    for i in range(0, len(ranked), 2):
        pair = ranked[i : i + 2]
        first.add(pair[int(rng.integers(len(pair)))])
    return [n for n in names if n in first], [n for n in names if n not in first]


def split_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of H1 and H2 (each sorted): a random half and the rest."""
    order = np.random.default_rng([seed, 0]).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def records(data: Dataset, rows: np.ndarray, known: list[str]) -> list[dict[str, Any]]:
    """JSONL records of ``rows``: each row's labels among ``known``, and ``labels_known``."""
    allowed = set(known)
    return [
        {
            "text": data.texts[i],
            "labels": [n for n in data.labels[i] if n in allowed],
            "labels_known": known,
        }
        for i in rows
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def data_files(
    train: Dataset, names: list[str], l1: list[str], l2: list[str], seed: int, directory: Path
) -> dict[str, Path]:
    """The training file of each run (the two halves' files named ``half-1``, ``half-2``)."""
    h1, h2 = split_rows(len(train), seed)
    both = records(train, h1, l1) + records(train, h2, l2)
    every = [{**row, "labels_known": names} for row in both]
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "masked": write_jsonl(directory / "masked.jsonl", both),
        "naive": write_jsonl(directory / "naive.jsonl", every),
        "half-1": write_jsonl(directory / "half-1.jsonl", records(train, h1, l1)),
        "half-2": write_jsonl(directory / "half-2.jsonl", records(train, h2, l2)),
        "full": write_jsonl(directory / "full.jsonl", records(train, np.arange(len(train)), names)),
    }


def restricted(dev: Dataset, labels: list[str]) -> Dataset:
    """``dev`` labelled for ``labels`` only (what a 14-label run can be scored on)."""
    allowed = set(labels)
    kept = [[n for n in row if n in allowed] for row in dev.labels]
    return Dataset(dev.texts, kept, f"{dev.source} ({len(labels)} labels)", list(labels))


# ------------------------------------------------------------------------------------------ runs
def trained(path: Path, out: Path, args: argparse.Namespace) -> Classifier:
    """The run on ``path`` in ``out``: read back when ``--runs`` kept a finished one, else trained."""
    if args.runs is not None and out.exists():
        try:
            clf = Classifier.load(out)
            log(f"{out}: read back")
            return clf
        except MultihotError:
            shutil.rmtree(out)
    clf = Classifier.train(
        path,
        output=out,
        encoder=args.encoder,
        max_length=args.max_length,
        epochs=args.epochs,
        seed=args.seed,
        compare_baseline=False,
    )
    log(f"{out.name}: trained in {train_seconds(clf):.0f} s")
    return clf


def train_seconds(clf: Classifier) -> float:
    """The run's training loop, as its history records it (without reading the data)."""
    return float(clf.history[-1]["seconds"])


def per_label_f1(clf: Classifier, dev: Dataset) -> tuple[dict[str, float], dict[str, Any]]:
    """Each label's dev F1 with the run's thresholds, and the whole evaluation."""
    metrics = clf.evaluate(dev, batch_size=128)
    return {name: v["f1"] for name, v in metrics["per_label"].items()}, metrics


def score(f1: dict[str, float], labels: list[str]) -> float:
    return float(np.mean([f1[name] for name in labels]))


def run_arm(
    arm: str, files: dict[str, Path], dev: Dataset, l1, l2, root: Path, args
) -> dict[str, Any]:
    """Train (or read back) the arm's run(s); their per-label dev F1 over all 28 labels."""
    if arm == "halves":
        f1: dict[str, float] = {}
        seconds = 0.0
        for part, labels in (("half-1", l1), ("half-2", l2)):
            clf = trained(files[part], root / part, args)
            part_f1, _ = per_label_f1(clf, restricted(dev, labels))
            f1.update(part_f1)
            seconds += train_seconds(clf)
        return {"per_label_f1": f1, "seconds": seconds}
    clf = trained(files[arm], root / arm, args)
    seconds = train_seconds(clf)
    f1, metrics = per_label_f1(clf, dev)
    if abs(score(f1, list(f1)) - metrics["macro_f1"]) > 1e-9:  # the mean is evaluate's macro F1
        raise SystemExit(f"{arm}: per-label mean {score(f1, list(f1))} != {metrics['macro_f1']}")
    return {"per_label_f1": f1, "seconds": seconds, "dev_micro_f1": metrics["micro_f1"]}


# ------------------------------------------------------------------------------------------ main
SMOKE = {"encoder": "scratch-tiny", "train_limit": 600, "dev_limit": 400, "epochs": 2}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GoEmotions directory")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="of every run")
    parser.add_argument("--train-limit", type=int, help="a seeded subset of train (all)")
    parser.add_argument("--dev-limit", type=int, help="a seeded subset of dev (all)")
    parser.add_argument("--seed", type=int, default=0, help="the splits and the runs")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated: {ARMS}")
    parser.add_argument("--runs", type=Path, help="keep the runs and files (reuse finished runs)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--smoke", action="store_true", help=f"tiny sizes: {SMOKE}")
    args = parser.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if unknown := [a for a in arms if a not in ARMS]:
        parser.error(f"--arms: unknown {unknown}; expected some of {ARMS}")
    serial_tokenizers()
    setup_logging()
    print(machine_line(describe_machine()), flush=True)
    train, names = load_goemotions(args.data, "train")
    dev, _ = load_goemotions(args.data, "dev")
    train, dev = subset(train, args.train_limit, seed=0), subset(dev, args.dev_limit, seed=0)
    l1, l2 = split_labels(train, names, args.seed)
    root = (args.runs or Path(tempfile.mkdtemp(prefix="multihot-partial-"))).resolve()
    if args.runs is not None:
        kept = ("data", "encoder", "max_length", "epochs", "train_limit", "seed")
        check_kept_settings(root, {k: getattr(args, k) for k in kept})
    files = data_files(train, names, l1, l2, args.seed, root / "data")
    print(
        f"train {len(train)} texts in halves of {len(train) // 2} and {len(train) - len(train) // 2}"
        f", dev {len(dev)}; {args.encoder}, max length {args.max_length}, {args.epochs} epochs, "
        f"seed {args.seed}\nL1 (known on H1): {', '.join(l1)}\nL2 (known on H2): {', '.join(l2)}",
        flush=True,
    )
    results = {arm: run_arm(arm, files, dev, l1, l2, root, args) for arm in arms}
    if args.runs is None:
        shutil.rmtree(root, ignore_errors=True)
    for r in results.values():
        f1 = r["per_label_f1"]
        r.update(
            dev_macro_f1=score(f1, names), macro_f1_l1=score(f1, l1), macro_f1_l2=score(f1, l2)
        )

    print()
    print(
        table(
            ["system", "dev macro F1 (28 labels)", "L1 labels", "L2 labels", "training seconds"],
            [
                [
                    NAMES[arm],
                    f"{r['dev_macro_f1']:.4f}",
                    f"{r['macro_f1_l1']:.4f}",
                    f"{r['macro_f1_l2']:.4f}",
                    f"{r['seconds']:.0f}",
                ]
                for arm, r in results.items()
            ],
        )
    )
    targets: dict[str, Any] = {}
    if "masked" in results and "naive" in results:
        gain = results["masked"]["dev_macro_f1"] - results["naive"]["dev_macro_f1"]
        targets["beats_naive"] = {"gain": gain, "met": gain >= BEAT_NAIVE}
        print(
            f"\ntarget: masked beats naive by >= {BEAT_NAIVE}: {gain:+.4f}, {met(gain >= BEAT_NAIVE)}"
        )
    if "masked" in results and "full" in results:
        gap = results["full"]["dev_macro_f1"] - results["masked"]["dev_macro_f1"]
        targets["near_full"] = {"gap": gap, "met": gap <= NEAR_FULL}
        print(
            f"target: masked within {NEAR_FULL} of fully labelled: {gap:+.4f} below, {met(gap <= NEAR_FULL)}"
        )
    if args.json:
        write_json(
            args.json,
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "l1": l1,
                "l2": l2,
                "results": results,
                "targets": targets,
            },
        )


if __name__ == "__main__":
    main()
