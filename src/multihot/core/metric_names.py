"""The names of the metrics: the averages computed and the scalar metrics that can select a model.

Below both :mod:`multihot.core.config` (which checks ``--metric`` against them) and
:mod:`multihot.scoring.metrics` (which computes them), so that scoring needs none of the training
settings.
"""

from __future__ import annotations

AVERAGES = ("micro", "macro", "weighted", "samples")
"""The averages of F1, precision and recall (scikit-learn's ``average``)."""

PRIMARY_METRICS: tuple[str, ...] = (
    *(f"{avg}_{m}" for m in ("f1", "precision", "recall") for avg in AVERAGES),
    *("micro_roc_auc", "macro_roc_auc", "micro_ap", "macro_ap"),
    *("hamming_loss", "subset_accuracy", "jaccard_samples", "lrap"),
)
"""Scalar metrics usable for model selection; all higher-is-better except ``hamming_loss``."""
