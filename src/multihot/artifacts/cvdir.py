"""The cross-validation directory that ``multihot cv`` leaves: its layout, and the one place that
knows its file names.

```
cv.json            the resolved config, the number of folds, the seed, baseline or not, the data
                   (source, rows, SHA-256 of texts and targets, rows repeating an earlier text
                   and those of them with other labels), the label names, and one record
                   per finished fold (its validation metrics, best epoch, seconds) and of the final
                   run once saved: what resuming reads
folds/fold-K/      fold K's run directory: trained on the other folds, validated on this one (its
                   validation.jsonl holds the out-of-fold logits of fold K's rows)
oof.jsonl          one line per row of the data, in its order: row, fold, text, labels and the
                   out-of-fold probability of every label; with partial labels, labels_known
                   (the labels the row was labelled for) on each row not labelled for every label
summary.json       mean and standard deviation over folds, overall and per label; each fold's
                   metrics; the metrics of the out-of-fold probabilities with thresholds.json
thresholds.json    thresholds tuned on all the out-of-fold probabilities (a run's format)
final/             with --final: a run directory trained on every row, with those thresholds
```

A fold counts as finished once cv.json records it, after its run directory is saved; each file is
written by rename (:func:`multihot.core.files.write_atomic`) and each run directory whole, so a kill
leaves the previous state or the next one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.rundir import THRESHOLDS, VALIDATION, read_json
from multihot.artifacts.validation import read_validation
from multihot.core.errors import RunDirError
from multihot.core.files import dumps, write_atomic
from multihot.data.labels import KNOWN_COL, LabelSet
from multihot.scoring.thresholds import Thresholds

FORMAT = 1
KIND = "multihot-cv"
CV_JSON, OOF, SUMMARY = "cv.json", "oof.jsonl", "summary.json"
FOLDS, FINAL = "folds", "final"
PROB_DIGITS = 9
"""Significant digits of each probability in oof.jsonl: enough to read float32 back exactly."""


def fold_dir(cv_dir: str | Path, index: int) -> Path:
    """Fold ``index``'s run directory."""
    return Path(cv_dir) / FOLDS / f"fold-{index}"


def fold_saved(cv_dir: str | Path, index: int) -> bool:
    """Whether fold ``index``'s run directory is there with its validation predictions."""
    return (fold_dir(cv_dir, index) / VALIDATION).is_file()


def final_dir(cv_dir: str | Path) -> Path:
    """The run directory trained on all the data (``--final``)."""
    return Path(cv_dir) / FINAL


def check_new(cv_dir: str | Path) -> None:
    """Refuse to start a cross-validation in a file or a non-empty directory.

    Raises:
        RunDirError: naming ``--resume`` (``resume=True``) as the way to continue one.
    """
    path = Path(cv_dir)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; expected a new or empty one")
    if path.is_dir() and any(path.iterdir()):
        what = "an earlier cross-validation" if (path / CV_JSON).exists() else "files"
        raise RunDirError(
            f"{path}: not empty (it holds {what}); continue that cross-validation with --resume "
            "(resume=True in Python), or choose a new or empty directory"
        )


def discard(cv_dir: str | Path, remove_dir: bool) -> None:
    """Remove what a cross-validation wrote before its first fold finished: cv.json and folds/,
    and the directory itself with ``remove_dir`` (it made it)."""
    path = Path(cv_dir)
    shutil.rmtree(path / FOLDS, ignore_errors=True)
    (path / CV_JSON).unlink(missing_ok=True)
    if remove_dir:
        with contextlib.suppress(OSError):  # not empty: something else is in it now; keep that
            path.rmdir()


def read_manifest(cv_dir: str | Path) -> dict[str, Any] | None:
    """cv.json, or None where nothing was started yet (no directory, or an empty one).

    Raises:
        RunDirError: a non-empty directory without cv.json, or a cv.json of another format.
    """
    path = Path(cv_dir)
    if not (path / CV_JSON).exists():
        if path.is_dir() and any(path.iterdir()):
            raise RunDirError(
                f"{path}: holds no {CV_JSON}; not a cross-validation directory that can be resumed"
            )
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path}: exists and is not a directory")
        return None
    manifest = read_json(path / CV_JSON)
    if manifest.get("kind") != KIND or manifest.get("format") != FORMAT:
        raise RunDirError(
            f"{path / CV_JSON}: not a cross-validation record of this version "
            f"(kind {manifest.get('kind')!r}, format {manifest.get('format')!r})"
        )
    return manifest


def new_manifest(**fields: Any) -> dict[str, Any]:
    """A cv.json with nothing finished yet; ``fields``: config, folds, seed, baseline, data, labels."""
    return {"kind": KIND, "format": FORMAT, **fields, "finished": {}, "final": None}


