"""How well ``multihot audit`` finds wrong labels in GoEmotions train.

1. Planted noise (``--planted``): with a fixed seed, 4% of the (text, label) positives are set to 0
   (missing labels) and as many pairs as 1% of the positives are set from 0 to 1 (false positives,
   on random negative pairs). Out-of-fold probabilities of the noisy set come from the linear
   baseline and, with ``--minilm``, from all-MiniLM-L6-v2 (5 folds, ``--minilm-epochs`` per fold).
   For each kind of flip, over the pairs that could be one (given 0 for missing, given 1 for
   wrong): precision at k (k = the number planted), recall in the top 2k and the ROC AUC of the
   ranking, for each ranking on the raw out-of-fold probabilities and on the audit's calibrated
   ones (its default: calibrated self-confidence), for ``|p - y|`` of the raw probabilities, and
   for a random ranking; and what cleanlab flags on the calibrated ones (how many, and how many of
   them were planted).
2. Real noise (``--real``): the audit of the unmodified train set (the baseline, or MiniLM with
   ``--minilm``); 50 of its top 100 issues, sampled evenly over the ranking, written to
   ``--read-out`` for a person to judge.
3. Time: ``multihot audit`` with the baseline on train, wall seconds (``--timing``).
4. Cleaning (``--clean FIX:K,...``): MiniLM, every default, trained on train cleaned by
   ``--write-cleaned`` from the audit of the MiniLM cross-validation that ``--real --minilm`` kept
   in ``--cv-dir`` (the top K issues flipped or dropped), scored on dev; then ``--clean-test RUN``
   reads test once with the run chosen on dev.

Dev is read only by ``--clean``, test only by ``--clean-test``.

    python benchmarks/audit.py --planted --timing              # baseline only, minutes
    python benchmarks/audit.py --planted --minilm --minilm-epochs 1   # hours on 2 cores
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
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
    table,
    write_json,
)
from sklearn.metrics import roc_auc_score

import multihot
from multihot.core.config import RunConfig
from multihot.data.readers import Dataset
from multihot.quality.audit import audited_probabilities
from multihot.quality.cleaning import write_cleaned
from multihot.quality.label_issues import RANKINGS, flagged_pairs, pair_scores
from multihot.tuning.cv import cross_validate

SEED = 0


def plant(data: Dataset, names: list[str], missing: float, extra: float, seed: int = SEED):
    """``data`` with ``missing`` of its positive pairs set to 0 and ``extra`` x positives pairs
    set from 0 to 1: (the noisy data, targets as given, the (n, L) 0/1 mask of planted pairs)."""
    rng = np.random.default_rng(seed)
    index = {name: j for j, name in enumerate(names)}
    targets = np.zeros((len(data), len(names)), dtype=np.int8)
    for i, labels in enumerate(data.labels):
        targets[i, [index[n] for n in labels]] = 1
    pos, neg = np.argwhere(targets == 1), np.argwhere(targets == 0)
    dropped = pos[rng.choice(len(pos), round(missing * len(pos)), replace=False)]
    added = neg[rng.choice(len(neg), round(extra * len(pos)), replace=False)]
    given = targets.copy()
    given[dropped[:, 0], dropped[:, 1]] = 0
    given[added[:, 0], added[:, 1]] = 1
    planted = np.zeros_like(given)
    planted[dropped[:, 0], dropped[:, 1]] = 1
    planted[added[:, 0], added[:, 1]] = 1
    labels = [[names[j] for j in np.flatnonzero(row)] for row in given]
    return (
        Dataset(list(data.texts), labels, f"{data.source} (noise planted)", names),
        given,
        planted,
    )


def ranking_figures(scores: np.ndarray, planted: np.ndarray, among: np.ndarray) -> dict[str, float]:
    """Precision at k, recall in the top 2k and ROC AUC of ``scores`` (higher: more suspect) over
    the pairs ``among``, against the planted ones."""
    s, y = scores[among], planted[among]
    k = int(y.sum())
    order = np.argsort(-s, kind="stable")
    return {
        "planted": k,
        "precision_at_k": float(y[order[:k]].mean()),
        "recall_top_2k": float(y[order[: 2 * k]].sum() / k),
        "roc_auc": float(roc_auc_score(y, s)),
    }


def evaluate(model: str, names, given, probs, planted, seconds: float) -> list[dict[str, Any]]:
    """Every ranking on the raw out-of-fold probabilities and on the audit's calibrated ones (the
    audit's default), and a random one, for each kind of flip; what cleanlab flags on the
    calibrated ones."""
    calibrated, _, _ = audited_probabilities(names, given, probs, RunConfig())
    flagged = flagged_pairs(given, calibrated)
    rng = np.random.default_rng(SEED)
    rankings = {name: pair_scores(given, probs, name) for name in RANKINGS}
    rankings.update(
        {f"{name}, calibrated": pair_scores(given, calibrated, name) for name in RANKINGS}
    )
    rankings["random"] = rng.random(given.shape)
    rows = []
    for kind, among in (("missing", given == 0), ("wrong", given == 1)):
        for name, scores in rankings.items():
            rows.append(
                {
                    "model": model,
                    "kind": kind,
                    "ranking": name,
                    **ranking_figures(scores, planted, among),
                    "flagged": int(flagged[among].sum()),
                    "flagged_planted": int((flagged & (planted == 1))[among].sum()),
                    "cv_seconds": round(seconds),
                }
            )
    return rows


def out_of_fold(data: Dataset, model: str, args) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    if model == "baseline":
        cv = cross_validate(data, folds=args.folds, baseline=True)
    else:
        cv = cross_validate(
            data,
            folds=args.folds,
            encoder="minilm",
            epochs=args.minilm_epochs,
            max_length=args.max_length,
            output=args.cv_dir / f"{model}-planted" if args.cv_dir else None,
            resume=bool(args.cv_dir and (args.cv_dir / f"{model}-planted").exists()),
        )
    return cv.oof_probs, time.perf_counter() - started


def planted_noise(train: Dataset, names: list[str], args) -> list[dict[str, Any]]:
    noisy, given, planted = plant(train, names, args.missing, args.extra)
    print(
        f"planted: {int(planted[given == 0].sum())} missing and "
        f"{int(planted[given == 1].sum())} wrong labels in {len(noisy)} texts",
        flush=True,
    )
    rows = []
    for model in ["baseline", *(["minilm"] if args.minilm else [])]:
        probs, seconds = out_of_fold(noisy, model, args)
        if args.save_oof:
            np.savez_compressed(
                args.save_oof.with_suffix(f".{model}.npz"),
                given=given,
                probs=probs,
                planted=planted,
            )
        rows += evaluate(model, names, given, probs, planted, seconds)
        _print_planted(rows)
    return rows


def real_noise(train_path: Path, args) -> dict[str, Any]:
    """The audit of unmodified train; 50 of its top 100 issues, evenly over the ranking."""
    cv_dir = None
    if args.minilm:
        cv_dir = (args.cv_dir or Path(tempfile.mkdtemp())) / "minilm-real"
        cross_validate(
            train_path,
            folds=args.folds,
            encoder="minilm",
            epochs=args.minilm_epochs,
            max_length=args.max_length,
            output=cv_dir,
            resume=cv_dir.exists(),
        )
    result = multihot.audit(train_path, folds=args.folds, cv_dir=cv_dir)
    top = result.issues[:100]
    picked = [top[i] for i in np.linspace(0, len(top) - 1, 50).round().astype(int)]
    with open(args.read_out, "w", encoding="utf-8") as fh:
        for rank, issue in zip(
            np.linspace(1, len(top), 50).round().astype(int), picked, strict=True
        ):
            fh.write(json.dumps({"rank": int(rank), **issue.to_dict()}, ensure_ascii=False) + "\n")
    print(f"{len(result.issues)} issues; 50 of the top 100 written to {args.read_out}", flush=True)
    return {"issues": len(result.issues), "oof": result.oof, "read_out": str(args.read_out)}


def timing(train_path: Path, args) -> float:
    """Wall seconds of ``multihot audit TRAIN -o DIR`` with the baseline, in this process."""
    from typer.testing import CliRunner

    from multihot.cli.app import app

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = CliRunner().invoke(app, ["audit", str(train_path), "-o", f"{tmp}/audit"])
        seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(result.output)
    print(f"multihot audit (baseline) on {train_path}: {seconds:.0f} s", flush=True)
    return seconds


def cleaning(train_path: Path, dev: Dataset, args) -> list[dict[str, Any]]:
    """MiniLM (every default) trained on train cleaned by ``--write-cleaned`` with each
    ``FIX:K`` of ``--clean`` (the top K issues of the audit with ``--cv``), scored on dev."""
    result = multihot.audit(train_path, cv_dir=args.cv_dir / "minilm-real")
    rows = []
    for choice in args.clean.split(","):
        fix, k = choice.split(":")
        run = args.runs / f"clean-{fix}-{k}"
        cleaned = args.runs / f"train-{fix}-{k}.jsonl"
        done = write_cleaned(
            train_path,
            cleaned,
            result.issues,
            fix=fix,
            top=int(k),
            force=True,
        )
        started = time.perf_counter()
        clf = multihot.Classifier.train(cleaned, dev, output=run)
        v = clf.metrics["validation"]
        rows.append(
            {
                "fix": fix,
                "k": int(k),
                "changed": done["labels_flipped"] if fix == "flip" else done["rows_dropped"],
                "dev_macro_f1": v["macro_f1"],
                "dev_micro_f1": v["micro_f1"],
                "run": str(run),
                "seconds": round(time.perf_counter() - started),
            }
        )
        print(rows[-1], flush=True)
    return rows


def cleaning_test(run: Path, test: Dataset) -> dict[str, Any]:
    """One read of test with a cleaned run chosen on dev."""
    metrics = multihot.Classifier.load(run).evaluate(test)
    row = {
        "run": str(run),
        "test_macro_f1": metrics["macro_f1"],
        "test_micro_f1": metrics["micro_f1"],
    }
    print(row, flush=True)
    return row


def _print_planted(rows: list[dict[str, Any]]) -> None:
    print(
        table(
            (
                "model",
                "flip",
                "ranking",
                "planted",
                "precision@k",
                "recall@2k",
                "ROC AUC",
                "cleanlab flags (planted)",
            ),
            [
                (
                    r["model"],
                    r["kind"],
                    r["ranking"],
                    r["planted"],
                    f"{r['precision_at_k']:.3f}",
                    f"{r['recall_top_2k']:.3f}",
                    f"{r['roc_auc']:.3f}",
                    f"{r['flagged']} ({r['flagged_planted']})",
                )
                for r in rows
            ],
        ),  # fmt: skip
        flush=True,
    )


def _train_file(train: Dataset, directory: Path) -> Path:
    """GoEmotions train as JSON lines with the comment id, as a user's file would be."""
    path = directory / "goemotions-train.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, (text, labels) in enumerate(zip(train.texts, train.labels, strict=True)):
            fh.write(json.dumps({"id": i, "text": text, "labels": labels}) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--planted", action="store_true")
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--minilm", action="store_true", help="also MiniLM's out-of-fold probs")
    parser.add_argument("--minilm-epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--missing", type=float, default=0.04)
    parser.add_argument("--extra", type=float, default=0.01)
    parser.add_argument("--cv-dir", type=Path, help="keep (and resume) MiniLM's cross-validation")
    parser.add_argument("--read-out", type=Path, default=Path("audit-real-noise.jsonl"))
    parser.add_argument("--save-oof", type=Path, help="keep each model's planted-noise arrays")
    parser.add_argument(
        "--rescore", type=Path, nargs="+", help="saved planted-noise arrays (--save-oof) to score"
    )
    parser.add_argument("--clean", help="FIX:K,...: train MiniLM on train cleaned each way (dev)")
    parser.add_argument("--clean-test", type=Path, help="a cleaned run to read test with, once")
    parser.add_argument("--runs", type=Path, default=Path("runs/audit-bench"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.rescore:
        _, names = load_goemotions(args.data, "train")
        rows = []
        for path in args.rescore:
            d = np.load(path)
            model = path.suffixes[-2].lstrip(".") if len(path.suffixes) > 1 else path.stem
            rows += evaluate(model, names, d["given"], d["probs"], d["planted"], 0.0)
        _print_planted(rows)
        return
    serial_tokenizers()
    setup_logging("multihot.tuning.cv")
    print(machine_line(describe_machine()), flush=True)
    train, names = load_goemotions(args.data, "train")
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        train_path = _train_file(train, Path(tmp))
        if args.timing:
            results["audit_seconds"] = timing(train_path, args)
        if args.planted:
            results["planted"] = planted_noise(train, names, args)
        if args.real:
            results["real"] = real_noise(train_path, args)
        if args.clean:
            args.runs.mkdir(parents=True, exist_ok=True)
            dev, _ = load_goemotions(args.data, "dev")
            results["clean"] = cleaning(train_path, dev, args)
    if args.clean_test:
        test, _ = load_goemotions(args.data, "test")
        results["clean_test"] = cleaning_test(args.clean_test, test)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
