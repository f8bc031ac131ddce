"""k-fold cross-validation with multi-label stratified folds: one model per fold, every metric as
mean and standard deviation over folds, and thresholds tuned on the out-of-fold predictions.

One validation slice lies about rare labels: a label with eight positives in 4,000 texts has
about one in a 10% slice. Here every row is predicted once by the model that did not train on it
(the folds come from :func:`multihot.data.splits.stratified_folds`, so each keeps every label's
share, and the copies of a text share a fold: see :mod:`multihot.data.duplicates`), and the
thresholds are tuned on all those out-of-fold predictions, every row counted.

Each fold is an ordinary training run (:meth:`multihot.Classifier.train`, or
:meth:`~multihot.Classifier.train_baseline`) validated on its own fold: early stopping, the best
epoch and that run's thresholds come from there. With an output directory (its layout:
:mod:`multihot.artifacts.cvdir`) every finished fold is recorded, so an interrupted
cross-validation continues with ``resume=True`` without training them again.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts import cvdir
from multihot.artifacts.validation import ValidationPredictions
from multihot.classifier import Classifier
from multihot.core.config import BASELINE_KIND, PRIMARY_METRICS, RunConfig
from multihot.core.errors import ConfigError, MultihotError, RunDirError
from multihot.data.duplicates import find_duplicates, reported
from multihot.data.labels import LabelSet
from multihot.data.prepare import DataLike, fingerprint, label_set, read_data
from multihot.data.readers import Dataset
from multihot.data.splits import stratified_folds, stratified_split
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import Thresholds, finish_validation
from multihot.training.checkpoint import RunCheckpoints
from multihot.training.run import resolve_config
from multihot.training.session import TrainCallback

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
PER_LABEL_STATS = ("f1", "precision", "recall", "ap", "roc_auc")
"""The per-label metrics the summary gives as mean and standard deviation over folds."""


@dataclass
class FoldResult:
    """One fold: its rows, and what its run scored on them."""

    index: int
    """The fold, ``0..folds-1``."""
    val_rows: np.ndarray
    """The rows of the data in this fold (sorted): the run validated on them, trained on the rest."""
    metrics: dict[str, Any]
    """The run's validation metrics on its fold, with its own thresholds (overall and
    ``per_label``, as in a run's metrics.json)."""
    best_epoch: float | None
    """The epoch of the best evaluation (the median over members of an ensemble); None for the
    linear baseline."""
    seconds: float
    """How long the fold took to train."""


@dataclass
class CVResult:
    """What a cross-validation ends with.

    Example:
        >>> result = cross_validate("train.jsonl", folds=5, output="cv/emo")  # doctest: +SKIP
        >>> result.summary["macro_f1"], result.oof_metrics["macro_f1"]  # doctest: +SKIP
        ({'mean': 0.412, 'std': 0.011}, 0.421)
    """

    label_names: list[str]
    folds: list[FoldResult]
    targets: np.ndarray
    """``(n_texts, num_labels)`` 0/1, rows in the data's order."""
    oof_probs: np.ndarray
    """``(n_texts, num_labels)`` float32: each row's probabilities from the fold model that did
    not train on it (uncalibrated), rows in the data's order."""
    thresholds: Thresholds
    """Tuned on all of ``oof_probs`` with the run's threshold settings."""
    oof_metrics: dict[str, Any]
    """The metrics of ``oof_probs`` with ``thresholds``."""
    summary: dict[str, Any]
    """``{metric: {"mean", "std"}}`` over folds for every overall metric, and ``"per_label"``:
    ``{label: {stat: {"mean", "std"}}}`` for the stats of :data:`PER_LABEL_STATS` (a fold where a
    value is undefined, such as ROC-AUC without positives, is left out of it; ``std`` is the
    sample standard deviation, None from fewer than two values)."""
    config: RunConfig | None = None
    """The resolved config every fold was trained with."""
    final_run: Path | None = None
    """With ``final``: the run directory trained on all the data (None without an output)."""
    final_model: Classifier | None = field(default=None, repr=False)
    """With ``final``: the classifier trained on all the data, with :attr:`thresholds`."""
    known: np.ndarray | None = None
    """``(n_texts, num_labels)`` bool, the labelled pairs (partial labels); None when all are.
    The out-of-fold thresholds and metrics count only these."""

    def mean(self, metric: str) -> float | None:
        """The mean over folds of an overall metric (``"macro_f1"``, ...); None where no fold
        defines it (ROC-AUC on folds without positives)."""
        if metric not in self.summary or metric == "per_label":
            raise ConfigError(f"unknown metric {metric!r}: expected one of {PRIMARY_METRICS}")
        return self.summary[metric]["mean"]

    @property
    def fold_of_row(self) -> np.ndarray:
        """``(n_texts,)``: the fold of each row."""
        fold = np.empty(len(self.targets), dtype=np.int64)
        for result in self.folds:
            fold[result.val_rows] = result.index
        return fold


