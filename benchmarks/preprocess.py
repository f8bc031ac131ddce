"""Which text preparation steps (``--preprocess``) help: each step alone, no step, and the chosen
default, fine-tuning the packaged all-MiniLM-L6-v2, scored on GoEmotions dev and on a Reuters-21578
hold-out (the 10% multi-label stratified hold-out of its train that ``multihot train`` makes); the
linear baseline with and without ``--stem``. Dev only, unless ``--test``.

A step that leaves every token id of a set as it was (the MiniLM tokenizer lower-cases, strips
accents and splits on whitespace, so ``whitespace`` changes no id) trains exactly the run with no
step: the script says so and does not train it again. ``lowercase`` is refused for MiniLM, whose
tokenizer lower-cases already; the table says why.

    python benchmarks/preprocess.py --reuters ../data/reuters            # the dev sweep
    python benchmarks/preprocess.py --reuters ../data/reuters --test \\
        --steps unicode,html,whitespace --reuters-epochs 6                # one read of test

Budgets (the same for every step): GoEmotions ``--goemotions-rows`` training texts for
``--goemotions-epochs``; Reuters all of train but the hold-out for ``--reuters-epochs``; both
``--max-length`` tokens. With ``--test``: GoEmotions trains on all of train with every default;
Reuters for ``--reuters-epochs`` (chosen on the hold-out: the default length is hours on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEFAULT_DATA,
    describe_machine,
    load_goemotions,
    machine_line,
    serial_tokenizers,
    setup_logging,
    subset,
    table,
    write_json,
)

from multihot import Classifier
from multihot.artifacts.validation import read_validation
from multihot.baseline.linear import BaselineConfig
from multihot.core.config import DEFAULT_PREPROCESS, PREPROCESS_STEPS, ModelConfig, RunConfig
from multihot.core.errors import ConfigError
from multihot.data.encoding import Reading, tokenize
from multihot.data.prepare import prepare_data
from multihot.data.preprocess import check_lowercase, prepare_texts
from multihot.data.readers import Dataset, read_dataset
from multihot.modeling.encoders import load_pretrained
from multihot.scoring.calibration import expected_calibration_error
from multihot.scoring.probabilities import sigmoid
from multihot.training.run import finish_on_validation

ENCODER = "minilm"


def hold_out(train: Dataset) -> tuple[Dataset, Dataset]:
    """The split ``multihot train`` makes without ``--val`` (its seed, fraction and rules)."""
    data = prepare_data(train, None, RunConfig())
    return data.train, data.val


def changes(tokenizer, steps: list[str], data: list[Dataset], max_length: int):
    """(texts the steps change, texts whose token ids they change, the ids) over ``data``."""
    texts = [t for d in data for t in d.texts]
    prepared = prepare_texts(texts, steps)
    before = tokenize(tokenizer, texts, Reading(max_length=max_length))
    after = tokenize(tokenizer, prepared, Reading(max_length=max_length))
    changed = sum(a != b for a, b in zip(texts, prepared, strict=True))
    return changed, sum(a != b for a, b in zip(before, after, strict=True)), after


def sweep(name, train, val, epochs, args, tokenizer) -> list[dict[str, Any]]:
    """Each configuration of steps trained (or not, where no id changes) on one set."""
    configs = [["none"], *([s] for s in PREPROCESS_STEPS), list(DEFAULT_PREPROCESS)]
    if args.configs:
        configs = [c.split(",") for c in args.configs.split(";")]
    rows: list[dict[str, Any]] = []
    trained: list[tuple[dict[str, Any], list]] = []  # each run trained, with its token ids
    runs = Path(tempfile.mkdtemp(prefix=f"multihot-preprocess-{name}-"))
    for i, steps in enumerate(configs if args.transformer else []):
        label = ",".join(steps)
        real = [s for s in steps if s != "none"]
        row: dict[str, Any] = {"set": name, "steps": label}
        if real == ["lowercase"]:
            try:
                check_lowercase(ModelConfig(ENCODER, preprocess=real), tokenizer, scratch=False)
            except ConfigError as err:
                row["note"] = f"refused: {err}".split(" (encoder")[0]
                rows.append(row)
                print(row, flush=True)
                continue
        if len(configs) - 1 == i and any(r["steps"] == label for r in rows):
            continue  # the default is one step alone
        row["texts_changed"], row["ids_changed"], ids = changes(
            tokenizer, real, [train, val], args.max_length
        )
        same = next((r for r, seen in trained if seen == ids), None)
        if same is not None:
            row.update({k: same[k] for k in ("macro_f1", "micro_f1")})
            row["note"] = f"same token ids as {same['steps']}: the same run"
        else:
            row.update(train_one(train, val, real, epochs, args, runs / f"r{i}"))
            trained.append((row, ids))
        rows.append(row)
        print(row, flush=True)
    for stem in (None, "english") if args.baseline else ():
        started = time.perf_counter()
        clf = Classifier.train_baseline(
            train, val, baseline=BaselineConfig(stem=stem), preprocess=list(DEFAULT_PREPROCESS)
        )
        v = clf.metrics["validation"]
        rows.append(
            {
                "set": name,
                "steps": f"baseline{' --stem english' if stem else ''}",
                "macro_f1": v["macro_f1"],
                "micro_f1": v["micro_f1"],
                "seconds": round(time.perf_counter() - started),
            }
        )
        print(rows[-1], flush=True)
    return rows


def train_one(train, val, steps, epochs, args, output) -> dict[str, Any]:
    started = time.perf_counter()
    clf = Classifier.train(
        train,
        val,
        output=output,
        encoder=ENCODER,
        preprocess=steps or ["none"],
        epochs=epochs,
        max_length=args.max_length,
        compare_baseline=False,
        patience=0,
    )
    v = clf.metrics["validation"]
    history = [round(r["macro_f1"], 4) for r in clf.history if "macro_f1" in r]
    return {
        "macro_f1": v["macro_f1"],
        "micro_f1": v["micro_f1"],
        "dev_macro_f1_per_epoch": history,
        "seconds": round(time.perf_counter() - started),
    }


def rescore(run: Path) -> dict[str, Any]:
    """A run's validation figures as ``train`` computes them now, from its saved validation rows
    (uncalibrated logits): calibrated there, thresholds tuned on the calibrated probabilities;
    beside them, thresholds tuned on the raw probabilities, and the calibration error before and
    after. For runs trained before a change to that last step."""
    clf = Classifier.load(run)
    validation = read_validation(run, clf.labels)
    if validation is None:
        raise SystemExit(f"{run}: no validation rows saved")
    t, y, z = clf.config.train, validation.targets, validation.logits
    row: dict[str, Any] = {"run": str(run), "steps": ",".join(clf.config.model.preprocess or [])}
    for name, calibrate in (("", True), ("uncalibrated_", False)):
        calibration, _, _, metrics = finish_on_validation(
            clf.label_names, y, z, replace(t, calibrate=calibrate)
        )
        row[f"{name}macro_f1"] = metrics["validation"]["macro_f1"]
        row[f"{name}micro_f1"] = metrics["validation"]["micro_f1"]
        if calibration is not None:
            row["ece_before"], row["ece_after"] = calibration.ece_before, calibration.ece_after
    return row


def test_read(name, train, val, test, flags, output) -> dict[str, Any]:
    """Train once with ``flags`` (the chosen defaults) and read ``test`` once: macro and micro F1
    and ECE with the calibration, and the same model's uncalibrated figures (thresholds tuned on
    the uncalibrated validation probabilities)."""
    started = time.perf_counter()
    clf = Classifier.train(train, val, output=output, encoder=ENCODER, **flags)
    return test_figures(name, clf, test, time.perf_counter() - started)


def refinished(run: Path) -> Classifier:
    """A finished run with its calibration and thresholds made again from its validation rows
    as ``train`` makes them now (the weights are what they are)."""
    clf = Classifier.load(run)
    validation = read_validation(run, clf.labels)
    if validation is None:
        raise SystemExit(f"{run}: no validation rows saved")
    clf.calibration, _, clf.thresholds, clf.metrics = finish_on_validation(
        clf.label_names,
        validation.targets,
        validation.logits,
        replace(clf.config.train, calibrate=True),
    )
    clf.validation = validation
    return clf


def test_figures(name: str, clf: Classifier, test: Dataset, seconds: float) -> dict[str, Any]:
    """Test macro and micro F1 and ECE of ``clf`` (calibrated), and of the same model without its
    calibration (thresholds tuned on the uncalibrated validation probabilities)."""
    targets = clf.labels.encode(test.labels)
    probs = clf.predict_proba(test.texts)
    decisions = clf.thresholds.apply(probs)
    raw_test = sigmoid(clf.uncalibrated_logits(test.texts))
    _, _, raw_thresholds, _ = finish_on_validation(
        clf.label_names,
        clf.validation.targets,
        clf.validation.logits,
        replace(clf.config.train, calibrate=False),
    )
    return {
        "set": name,
        "steps": ",".join(clf.config.model.preprocess or []) or "none",
        "epochs": clf.config.train.epochs,
        "epochs_run": len({r.get("epoch") for r in clf.history}),
        "test_macro_f1": _f1(targets, decisions, "macro"),
        "test_micro_f1": _f1(targets, decisions, "micro"),
        "test_ece": expected_calibration_error(targets, probs),
        "uncalibrated_test_macro_f1": _f1(targets, raw_thresholds.apply(raw_test), "macro"),
        "uncalibrated_test_micro_f1": _f1(targets, raw_thresholds.apply(raw_test), "micro"),
        "uncalibrated_test_ece": expected_calibration_error(targets, raw_test),
        "val_macro_f1": clf.metrics["validation"]["macro_f1"],
        "seconds": round(seconds),
    }


def _f1(targets: np.ndarray, decisions: np.ndarray, average: str) -> float:
    from sklearn.metrics import f1_score  # heavy: scikit-learn

    return float(f1_score(targets, decisions, average=average, zero_division=0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--goemotions", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reuters", type=Path, help="directory of prepare_reuters.py's files")
    parser.add_argument("--only", choices=("goemotions", "reuters"))
    parser.add_argument("--goemotions-rows", type=int, default=10000)
    parser.add_argument("--goemotions-epochs", type=int, default=1)
    parser.add_argument("--reuters-epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--test", action="store_true", help="one read of test with --steps")
    parser.add_argument("--steps", default=",".join(DEFAULT_PREPROCESS))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--configs", help="only these step lists, ';' between them (e.g. 'none;html;numbers')"
    )
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument("--baseline-only", dest="transformer", action="store_false")
    parser.add_argument("--rescore", type=Path, nargs="+", help="run directories to re-score")
    parser.add_argument(
        "--test-run",
        type=Path,
        help="with --test --only reuters: read test with this finished run (trained on the "
        "hold-out split with the chosen steps' token ids) instead of training one",
    )
    args = parser.parse_args()
    if args.rescore:
        rows = [rescore(run) for run in args.rescore]
        columns = (
            "steps",
            "macro_f1",
            "micro_f1",
            "uncalibrated_macro_f1",
            "uncalibrated_micro_f1",
            "ece_before",
            "ece_after",
        )
        print(
            table(("run", *columns), [(r["run"], *(_shown(r[c]) for c in columns)) for r in rows])
        )
        return
    serial_tokenizers()
    setup_logging("multihot.training.run")
    print(machine_line(describe_machine()), flush=True)
    sets = [s for s in ("goemotions", "reuters") if args.only in (None, s)]
    if "reuters" in sets and args.reuters is None:
        sets.remove("reuters")
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.test:
        results["test"] = run_tests(sets, args)
        _print_test(results["test"])
    else:
        _, tokenizer = load_pretrained(ENCODER)
        rows = []
        for name in sets:
            train, val, epochs = _dev_data(name, args)
            rows += sweep(name, train, val, epochs, args, tokenizer)
        results["dev"] = rows
        _print_dev(rows)
    if args.json:
        write_json(args.json, results)


def _dev_data(name: str, args) -> tuple[Dataset, Dataset, int]:
    if name == "goemotions":
        train, _ = load_goemotions(args.goemotions, "train")
        dev, _ = load_goemotions(args.goemotions, "dev")
        return subset(train, args.goemotions_rows), dev, args.goemotions_epochs
    train, val = hold_out(read_dataset(args.reuters / "train.jsonl"))
    return train, val, args.reuters_epochs


def run_tests(sets: list[str], args) -> list[dict[str, Any]]:
    runs = Path(tempfile.mkdtemp(prefix="multihot-preprocess-test-"))
    steps = [s for s in args.steps.split(",") if s]
    rows = []
    for name in sets:
        flags: dict[str, Any] = {"preprocess": steps or ["none"], "max_length": args.max_length}
        if name == "goemotions":
            train, _ = load_goemotions(args.goemotions, "train")
            val, _ = load_goemotions(args.goemotions, "dev")
            test, _ = load_goemotions(args.goemotions, "test")
        else:
            train, val = read_dataset(args.reuters / "train.jsonl"), None
            test = read_dataset(args.reuters / "test.jsonl")
            flags["epochs"] = args.reuters_epochs
            if args.test_run is not None:
                rows.append(test_figures(name, refinished(args.test_run), test, 0.0))
                print(rows[-1], flush=True)
                continue
        rows.append(test_read(name, train, val, test, flags, runs / name))
        print(rows[-1], flush=True)
    return rows


def _shown(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _print_dev(rows: list[dict[str, Any]]) -> None:
    print(
        table(
            ("set", "steps", "texts changed", "ids changed", "dev macro F1", "dev micro F1", "s"),
            [
                (
                    r["set"],
                    r["steps"],
                    r.get("texts_changed", "-"),
                    r.get("ids_changed", "-"),
                    f"{r['macro_f1']:.4f}" if "macro_f1" in r else "-",
                    f"{r['micro_f1']:.4f}" if "micro_f1" in r else "-",
                    r.get("seconds", "-") if "note" not in r else r["note"],
                )
                for r in rows
            ],
        )
    )


def _print_test(rows: list[dict[str, Any]]) -> None:
    print(
        table(
            ("set", "steps", "epochs", "test macro F1", "test micro F1", "test ECE", "uncal."),
            [
                (
                    r["set"],
                    r["steps"],
                    f"{r['epochs_run']} of {r['epochs']}",
                    f"{r['test_macro_f1']:.4f}",
                    f"{r['test_micro_f1']:.4f}",
                    f"{r['test_ece']:.4f}",
                    f"{r['uncalibrated_test_macro_f1']:.4f} / {r['uncalibrated_test_micro_f1']:.4f}"
                    f" / ECE {r['uncalibrated_test_ece']:.4f}",
                )
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    main()
