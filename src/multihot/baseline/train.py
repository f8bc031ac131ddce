"""Training the linear baseline: fit, tune thresholds on validation, save a baseline run."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihot.artifacts.rundir import check_output_dir
from multihot.artifacts.runs import save_linear_run
from multihot.artifacts.validation import ValidationPredictions
from multihot.baseline.linear import BaselineConfig, TfidfLogistic
from multihot.core.config import BASELINE_KIND, RunConfig
from multihot.core.errors import ConfigError
from multihot.data.labels import LabelSet
from multihot.data.prepare import DataLike, PreparedData, prepare_data
from multihot.data.texthashes import TextHashes
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import Thresholds, finish_validation


@dataclass
class BaselineRun:
    """A trained baseline with its thresholds, as :func:`train_baseline` returns it."""

    model: TfidfLogistic
    labels: LabelSet
    thresholds: Thresholds
    config: RunConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    validation: ValidationPredictions | None = None
    training_texts: TextHashes | None = None
    """The hashes of the texts it was fitted on (saved as the run's training texts)."""


def train_baseline(
    train: DataLike,
    val: DataLike | None = None,
    *,
    config: RunConfig | None = None,
    baseline: BaselineConfig | None = None,
    output: str | Path | None = None,
    **overrides: Any,
) -> BaselineRun:
    """Fit TF-IDF + logistic regressions on ``train``; tune thresholds on ``val`` (or a hold-out).

    Args:
        train, val, config, overrides: as for :meth:`multihot.Classifier.train` (data and
            threshold settings, and ``preprocess``, the steps that prepare every text before the
            vectorizer, default as for ``train``; the other model settings do not apply).
        baseline: the features and regressions (``BaselineConfig(stem="english")`` stems).
        output: a run directory to save to (checked before anything is read).

    Example:
        >>> run = train_baseline("train.jsonl", "dev.jsonl", output="runs/linear")  # doctest: +SKIP
        >>> run.metrics["validation"]["macro_f1"]  # doctest: +SKIP
        0.45
    """
    config = (config or RunConfig()).override(encoder=BASELINE_KIND, **overrides)
    config = config.with_default_preprocess()
    if output is not None:
        check_output_dir(Path(output))
    run = fit_baseline(prepare_data(train, val, config), config, baseline)
    if output is not None:
        save_linear_run(
            output,
            vocabulary=run.model.vocabulary,
            arrays=run.model.arrays(),
            baseline=run.model.config_dict(),
            config=config,
            labels=run.labels,
            thresholds=run.thresholds,
            metrics=run.metrics,
            history=run.history,
            validation=run.validation,
            training_texts=run.training_texts,
        )
    return run


def fit_baseline(
    data: PreparedData, config: RunConfig, baseline: BaselineConfig | None = None
) -> BaselineRun:
    """Fit the baseline on prepared data (its train and validation rows as they are) and tune its
    thresholds on the validation rows with ``config.train``'s settings; nothing is saved.

    The model reads every text as ``config.model.preprocess`` prepares it (default steps where
    it is None, as for a transformer), and records those steps in its own settings.

    Raises:
        ConfigError: ``baseline.preprocess`` is given and is not the run's ``preprocess``.
    """
    config = config.with_default_preprocess()
    baseline = _with_steps(baseline or BaselineConfig(), config.model.preprocess or [])
    started = time.perf_counter()
    model = TfidfLogistic.fit(
        data.train.texts,
        data.train_targets,
        baseline,
        seed=config.train.seed,
        known=data.train_known,
    )
    logits = model.logits(data.val.texts)
    thresholds, metrics = finish_validation(
        data.labels.names,
        data.val_targets,
        sigmoid(logits),
        data.val_known,
        **config.train.threshold_settings(),
    )
    seconds = round(time.perf_counter() - started, 2)
    overall = {k: v for k, v in metrics["validation"].items() if k != "per_label"}
    metrics["baseline"] = {"seconds": seconds, "num_features": len(model.vocabulary)}
    history = [{"step": 0, "epoch": 1.0, **overall, "seconds": seconds}]
    validation = ValidationPredictions(
        list(data.val.texts), data.val_targets, logits, data.val_known
    )
    return BaselineRun(
        model,
        data.labels,
        thresholds,
        config,
        metrics,
        history,
        validation,
        TextHashes.of(data.train.texts),
    )


def _with_steps(baseline: BaselineConfig, steps: list[str]) -> BaselineConfig:
    """``baseline`` with the run's preparation ``steps``: one setting, the run's, decides them."""
    given = baseline.preprocess
    if given is not None and given != steps:
        raise ConfigError(
            f"baseline preprocess: the run's preprocess setting decides the steps ({given} given "
            f"here, {steps or 'none'} for the run); give preprocess as a run setting"
        )
    return dataclasses.replace(baseline, preprocess=list(steps))