FoldCallback = Callable[[int, FoldResult], None]


def cross_validate(
    data: DataLike,
    *,
    folds: int | None = None,
    output: str | Path | None = None,
    baseline: bool | None = None,
    final: bool = False,
    resume: bool = False,
    config: RunConfig | None = None,
    callback: TrainCallback | None = None,
    fold_callback: FoldCallback | None = None,
    trust_remote_weights: bool = False,
    **overrides: Any,
) -> CVResult:
    """Cross-validate a training recipe on ``data`` with ``folds`` multi-label stratified folds.

    Each fold trains on the other folds and validates on itself (early stopping, best epoch,
    that run's thresholds), as ``multihot train`` would with the fold as ``--val``.

    Args:
        data: a data file or a :class:`multihot.data.readers.Dataset`, read once with the config's
            data settings.
        folds: how many folds (default 5; when resuming, the cross-validation's own).
        output: the cross-validation directory (see :mod:`multihot.artifacts.cvdir`): new or
            empty, or with ``resume`` one to continue. Without it nothing is saved.
        baseline: cross-validate the linear baseline (TF-IDF + logistic regression) instead
            (default False; when resuming, the cross-validation's own).
        final: then train one model on all the data, for the median of the folds' best epochs,
            with the out-of-fold thresholds; saved as ``output/final`` (see :attr:`CVResult.final_run`).
        resume: continue the cross-validation in ``output``: finished folds are not trained again,
            a fold interrupted mid-training continues from its checkpoint. It needs the same data;
            ``config`` and ``overrides`` may only repeat its settings.
        config, overrides: the training settings, as for :meth:`multihot.Classifier.train`.
        callback: receives the progress of every fold's training (and of the final one).
        fold_callback: called as ``fold_callback(index, FoldResult)`` after each fold, in order
            (also for a fold finished before a resume); whatever it raises ends the run there, the
            fold already recorded.
        trust_remote_weights: as for :meth:`multihot.Classifier.train` (never recorded).

    Returns:
        The :class:`CVResult`.

    Raises:
        ConfigError: fewer than two folds, or settings that differ from the resumed run's.
        DataError: fewer rows (or distinct texts) than folds, or no labels; bad input the first
            fold finds (then what was written to ``output`` is removed).
        RunDirError: ``output`` is not empty without ``resume``, or resuming other data.

    Example:
        >>> result = cross_validate("train.jsonl", folds=5, output="cv/emo", encoder="scratch-mini")  # doctest: +SKIP
        >>> result.summary["per_label"]["joy"]["f1"]  # doctest: +SKIP
        {'mean': 0.55, 'std': 0.03}
        >>> result = cross_validate("train.jsonl", output="cv/emo", resume=True, final=True)  # doctest: +SKIP
        >>> Classifier.load(result.final_run).predict(["thanks!"])  # doctest: +SKIP
        [['gratitude']]
    """
    cv_dir = Path(output) if output is not None else None
    overrides = {k: v for k, v in overrides.items() if v is not None}
    manifest = _manifest_to_resume(cv_dir) if resume else None
    if manifest is not None:
        assert cv_dir is not None  # _manifest_to_resume refuses to resume without it
        folds, baseline, run_config = _resumed(manifest, cv_dir, folds, baseline, config, overrides)
    else:
        if cv_dir is not None:
            cvdir.check_new(cv_dir)
        folds = DEFAULT_FOLDS if folds is None else folds
        baseline = bool(baseline)
        run_config = _run_config(config, overrides, baseline)
    made_dir = cv_dir is not None and not cv_dir.exists()
    setup = _prepare(data, run_config, folds, baseline, cv_dir, manifest)
    setup.callback, setup.trust_remote_weights = callback, trust_remote_weights

    # Copies were reported once, over all the data: the runs on parts of it say nothing again.
    with reported():
        try:
            fold_results, logits = _run_folds(setup, fold_callback)
        except MultihotError:
            # Bad input that the first fold found: leave nothing that would refuse the corrected
            # command (an interruption keeps its record, to resume).
            if cv_dir is not None and manifest is None and not setup.manifest["finished"]:
                cvdir.discard(cv_dir, remove_dir=made_dir)
            raise
        result = _assemble(setup, fold_results, logits)
        if final:
            _final(setup, result, logits)
    if not final and cv_dir is not None and setup.manifest.get("final"):
        result.final_run = cvdir.final_dir(cv_dir)
    return result


