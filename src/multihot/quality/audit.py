"""``multihot audit``'s computation: the data checks, then the label issues from out-of-fold
probabilities (a finished ``multihot cv``, or one run here), into an :class:`AuditResult`.

Nothing here writes a file: :mod:`multihot.report.audit` renders the page and writes the audit
directory, and :mod:`multihot.quality.cleaning` the cleaned copy of the data.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from multihot.core.config import BASELINE_KIND, RunConfig
from multihot.core.errors import EncoderError
from multihot.data.encoding import Reading
from multihot.data.prepare import DataLike, label_set, read_data
from multihot.data.readers import Dataset, read_column
from multihot.modeling.encoders import load_tokenizer
from multihot.quality.checks import run_checks
from multihot.quality.label_issues import DEFAULT_RANKING, Ranking, find_label_issues, label_health
from multihot.quality.result import AuditResult
from multihot.scoring.probabilities import logit
from multihot.training.run import finish_on_validation, resolve_config
from multihot.training.session import TrainCallback
from multihot.tuning.cv import FoldCallback, OutOfFold, cross_validate, read_out_of_fold

logger = logging.getLogger(__name__)

DEFAULT_ID_COLUMN = "id"


def audit(
    data: DataLike,
    val: DataLike | None = None,
    *,
    cv_dir: str | Path | None = None,
    folds: int = 5,
    baseline: bool | None = None,
    issues: bool = True,
    id_col: str | None = DEFAULT_ID_COLUMN,
    ranking: Ranking = DEFAULT_RANKING,
    config: RunConfig | None = None,
    callback: TrainCallback | None = None,
    fold_callback: FoldCallback | None = None,
    **overrides: Any,
) -> AuditResult:
    """Audit ``data`` (and ``val``): the data checks, and the label issues of ``data``.

    Args:
        data: a data file or a :class:`Dataset`; label issues are about its rows.
        val: validation data, for the checks that compare splits (leakage, labels missing from a
            split).
        cv_dir: a finished ``multihot cv`` of ``data`` whose out-of-fold probabilities to use;
            without it, a cross-validation runs here and keeps nothing.
        folds: the folds of that cross-validation.
        baseline: cross-validate the linear baseline (the default unless ``config`` or
            ``overrides`` name an encoder) or the transformer the settings describe.
        issues: False for the data checks alone (seconds; no cross-validation).
        id_col: the column of ``data`` whose value names a row in the issues, when it has one.
        ranking: how the (text, label) pairs are scored (see :mod:`multihot.quality.label_issues`).
        config, overrides: the settings (data columns, ``max_length``, ``min_support``, and for
            a transformer every training setting), as for :meth:`multihot.Classifier.train`.
        callback, fold_callback: the cross-validation's progress (see
            :func:`multihot.tuning.cv.cross_validate`).
    """
    started = time.perf_counter()
    given = config or RunConfig()
    if baseline is None:
        baseline = overrides.get("encoder") is None and given.model.encoder is None
    settings = resolve_config(given, overrides)
    dataset = read_data(data, settings)
    val_set = read_data(val, settings) if val is not None else None
    result = AuditResult(
        source=dataset.source,
        val_source=None if val_set is None else val_set.source,
        rows=len(dataset),
        label_names=label_set(dataset, val_set).names,
        given=dataset.labels,
        known=dataset.known,
    )
    result.findings = run_checks(
        dataset,
        val_set,
        tokenizer=_tokenizer(settings),
        reading=Reading.of(settings.model),
        min_support=settings.train.min_support,
        val_fraction=None if val_set is not None else settings.train.val_fraction,
    )
    if issues:
        if cv_dir is not None:
            oof = read_out_of_fold(cv_dir, dataset)
        else:
            oof = _cross_validate(dataset, folds, baseline, settings, callback, fold_callback)
        _add_label_issues(result, dataset, oof, _ids(data, id_col), ranking, settings)
    result.seconds = time.perf_counter() - started
    return result


def _cross_validate(
    dataset: Dataset,
    folds: int,
    baseline: bool,
    config: RunConfig,
    callback: TrainCallback | None,
    fold_callback: FoldCallback | None,
) -> OutOfFold:
    logger.info(
        "cross-validating %s on %d texts in %d folds for out-of-fold probabilities",
        "the linear baseline" if baseline else config.model.encoder_name,
        len(dataset),
        folds,
    )
    cv = cross_validate(
        dataset,
        folds=folds,
        baseline=baseline,
        config=config,
        callback=callback,
        fold_callback=fold_callback,
    )
    return OutOfFold(
        labels=label_set(dataset),
        probs=cv.oof_probs,
        thresholds=cv.thresholds,
        metrics=cv.oof_metrics,
        folds=folds,
        baseline=baseline,
        encoder=None if baseline else config.model.encoder_name,
        known=cv.known,
    )


def _add_label_issues(
    result: AuditResult,
    dataset: Dataset,
    oof: OutOfFold,
    ids: list[str] | None,
    ranking: Ranking,
    config: RunConfig,
) -> None:
    names, known = oof.labels.names, oof.known
    targets = oof.labels.encode(dataset.labels, dataset.source)
    probs, thresholds, metrics = audited_probabilities(names, targets, oof.probs, config, known)
    result.issues = find_label_issues(
        targets, probs, thresholds, names, dataset.texts, ids, ranking=ranking, known=known
    )
    result.health, result.dataset_health = label_health(targets, probs, names, result.issues, known)
    result.oof = {
        "model": BASELINE_KIND if oof.baseline else oof.encoder,
        "folds": oof.folds,
        "calibrated": config.train.calibrate,
        "ranking": ranking,
        "macro_f1": metrics["macro_f1"],
        "micro_f1": metrics["micro_f1"],
    }


def audited_probabilities(
    names: list[str],
    targets: np.ndarray,
    probs: np.ndarray,
    config: RunConfig,
    known: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The out-of-fold probabilities as the audit reads them, their thresholds and metrics.

    Calibrated on themselves (unless ``config.train.calibrate`` is off) the way training
    calibrates its validation rows, thresholds tuned on them: a label's probabilities keep their
    order, but the labels come onto one scale, so that a pair of one label and a pair of another
    compare. On planted noise in GoEmotions train with MiniLM's out-of-fold probabilities this
    raised the precision at k of missing labels from 0.194 to 0.223 (``benchmarks/audit.py``).

    With partial labels (``known``), the calibration, thresholds and metrics count the known
    pairs only, as training's do."""
    _, calibrated, thresholds, metrics = finish_on_validation(
        names, targets, logit(probs), config.train, known
    )
    return calibrated, thresholds.values, metrics["validation"]


def _tokenizer(config: RunConfig):
    """The chosen encoder's tokenizer, for the share of texts cut at ``max_length``; None for a
    scratch encoder (its vocabulary is made from the data when it trains) or one that cannot be
    loaded here (said in the log)."""
    try:
        return load_tokenizer(config.model.encoder_name)
    except EncoderError as err:
        logger.warning("texts cut at max_length not counted: %s", err)
        return None


def _ids(data: DataLike, id_col: str | None) -> list[str] | None:
    if id_col is None or isinstance(data, Dataset):
        return None
    return read_column(data, id_col)
