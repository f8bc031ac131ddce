"""What a report is made from: one labelled dataset's probabilities with the run that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ReportInputs:
    """Everything :func:`multihot.report.html.render_report` draws, computed before it is called.

    Attributes:
        title: what the report is about (the run directory's name).
        source: where the texts came from (a data file, or "validation data of the run").
        label_names: the labels, in the order of the columns of ``targets`` and ``probs``.
        texts: the texts, one per row.
        targets: ``(n_texts, n_labels)`` 0/1, the true labels.
        probs: ``(n_texts, n_labels)`` the probabilities prediction gives (calibrated when the run
            is calibrated).
        thresholds: ``(n_labels,)`` the run's thresholds (``prob >= threshold`` fires).
        metrics: :meth:`multihot.scoring.thresholds.Thresholds.metrics` on these rows: overall
            scores and ``per_label`` (precision, recall, f1, support, roc_auc, ap, threshold).
        config: the run's config.json (model, train, data sections and run info).
        history: the run's history.jsonl records (step, epoch, train_loss, val_loss, metrics,
            seconds; ``member`` for seed ensembles).
        train_seconds: the training time, when the run recorded it.
        uncalibrated_probs: the probabilities before calibration, when the run is calibrated
            (the report then shows the calibration error before and after).
        decisions: ``(n_texts, n_labels)`` bool, what fired
            (:meth:`multihot.scoring.thresholds.Thresholds.apply`, so a top-1 fallback counts);
            None: ``probs >= thresholds``.
    """

    title: str
    source: str
    label_names: list[str]
    texts: list[str]
    targets: np.ndarray
    probs: np.ndarray
    thresholds: np.ndarray
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float | None = None
    uncalibrated_probs: np.ndarray | None = None
    decisions: np.ndarray | None = None