@dataclass
class _Setup:
    """What every fold shares: the data read once, its folds, the settings, the record."""

    dataset: Dataset
    labels: LabelSet
    targets: np.ndarray
    fold_of_row: np.ndarray
    groups: np.ndarray
    """The copies of a text: see :class:`multihot.data.duplicates.Duplicates`."""
    config: RunConfig
    baseline: bool
    cv_dir: Path | None
    manifest: dict[str, Any]
    """cv.json as it stands (kept in memory without an output directory)."""
    callback: TrainCallback | None = None
    trust_remote_weights: bool = False
    known: np.ndarray | None = None
    """The labelled pairs (partial labels); None when all are."""

    @property
    def folds(self) -> int:
        return int(self.manifest["folds"])

    def record(self) -> None:
        if self.cv_dir is not None:
            cvdir.write_manifest(self.cv_dir, self.manifest)


def _run_folds(
    setup: _Setup, fold_callback: FoldCallback | None
) -> tuple[list[FoldResult], np.ndarray]:
    """Every fold in order: their results and the out-of-fold logits, rows in the data's order."""
    fold_results, logits = [], np.zeros(setup.targets.shape, dtype=np.float32)
    for k in range(setup.folds):
        fold, fold_logits = _fold(setup, k)
        logits[fold.val_rows] = fold_logits
        fold_results.append(fold)
        if fold_callback is not None:
            fold_callback(k, fold)
    return fold_results, logits


def _manifest_to_resume(cv_dir: Path | None) -> dict[str, Any] | None:
    if cv_dir is None:
        raise ConfigError("resume: needs output, the cross-validation directory to continue")
    manifest = cvdir.read_manifest(cv_dir)
    if manifest is None:
        logger.info("%s: nothing to resume yet; starting the cross-validation", cv_dir)
    return manifest


def _prepare(
    data: DataLike,
    config: RunConfig,
    folds: int,
    baseline: bool,
    cv_dir: Path | None,
    manifest: dict[str, Any] | None,
) -> _Setup:
    """Read the data, deal the folds, and record the start (or check the data are the resumed
    cross-validation's)."""
    dataset = read_data(data, config)
    labels = label_set(dataset)
    targets = labels.encode(dataset.labels, dataset.source)
    known = labels.encode_known(dataset.known, dataset.source)
    duplicates = find_duplicates(dataset.texts, targets, known=known)
    duplicates.log(dataset.source, dataset.texts, dataset.labels)
    described = {
        "source": dataset.source if isinstance(data, Dataset) else str(Path(data).resolve()),
        "rows": len(dataset),
        "sha256": _data_sha256(labels, dataset, targets, known),
        "repeated_texts": duplicates.repeats,
        "repeated_with_other_labels": duplicates.conflicting,
    }
    # The copies of a text share a fold: one in training and one in validation would score the
    # model on a text it trained on. Unknown pairs are 0 in the targets: the folds are
    # stratified on the known positives.
    fold_of_row = stratified_folds(targets, folds, config.train.seed, groups=duplicates.groups)
    if manifest is not None and manifest["data"].get("sha256") != described["sha256"]:
        recorded = manifest["data"]
        raise RunDirError(
            f"{cv_dir}: these data differ from the cross-validation's (recorded: "
            f"{recorded.get('source')}, {recorded.get('rows')} rows; given: {described['source']}, "
            f"{described['rows']} rows); resume it with the same data"
        )
    if manifest is not None and "repeated_texts" not in manifest["data"] and duplicates.repeats:
        raise RunDirError(
            f"{cv_dir}: started by a version that could put the copies of a text in different "
            f"folds, and these data repeat {duplicates.repeats} texts; start it again in a new "
            "directory"
        )
    setup = _Setup(
        dataset,
        labels,
        targets,
        fold_of_row,
        duplicates.groups,
        config,
        baseline,
        cv_dir,
        manifest or {},
        known=known,
    )
    if manifest is None:
        setup.manifest = cvdir.new_manifest(
            config=config.to_dict(),
            folds=folds,
            seed=config.train.seed,
            baseline=baseline,
            data=described,
            labels=labels.names,
        )
        setup.record()
    return setup


