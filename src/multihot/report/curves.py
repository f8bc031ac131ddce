"""Precision, recall and F1 of one label as its threshold moves: the points of its precision-recall
curve and of its F1-against-threshold curve (pure functions of arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_POINTS = 100
"""Evenly spaced thresholds in [0, 1], joined by as many quantiles of the label's probabilities so
that a label whose probabilities crowd near 0 still gets a curve with detail where they are."""


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of ``probs >= t`` for each ``t`` of ``thresholds``, all the same
    shape. Precision is NaN where nothing fires; F1 is 0 there (``zero_division=0``)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray


def scores_at(targets: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> Scores:
    """Precision, recall and F1 of one label at each threshold.

    Args:
        targets: ``(n_texts,)`` 0/1.
        probs: ``(n_texts,)`` the label's probabilities.
        thresholds: ``(k,)`` cut points; ``prob >= t`` fires.

    Returns:
        :class:`Scores` with arrays of shape ``(k,)``. A label without positives has recall NaN.

    Example:
        >>> s = scores_at(np.array([1, 0, 1, 0]), np.array([0.9, 0.7, 0.4, 0.1]), np.array([0.5]))
        >>> float(s.precision[0]), float(s.recall[0]), float(s.f1[0])
        (0.5, 0.5, 0.5)
    """
    targets = np.asarray(targets).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(probs, kind="stable")
    sorted_probs = probs[order]
    # positives_above[i]: positives among the texts from sorted position i upwards.
    positives_above = np.append(np.cumsum(targets[order][::-1])[::-1], 0)
    first = np.searchsorted(sorted_probs, thresholds, side="left")  # first prob >= t
    fired = len(probs) - first
    tp = positives_above[first].astype(np.float64)
    positives = float(targets.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(fired > 0, tp / fired, np.nan)
        recall = tp / positives if positives else np.full(len(thresholds), np.nan)
    denominator = fired + positives
    f1 = np.divide(2 * tp, denominator, out=np.zeros(len(thresholds)), where=denominator > 0)
    return Scores(thresholds, precision, recall, f1)


def threshold_grid(probs: np.ndarray, points: int = GRID_POINTS) -> np.ndarray:
    """Sorted distinct thresholds to draw one label's curves at: :data:`GRID_POINTS` even steps
    over [0, 1] and as many quantiles of ``probs`` (shape ``(n_texts,)``)."""
    probs = np.asarray(probs, dtype=np.float64)
    even = np.linspace(0.0, 1.0, points + 1)
    quantiles = np.quantile(probs, np.linspace(0.0, 1.0, points + 1)) if len(probs) else []
    return np.unique(np.concatenate([even, quantiles]))