def write_manifest(cv_dir: str | Path, manifest: dict[str, Any]) -> None:
    path = Path(cv_dir)
    path.mkdir(parents=True, exist_ok=True)
    write_atomic(path / CV_JSON, dumps(manifest))


def read_fold_logits(cv_dir: str | Path, index: int, labels: LabelSet, texts: list[str]):
    """Fold ``index``'s out-of-fold logits ``(len(texts), num_labels)``, float32, as its run saved
    them, after checking they are of these texts in this order.

    Raises:
        RunDirError: the fold's run directory has no validation predictions, or ones of other rows.
    """
    run = fold_dir(cv_dir, index)
    validation = read_validation(run, labels) if run.is_dir() else None
    if validation is None:
        raise RunDirError(f"{run}: missing its validation predictions; delete {run} to retrain it")
    if validation.texts != list(texts):
        raise RunDirError(
            f"{run}: its validation rows are not fold {index}'s rows of these data; the "
            "cross-validation directory was changed by hand, or the folds of this version differ"
        )
    return validation.logits


def write_oof(
    cv_dir: str | Path,
    texts: list[str],
    targets: np.ndarray,
    fold: np.ndarray,
    probs: np.ndarray,
    labels: LabelSet,
    known: np.ndarray | None = None,
) -> None:
    """oof.jsonl: ``{"row", "fold", "text", "labels", "probs": {label: p}}`` per row, in order.

    With partial labels (``known``, ``(n, L)`` bool, the labelled pairs), a row not labelled for
    every label also holds ``labels_known``, the labels it was labelled for, as in a data file."""
    lines = []
    for row, (text, target, k, values) in enumerate(
        zip(texts, targets, fold.tolist(), probs.tolist(), strict=True)
    ):
        record = {
            "row": row,
            "fold": k,
            "text": text,
            "labels": [labels.names[j] for j in np.flatnonzero(target)],
            "probs": {
                n: float(f"{p:.{PROB_DIGITS}g}") for n, p in zip(labels.names, values, strict=True)
            },
        }
        if known is not None and not known[row].all():
            record[KNOWN_COL] = [labels.names[j] for j in np.flatnonzero(known[row])]
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    write_atomic(Path(cv_dir) / OOF, "".join(lines))


def read_oof(cv_dir: str | Path, labels: LabelSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`write_oof` wrote: ``(fold (n,), targets (n, L) int8, probs (n, L) float32)``,
    rows in the data's order."""
    folds, targets, probs, _ = _read_oof(cv_dir, labels)
    return folds, targets, probs


def read_oof_probs(cv_dir: str | Path, labels: LabelSet) -> tuple[np.ndarray, np.ndarray | None]:
    """The out-of-fold probabilities ``(n, L)`` float32 that :func:`write_oof` wrote, and with
    partial labels which pairs were known (``(n, L)`` bool; None when every pair was)."""
    _, _, probs, known = _read_oof(cv_dir, labels)
    return probs, known


def _read_oof(
    cv_dir: str | Path, labels: LabelSet
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    path = Path(cv_dir) / OOF
    folds, targets, probs, known = [], [], [], []
    partial = False
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            try:
                record = json.loads(line)
                if record["row"] != n:
                    raise ValueError("rows out of order")
                target = np.zeros(len(labels), dtype=np.int8)
                target[[labels.index[name] for name in record["labels"]]] = 1
                mask = np.ones(len(labels), dtype=bool)
                if record.get(KNOWN_COL) is not None:
                    partial = True
                    mask[:] = False
                    mask[[labels.index[name] for name in record[KNOWN_COL]]] = True
                probs.append([record["probs"][name] for name in labels.names])
                folds.append(int(record["fold"]))
                targets.append(target)
                known.append(mask)
            except (ValueError, KeyError, TypeError):
                raise RunDirError(f"{path}: line {n + 1}: not an out-of-fold record") from None
    return (
        np.array(folds, dtype=np.int64),
        np.array(targets, dtype=np.int8).reshape(-1, len(labels)),
        np.array(probs, dtype=np.float32).reshape(-1, len(labels)),
        np.array(known, dtype=bool).reshape(-1, len(labels)) if partial else None,
    )


def write_summary(cv_dir: str | Path, summary: dict[str, Any]) -> None:
    write_atomic(Path(cv_dir) / SUMMARY, dumps(summary))


def read_summary(cv_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(cv_dir) / SUMMARY)


def write_thresholds(cv_dir: str | Path, labels: LabelSet, thresholds: Thresholds) -> None:
    write_atomic(Path(cv_dir) / THRESHOLDS, dumps(thresholds.to_dict(labels.names)))


def read_thresholds(cv_dir: str | Path, labels: LabelSet) -> Thresholds:
    return Thresholds.from_dict(read_json(Path(cv_dir) / THRESHOLDS), labels.names)