# ------------------------------------------------------------------------------------ the config
def _run_config(config: RunConfig | None, overrides: dict[str, Any], baseline: bool) -> RunConfig:
    """The resolved config of every fold (the baseline's as :func:`train_baseline` makes it)."""
    if baseline:
        baseline_config = (config or RunConfig()).override(
            **{**overrides, "encoder": BASELINE_KIND}
        )
        return baseline_config.with_default_preprocess()
    return resolve_config(config, overrides)


def _resumed(
    manifest: dict[str, Any],
    cv_dir: Path,
    folds: int | None,
    baseline: bool | None,
    config: RunConfig | None,
    overrides: dict[str, Any],
) -> tuple[int, bool, RunConfig]:
    """The resumed cross-validation's folds, kind and config; what is given may only repeat them."""
    try:
        saved = RunConfig.from_saved(manifest["config"], source=str(cv_dir / cvdir.CV_JSON))
        saved_folds, saved_baseline = int(manifest["folds"]), bool(manifest["baseline"])
    except (KeyError, TypeError, ValueError, MultihotError) as err:
        raise RunDirError(f"{cv_dir / cvdir.CV_JSON}: not readable ({err})") from None
    differ = []
    if folds is not None and folds != saved_folds:
        differ.append(f"folds={folds} (it has {saved_folds})")
    if baseline is not None and bool(baseline) != saved_baseline:
        differ.append(f"baseline={bool(baseline)} (it has {saved_baseline})")
    if config is not None or overrides:
        asked = _run_config(config, overrides, saved_baseline)
        flat = _flat(saved)
        differ += [
            f"{k}={v!r} (it has {flat[k]!r})" for k, v in _flat(asked).items() if v != flat[k]
        ]
    if differ:
        raise ConfigError(
            f"{cv_dir}: a resumed cross-validation keeps its own settings; these differ: "
            + ", ".join(differ)
        )
    return saved_folds, saved_baseline, saved


def _flat(config: RunConfig) -> dict[str, Any]:
    return {k: v for section in config.to_dict().values() for k, v in section.items()}


# ------------------------------------------------------------------------------------- the folds
def _fold(setup: _Setup, k: int) -> tuple[FoldResult, np.ndarray]:
    """Fold ``k``'s result and out-of-fold logits: trained now, or as recorded before a resume."""
    cv_dir, val_rows = setup.cv_dir, np.flatnonzero(setup.fold_of_row == k)
    record = setup.manifest["finished"].get(str(k))
    if record is not None:
        assert cv_dir is not None  # folds finished before: a resumed run, which has a directory
        if not cvdir.fold_saved(cv_dir, k):
            logger.warning("%s: missing; fold %d is trained again", cvdir.fold_dir(cv_dir, k), k)
            record = None
    if record is None:
        fold, logits = _train_fold(setup, k, val_rows)
        setup.manifest["finished"][str(k)] = {
            "rows": len(val_rows),
            "best_epoch": fold.best_epoch,
            "seconds": fold.seconds,
            "metrics": fold.metrics,
        }
        setup.record()
        if cv_dir is None:  # nothing saved: the logits as trained
            return fold, logits
    else:
        logger.info("fold %d of %d had finished; not trained again", k + 1, setup.folds)
        fold = FoldResult(k, val_rows, record["metrics"], record["best_epoch"], record["seconds"])
    assert cv_dir is not None  # returned above, or a resumed fold (asserted above)
    # As saved, so a resumed run ends as an uninterrupted one.
    val_texts = setup.dataset.subset(val_rows).texts
    return fold, cvdir.read_fold_logits(cv_dir, k, setup.labels, val_texts)


