"""Decision thresholds (``prob >= threshold``), one per label, tuned on validation probabilities.

Strategies: ``fixed`` (one given value), ``global`` (one value tuned on a grid) and ``per-label``
(each label's exact F1-optimal cut, or the global value where a label has too few positives).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multihot.core.errors import ConfigError, DataError, MultihotError
from multihot.scoring.known import check_known
from multihot.scoring.metrics import compute_metrics

logger = logging.getLogger(__name__)

STRATEGIES = ("fixed", "global", "per-label")
GLOBAL_METRICS = ("macro_f1", "micro_f1")
GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)
"""Candidate values for the ``global`` strategy: 0.01 to 0.99, 0.5 included."""


def _check_unit(value: float, what: str) -> float:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise MultihotError(f"{what} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown threshold strategy {strategy!r}: expected one of {STRATEGIES}")


def _in_unit(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all())


def _check_arrays(targets, probs, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets as bool and probs as floats (own dtype kept), both of the same ``ndim``-D shape."""
    targets, probs = np.asarray(targets), np.asarray(probs)
    if probs.ndim != ndim:
        raise MultihotError(f"probs must be {ndim}-D, got shape {probs.shape}")
    if targets.shape != probs.shape:
        raise MultihotError(f"targets shape {targets.shape} does not match probs {probs.shape}")
    probs = probs if probs.dtype.kind == "f" else probs.astype(np.float64)
    if not _in_unit(probs):
        raise MultihotError("probs must be finite values in [0, 1]")
    if not np.isin(targets, (0, 1)).all():
        raise MultihotError("targets must contain only 0 and 1")
    return targets.astype(bool), probs