def _train_fold(setup: _Setup, k: int, val_rows: np.ndarray) -> tuple[FoldResult, np.ndarray]:
    """Train on every fold but ``k``, validate on ``k``: its result and out-of-fold logits."""
    config = setup.config
    train_set = setup.dataset.subset(np.flatnonzero(setup.fold_of_row != k))
    val_set = setup.dataset.subset(val_rows)
    output = cvdir.fold_dir(setup.cv_dir, k) if setup.cv_dir is not None else None
    logger.info(
        "fold %d of %d: training on %d texts, validating on %d",
        k + 1,
        setup.folds,
        len(train_set),
        len(val_set),
    )
    started = time.perf_counter()
    if setup.baseline:
        clf = Classifier.train_baseline(train_set, val_set, output=output, **_baseline_flat(config))
    else:
        # A fold killed mid-training continues from its checkpoint, with the config it recorded.
        unfinished = output is not None and RunCheckpoints(output).exists()
        clf = Classifier.train(
            train_set,
            val_set,
            config=None if unfinished else config,
            output=output,
            callback=setup.callback,
            trust_remote_weights=setup.trust_remote_weights,
            resume=unfinished,
        )
    seconds = round(time.perf_counter() - started, 2)
    if clf.label_names != setup.labels.names:  # one label set over all the data: a bug if not
        raise MultihotError(f"fold {k}: labels {clf.label_names} differ from {setup.labels.names}")
    fold = FoldResult(k, val_rows, clf.metrics["validation"], _best_epoch(clf.metrics), seconds)
    logger.info(
        "fold %d of %d: %s %s%s (%.0fs)",
        k + 1,
        setup.folds,
        config.train.metric,
        _fmt(fold.metrics[config.train.metric]),
        "" if fold.best_epoch is None else f", best at epoch {fold.best_epoch:g}",
        seconds,
    )
    if clf.validation is None:  # training on a validation set keeps its predictions: a bug if not
        raise MultihotError(f"fold {k}: training kept no validation predictions")
    return fold, clf.validation.logits


def _assemble(setup: _Setup, folds: list[FoldResult], logits: np.ndarray) -> CVResult:
    """Thresholds tuned on the out-of-fold probabilities, the summary over folds; saved."""
    labels, targets, config = setup.labels, setup.targets, setup.config
    oof_probs = sigmoid(logits)
    thresholds, oof = finish_validation(
        labels.names, targets, oof_probs, setup.known, **config.train.threshold_settings()
    )
    summary = summarize([f.metrics for f in folds], labels.names)
    result = CVResult(
        labels.names, folds, targets, oof_probs, thresholds, oof["validation"], summary, config
    )
    result.known = setup.known
    if setup.cv_dir is not None:
        cv_dir = setup.cv_dir
        cvdir.write_oof(
            cv_dir,
            setup.dataset.texts,
            targets,
            setup.fold_of_row,
            oof_probs,
            labels,
            setup.known,
        )
        cvdir.write_thresholds(cv_dir, labels, thresholds)
        cvdir.write_summary(cv_dir, _summary_file(result, config, setup.baseline))
    metric = config.train.metric
    logger.info(
        "%d folds: %s %s +- %s over folds; out-of-fold, thresholds tuned on all %d rows: %s",
        len(folds),
        metric,
        _fmt(summary[metric]["mean"]),
        _fmt(summary[metric]["std"]),
        len(targets),
        _fmt(result.oof_metrics[metric]),
    )
    return result


def _baseline_flat(config: RunConfig) -> dict[str, Any]:
    """The baseline's settings as the flat keys :meth:`Classifier.train_baseline` takes (it sets
    the encoder itself)."""
    return {k: v for k, v in _flat(config).items() if k != "encoder"}


def _best_epoch(metrics: dict[str, Any]) -> float | None:
    """The epoch of a run's best evaluation (the median over ensemble members); None without one."""
    if "members" in metrics:
        return float(np.median([m["epoch"] for m in metrics["members"]]))
    best = metrics.get("best")
    return None if best is None else float(best["epoch"])


# ------------------------------------------------------------------------------------ the summary
def mean_std(values: list[float | None]) -> dict[str, float | None]:
    """``{"mean", "std"}`` of the defined values (None and NaN left out); ``std`` is the sample
    standard deviation, None from fewer than two values.

    Example:
        >>> stats = mean_std([0.5, 0.7, None])
        >>> round(stats["mean"], 4), round(stats["std"], 4)
        (0.6, 0.1414)
    """
    defined = [float(v) for v in values if v is not None and math.isfinite(v)]
    mean = float(np.mean(defined)) if defined else None
    std = float(np.std(defined, ddof=1)) if len(defined) > 1 else None
    return {"mean": mean, "std": std}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def summarize(fold_metrics: list[dict[str, Any]], label_names: list[str]) -> dict[str, Any]:
    """Mean and standard deviation over folds of every overall metric and, per label, of
    :data:`PER_LABEL_STATS` (see :attr:`CVResult.summary`)."""
    summary: dict[str, Any] = {
        name: mean_std([m.get(name) for m in fold_metrics])
        for name in PRIMARY_METRICS
        if any(name in m for m in fold_metrics)
    }
    summary["per_label"] = {
        name: {
            stat: mean_std([m["per_label"][name][stat] for m in fold_metrics])
            for stat in PER_LABEL_STATS
        }
        for name in label_names
    }
    return summary


def _summary_file(result: CVResult, config: RunConfig, baseline: bool) -> dict[str, Any]:
    return {
        "folds": len(result.folds),
        "baseline": baseline,
        "metric": config.train.metric,
        "summary": result.summary,
        "oof": result.oof_metrics,
        "per_fold": [
            {
                "fold": f.index,
                "rows": len(f.val_rows),
                "best_epoch": f.best_epoch,
                "seconds": f.seconds,
                "metrics": f.metrics,
            }
            for f in result.folds
        ],
    }


# ----------------------------------------------------------------------------- the final model
def final_epochs(best_epochs: list[float | None]) -> int:
    """The epochs of the final run: the median of the folds' best epochs, rounded half up, at
    least 1.

    Example:
        >>> final_epochs([3.0, 5.0, 4.0, 8.0]), final_epochs([0.4, 0.5])
        (5, 1)
    """
    values = [e for e in best_epochs if e is not None]
    if not values:
        raise ConfigError("no fold has a best epoch to train the final model for")
    return max(1, math.floor(float(np.median(values)) + 0.5))


def _final(setup: _Setup, result: CVResult, oof_logits: np.ndarray) -> None:
    """Train on every row, give it the out-of-fold thresholds, save it as ``cv_dir/final``.

    A training run needs validation data for its one evaluation and its thresholds: it gets a
    stratified ``val_fraction`` slice of the rows it trains on. Nothing is chosen there: with
    ``eval_every`` past the last step there is a single evaluation, at the end, so the weights
    kept are those after the last epoch, and the thresholds, metrics and validation predictions
    saved are the out-of-fold ones (the slice's in-sample figures go to the metrics as
    ``cross_validation.in_sample_check``).
    """
    path = cvdir.final_dir(setup.cv_dir) if setup.cv_dir is not None else None
    if path is not None and setup.manifest.get("final") and (path / "config.json").is_file():
        logger.info("%s: the final model had been trained; not trained again", path)
        result.final_run, result.final_model = path, Classifier.load(path)
        return
    dataset, config = setup.dataset, setup.config
    _, check_rows = stratified_split(
        setup.targets, config.train.val_fraction, config.train.seed, groups=setup.groups
    )
    check = dataset.subset(check_rows)
    started = time.perf_counter()
    if setup.baseline:
        epochs = None
        clf = Classifier.train_baseline(dataset, check, **_baseline_flat(config))
    else:
        epochs = final_epochs([f.best_epoch for f in result.folds])
        batches = math.ceil(len(dataset) / config.train.batch_size)  # >= optimiser steps per epoch
        logger.info(
            "final model: %d epoch%s (the median of the folds' best) on all %d texts",
            epochs,
            "" if epochs == 1 else "s",
            len(dataset),
        )
        clf = Classifier.train(
            dataset,
            check,
            callback=setup.callback,
            trust_remote_weights=setup.trust_remote_weights,
            config=config.override(
                epochs=epochs, patience=0, eval_every=epochs * batches, compare_baseline=False
            ),
        )
    seconds = round(time.perf_counter() - started, 2)
    in_sample = {k: v for k, v in clf.metrics["validation"].items() if k != "per_label"}
    clf.thresholds = result.thresholds
    clf.metrics = {
        **{k: v for k, v in clf.metrics.items() if k not in ("validation", "linear_baseline")},
        "validation": result.oof_metrics,
        "cross_validation": {
            "folds": len(result.folds),
            "epochs": epochs,
            "fold_best_epochs": [f.best_epoch for f in result.folds],
            "validation": "out-of-fold predictions of every row, by the fold models",
            "summary": {k: v for k, v in result.summary.items() if k != "per_label"},
            "in_sample_check": {"rows": len(check_rows), **in_sample},
            "seconds": seconds,
        },
    }
    clf.validation = ValidationPredictions(
        list(dataset.texts), setup.targets, oof_logits, setup.known
    )
    result.final_model = clf
    if path is not None:
        clf.save(path)
        setup.manifest["final"] = {"epochs": epochs, "seconds": seconds}
        setup.record()
        result.final_run = path