@dataclass(eq=False)
class Thresholds:
    """Per-label decision thresholds and how they were chosen.

    Attributes:
        values: Shape (n_labels,), the threshold of each label.
        strategy: One of :data:`STRATEGIES`.
        global_value: The fixed or tuned global value; per-label falls back to it.
        fallback_labels: Indices of labels that fell back to ``global_value`` (per-label only).
        top1_fallback: Give a text where no label clears its threshold its most probable label.

    Example:
        >>> th = Thresholds(np.array([0.5, 0.9]), "per-label", 0.5, [], top1_fallback=True)
        >>> th.apply(np.array([[0.6, 0.95], [0.2, 0.4]])).tolist()
        [[True, True], [False, True]]
        >>> th.to_dict(["joy", "anger"])["thresholds"]
        {'joy': 0.5, 'anger': 0.9}
    """

    values: np.ndarray
    strategy: str
    global_value: float
    fallback_labels: list[int] = field(default_factory=list)
    top1_fallback: bool = False

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 1 or not self.values.size or not _in_unit(self.values):
            raise MultihotError("threshold values must be a non-empty 1-D array in [0, 1]")
        _check_strategy(self.strategy)
        self.global_value = _check_unit(self.global_value, "global threshold")
        self.fallback_labels = [int(i) for i in self.fallback_labels]
        if not all(0 <= i < len(self.values) for i in self.fallback_labels):
            raise MultihotError(f"fallback label index out of range 0..{len(self.values) - 1}")

    @classmethod
    def fixed(cls, num_labels: int, value: float = 0.5) -> Thresholds:
        """The same ``value`` for each of ``num_labels`` labels."""
        return cls(np.full(num_labels, _check_unit(value, "fixed threshold")), "fixed", value)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Bool (n_texts, n_labels) decisions for probs of that shape; see ``top1_fallback``."""
        probs = np.asarray(probs)
        if probs.ndim != 2 or probs.shape[1] != len(self.values):
            raise MultihotError(f"probs shape {probs.shape}, expected (n, {len(self.values)})")
        decisions = probs >= self.values
        if self.top1_fallback and len(probs):
            empty = ~decisions.any(axis=1)
            decisions[empty, probs[empty].argmax(axis=1)] = True
        return decisions

    def metrics(
        self,
        targets: np.ndarray,
        probs: np.ndarray,
        label_names: Sequence[str],
        known: np.ndarray | None = None,
    ) -> dict:
        """:func:`multihot.scoring.metrics.compute_metrics` of the decisions these thresholds make
        on ``probs`` (over the ``known`` pairs, with partial labels)."""
        return compute_metrics(
            targets, probs, self.values, label_names, decisions=self.apply(probs), known=known
        )

    def to_dict(self, label_names: Sequence[str]) -> dict:
        """JSON form keyed by label name (so a reordered label file cannot misalign values)."""
        if len(label_names) != len(self.values):
            raise MultihotError(f"got {len(label_names)} label names for {len(self.values)} labels")
        return {
            "strategy": self.strategy,
            "global_value": self.global_value,
            "top1_fallback": self.top1_fallback,
            "thresholds": {str(n): float(v) for n, v in zip(label_names, self.values, strict=True)},
            "fallback_labels": [str(label_names[i]) for i in self.fallback_labels],
        }

    @classmethod
    def from_dict(cls, data: dict, label_names: Sequence[str]) -> Thresholds:
        """Inverse of :meth:`to_dict`; each of ``label_names`` must have a value in [0, 1]."""
        if not isinstance(data, dict) or not isinstance(data.get("thresholds"), dict):
            raise MultihotError("thresholds file must be an object with a 'thresholds' mapping")
        given = data["thresholds"]
        index = {n: i for i, n in enumerate(label_names)}
        fallback = data.get("fallback_labels", [])
        missing = [n for n in label_names if n not in given]
        unknown = [n for n in [*given, *fallback] if n not in index]
        if missing or unknown:
            raise MultihotError(f"thresholds vs labels: missing {missing}, unknown {unknown}")
        values = [_check_unit(given[n], f"threshold of label {n!r}") for n in label_names]
        # As read from the file, possibly missing: __post_init__ checks them.
        strategy: Any = data.get("strategy")
        global_value: Any = data.get("global_value")
        fallback_labels, top1 = [index[n] for n in fallback], bool(data.get("top1_fallback"))
        return cls(np.array(values), strategy, global_value, fallback_labels, top1)


def best_f1_threshold(targets: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """The F1-optimal threshold for one label, by exact search over every distinct cut.

    Predicting the ``k`` highest probs gives ``F1 = 2 TP_k / (k + P)``; only cuts where the prob
    changes are reachable, so tied probs stay together. The threshold is the midpoint between the
    last included prob and the next lower one (or 0), so ``probs >= t`` reproduces the cut without
    sitting on a training sample. Equal F1s go to the highest threshold. With no positives every
    threshold gives F1 = 0 and ``(0.5, 0.0)`` is returned.

    Args:
        targets: Shape (n_texts,), 0/1.
        probs: Shape (n_texts,), in [0, 1].

    Returns:
        ``(threshold, f1)``; no threshold gives a higher F1 on these data.

    Example:
        >>> best_f1_threshold(np.array([1, 0, 1, 0]), np.array([0.9, 0.7, 0.4, 0.1]))
        (0.25, 0.8)
    """
    targets, probs = _check_arrays(targets, probs, 1)
    num_pos = int(targets.sum())
    if num_pos == 0:
        return 0.5, 0.0
    order = np.argsort(-probs, kind="stable")
    sorted_probs, tp = probs[order], np.cumsum(targets[order])
    # Keeping the top k is only reachable by a threshold if the (k+1)-th prob is strictly lower.
    reachable = np.append(sorted_probs[:-1] > sorted_probs[1:], True)
    f1 = np.where(reachable, 2 * tp / (np.arange(1, len(probs) + 1) + num_pos), -1.0)
    best = int(np.argmax(f1))
    hi = sorted_probs[best]
    lo = sorted_probs[best + 1] if best + 1 < len(probs) else probs.dtype.type(0)
    # Midpoint in the probs' own dtype, so float32 probs compare the same way after the round trip.
    t = (hi + lo) / probs.dtype.type(2)
    if not lo < t <= hi:  # adjacent floats: the midpoint rounds onto one of them
        t = hi
    return float(t), float(f1[best])


def _best_global_value(
    targets: np.ndarray, probs: np.ndarray, metric: str, known: np.ndarray | None = None
) -> float:
    """The value in :data:`GRID` maximising macro or micro F1 of ``probs >= value`` (over the
    ``known`` pairs, the macro mean over the labels known somewhere, with partial labels)."""
    num_labels, width = probs.shape[1], len(GRID) + 1
    # bins[i, j] = number of grid values <= probs[i, j], so probs[i, j] >= GRID[g] iff bins > g.
    bins = np.searchsorted(GRID, probs.astype(np.float64), side="right")
    flat = (bins + np.arange(num_labels) * width).ravel()  # one histogram of bins per label
    if known is None:
        counts = np.bincount(flat, minlength=num_labels * width).reshape(num_labels, width)
    else:  # an unknown pair is predicted nowhere
        weights = known.ravel().astype(np.float64)
        counts = np.bincount(flat, weights, num_labels * width).reshape(num_labels, width)
        targets = targets & known
    pos_counts = np.bincount(flat, targets.ravel().astype(np.float64), num_labels * width)
    pos_counts = pos_counts.reshape(num_labels, width)
    # Texts with bins > g for each g, a cumulative sum from the top bin: (n_labels, n_grid).
    predicted, tp = (np.cumsum(h[:, ::-1], axis=1)[:, ::-1][:, 1:] for h in (counts, pos_counts))
    denom = predicted + targets.sum(axis=0)[:, None]
    if metric == "micro_f1":  # pool the counts over labels before dividing
        tp, denom = tp.sum(axis=0, keepdims=True), denom.sum(axis=0, keepdims=True)
    f1 = np.divide(2 * tp, denom, out=np.zeros(denom.shape), where=denom > 0)  # zero_division=0
    if known is not None and metric == "macro_f1":
        f1 = f1[known.any(axis=0)]  # a label known in no text has no F1
    grid_f1 = f1.mean(axis=0)
    # Among equally good grid values prefer the one nearest 0.5, the untuned default.
    best = np.flatnonzero(grid_f1 == grid_f1.max())
    value = float(GRID[best[np.argmin(np.abs(GRID[best] - 0.5))]])
    logger.debug("global threshold %.2f (%s %.4f)", value, metric, grid_f1.max())
    return value


def tune_thresholds(
    targets: np.ndarray,
    probs: np.ndarray,
    strategy: str = "per-label",
    fixed_value: float = 0.5,
    min_support: int = 5,
    top1_fallback: bool = False,
    global_metric: str = "macro_f1",
    known: np.ndarray | None = None,
) -> Thresholds:
    """Choose thresholds on validation data.

    With ``known`` (partial labels) an unknown pair counts nowhere: the global value maximises F1
    over the known pairs (as :func:`multihot.scoring.metrics.compute_metrics` scores them), and
    each label is tuned on the texts labelled for it, its support being its known positives.

    Args:
        targets: Shape (n_texts, n_labels), 0/1.
        probs: Shape (n_texts, n_labels), in [0, 1].
        strategy: ``"fixed"``, ``"global"`` or ``"per-label"``.
        fixed_value: The value of every label for ``"fixed"``.
        min_support: Per-label: labels with fewer positives use the global value (too few to tune).
        top1_fallback: Stored on the result, used by :meth:`Thresholds.apply`.
        global_metric: ``"macro_f1"`` or ``"micro_f1"``, maximised by the global value.
        known: Optional bool, shape (n_texts, n_labels): the labelled pairs; None (or all True):
            every pair, exactly as without it.

    Returns:
        The chosen :class:`Thresholds`.

    Example:
        >>> targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
        >>> probs = np.array([[0.9, 0.3], [0.2, 0.35], [0.4, 0.1], [0.1, 0.2]])
        >>> tune_thresholds(targets, probs, min_support=1).values.round(3).tolist()
        [0.3, 0.325]
    """
    _check_strategy(strategy)
    if global_metric not in GLOBAL_METRICS:
        raise ConfigError(f"unknown global_metric {global_metric!r}: expected {GLOBAL_METRICS}")
    fixed_value = _check_unit(fixed_value, "fixed threshold")
    is_int = isinstance(min_support, (int, np.integer)) and not isinstance(min_support, bool)
    if not is_int or min_support < 0:
        raise ConfigError(f"min_support must be a non-negative integer, got {min_support!r}")
    targets, probs = _check_arrays(targets, probs, 2)
    known = check_known(known, targets.shape)
    num_labels = probs.shape[1]
    tuned = strategy != "fixed"
    global_value = (
        _best_global_value(targets, probs, global_metric, known) if tuned else fixed_value
    )
    values = np.full(num_labels, global_value)
    fallback: list[int] = []
    if strategy == "per-label":
        support = (targets if known is None else targets & known).sum(axis=0)
        fallback = np.flatnonzero(support < min_support).tolist()
        for j in np.flatnonzero(support >= min_support):
            rows = slice(None) if known is None else known[:, j]
            values[j], _ = best_f1_threshold(targets[rows, j], probs[rows, j])
        msg = "%d of %d labels have < %d positives and use the global threshold"
        logger.debug(msg, len(fallback), num_labels, min_support)
    return Thresholds(values, strategy, global_value, fallback, top1_fallback)


def finish_validation(
    label_names: Sequence[str],
    targets: np.ndarray,
    probs: np.ndarray,
    known: np.ndarray | None = None,
    **settings: Any,
) -> tuple[Thresholds, dict]:
    """Thresholds tuned on validation (``settings``: the keywords of :func:`tune_thresholds`), and
    the validation metrics with them (``{"validation": metrics}``), over the ``known`` pairs with
    partial labels."""
    thresholds = tune_thresholds(targets, probs, known=known, **settings)
    metrics = thresholds.metrics(targets, probs, label_names, known=known)
    return thresholds, {"validation": metrics}


def check_enough_positives(
    targets: np.ndarray, label_names: Sequence[str], min_support: int, source: str
) -> None:
    """Refuse to tune on data where no label has ``min_support`` positives (at least one): tuned
    there, every threshold would be noise.

    Raises:
        DataError: naming ``source``, the label with the most positives, and how to go on.
    """
    support = np.asarray(targets).sum(axis=0).astype(int)
    needed = max(min_support, 1)
    if not (support >= needed).any():
        most = int(support.argmax())
        raise DataError(
            f"{source}: too few positives to tune thresholds on: no label has {needed} "
            f"(min_support) positive texts (the most is {support[most]}, {label_names[most]!r}, "
            f"in {len(targets)} texts); tuned here they would be noise. Give more "
            "labelled data, or force it (--force)"
        )


def log_fallback(thresholds: Thresholds, label_names: Sequence[str], min_support: int, source: str):
    """Warn, naming them, about the labels that had too few positives and took the global value."""
    fallback = [label_names[i] for i in thresholds.fallback_labels]
    if fallback:
        logger.warning(
            "%s: %d of %d labels have fewer than %d positive texts and use the global threshold "
            "%.3f: %s",
            source,
            len(fallback),
            len(label_names),
            min_support,
            thresholds.global_value,
            ", ".join(fallback),
        )