@dataclass
class OutOfFold:
    """A finished cross-validation's out-of-fold probabilities, read back for ``dataset``."""

    labels: LabelSet
    probs: np.ndarray
    """``(n_texts, num_labels)`` float32, rows in the data's order (uncalibrated)."""
    thresholds: Thresholds
    metrics: dict[str, Any]
    """The out-of-fold metrics at ``thresholds`` (summary.json's ``oof``)."""
    folds: int
    baseline: bool
    encoder: str | None
    """The encoder the folds trained (None for the baseline)."""
    known: np.ndarray | None = None
    """``(n_texts, num_labels)`` bool, the labelled pairs (partial labels); None when all are."""


def read_out_of_fold(cv_dir: str | Path, dataset: Dataset) -> OutOfFold:
    """The out-of-fold probabilities that ``multihot cv`` left in ``cv_dir``, checked to be of
    ``dataset`` (the same texts and labels, in the same order), with partial labels the mask of
    known pairs that oof.jsonl records.

    Raises:
        RunDirError: not a cross-validation directory, one not finished (no oof.jsonl), or one of
            other data.
    """
    manifest = cvdir.read_manifest(cv_dir)
    if manifest is None:
        raise RunDirError(f"{cv_dir}: not a cross-validation directory (no {cvdir.CV_JSON})")
    if not (Path(cv_dir) / cvdir.OOF).exists():
        raise RunDirError(
            f"{cv_dir}: the cross-validation has not finished (no {cvdir.OOF}); resume it with "
            f"multihot cv DATA --output {cv_dir} --resume"
        )
    labels = LabelSet(manifest["labels"])
    targets = labels.encode(dataset.labels, dataset.source)
    known = labels.encode_known(dataset.known, dataset.source)
    recorded = manifest["data"]
    if recorded.get("sha256") != _data_sha256(labels, dataset, targets, known):
        raise RunDirError(
            f"{cv_dir}: cross-validated other data ({recorded.get('source')}, "
            f"{recorded.get('rows')} rows) than {dataset.source} ({len(dataset)} rows)"
        )
    probs, recorded_known = cvdir.read_oof_probs(cv_dir, labels)
    if recorded_known is not None and (known is None or not np.array_equal(recorded_known, known)):
        raise RunDirError(
            f"{cv_dir}: its {cvdir.OOF} records other known labels than {dataset.source} gives"
        )
    baseline = bool(manifest["baseline"])
    return OutOfFold(
        labels=labels,
        probs=probs,
        thresholds=cvdir.read_thresholds(cv_dir, labels),
        metrics=cvdir.read_summary(cv_dir)["oof"],
        folds=int(manifest["folds"]),
        baseline=baseline,
        encoder=None if baseline else manifest["config"]["model"].get("encoder"),
        # What oof.jsonl records (the data's own mask for one written before it recorded it).
        known=known if recorded_known is None else recorded_known,
    )


def _data_sha256(
    labels: LabelSet, dataset: Dataset, targets: np.ndarray, known: np.ndarray | None = None
) -> str:
    """What cv.json records of the data: its label names, texts and targets, and with partial
    labels which pairs are known, hashed (fully labelled data hash as they always did)."""
    masks = [] if known is None else [known]
    return fingerprint(itertools.chain(labels.names, dataset.texts), targets, *masks)
