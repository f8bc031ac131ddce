"""Label issues: the (text, label) pairs whose given label out-of-fold probabilities doubt.

Every pair is scored, and cleanlab's multi-label API decides which pairs are issues and how
healthy each label is:

- :func:`pair_scores` gives each pair a score in [0, 1], how likely its given label is wrong:
  one minus cleanlab's per-class label quality (``get_label_quality_scores_per_class``). The
  ranking is one of :data:`RANKINGS`: the default, cleanlab's self-confidence (which for one
  label's yes/no is ``|p - y|``), or ``adjusted``, self-confidence on probabilities from which each
  label's confident thresholds are subtracted (meant to lift a rare label's missing positives;
  it ranked planted flips worse, see :data:`DEFAULT_RANKING`). ``distance`` is ``|p - y|``
  computed here, the reference ranking the audit is measured against.
- :func:`find_label_issues` keeps the pairs cleanlab's confident learning flags per label
  (``find_multilabel_issues_per_class``, pruned by noise rate), ranked by their scores, and
  :func:`label_health` gives each label's quality, estimated noise (given 1, should be 0) and
  missing rate (given 0, should be 1) from ``rank_classes_by_multilabel_quality``.

The probabilities must be out-of-sample (each row's from a model that did not train on it, as
``multihot cv`` writes them): in-sample probabilities agree with the labels they were fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from multihot.core.errors import ConfigError, MultihotError
from multihot.quality.findings import LabelHealth, LabelIssue

Ranking = Literal["adjusted", "self_confidence", "distance"]
RANKINGS: tuple[str, ...] = ("adjusted", "self_confidence", "distance")
"""``adjusted``: cleanlab's self-confidence after subtracting each label's confident thresholds
(its ``adjust_pred_probs``); ``self_confidence``: cleanlab's self-confidence as it is;
``distance``: ``|p - y|``, computed here, the reference a ranking must beat."""
DEFAULT_RANKING: Ranking = "self_confidence"
"""Chosen on planted noise in GoEmotions train (``benchmarks/audit.py``, the baseline's out-of-fold
probabilities): ROC AUC 0.933 (missing) and 0.927 (wrong) against ``adjusted``'s 0.800 and 0.783."""


def _checked(targets: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    targets = np.asarray(targets)
    probs = np.asarray(probs, dtype=np.float64)
    if targets.shape != probs.shape or targets.ndim != 2:
        raise ValueError(f"targets {targets.shape} and probabilities {probs.shape} differ")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("targets must be 0/1")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probabilities must be finite and in [0, 1]")
    return targets.astype(np.int64), np.clip(probs, 1e-7, 1 - 1e-7)


def _cleanlab():
    """cleanlab's multi-label API, or a clear error where the ``audit`` extra is not installed."""
    try:
        # optional and heavy: cleanlab, the audit extra (this error says how to install it)
        import cleanlab.multilabel_classification as multilabel
    except ImportError:
        raise MultihotError(
            "label issues are found with cleanlab, which is not installed: "
            "pip install 'multihot[audit]' (or run the data checks alone: --checks-only)"
        ) from None
    return multilabel


def _label_lists(targets: np.ndarray) -> list[list[int]]:
    """cleanlab's multi-label form: the indices of each row's labels."""
    return [np.flatnonzero(row).tolist() for row in targets]


def pair_scores(
    targets: np.ndarray, probs: np.ndarray, ranking: Ranking = DEFAULT_RANKING
) -> np.ndarray:
    """``(n, L)``: how likely each pair's given label is wrong, in [0, 1] (higher: more likely).

    Example:
        >>> t = np.array([[1, 0], [0, 0], [0, 1], [1, 1]])
        >>> p = np.array([[0.9, 0.1], [0.2, 0.1], [0.1, 0.8], [0.8, 0.9]])
        >>> pair_scores(t, p, "distance")[1].round(2).tolist()
        [0.2, 0.1]
    """
    targets, probs = _checked(targets, probs)
    if ranking == "distance":
        return np.abs(probs - targets)
    if ranking not in RANKINGS:
        raise ConfigError(f"ranking {ranking!r}: expected one of {', '.join(RANKINGS)}")
    quality = _cleanlab().rank.get_label_quality_scores_per_class(
        _label_lists(targets),
        probs,
        method="self_confidence",
        adjust_pred_probs=ranking == "adjusted",
    )
    quality = np.asarray(quality, dtype=np.float64)  # (n, L) in cleanlab 2.9; a list of (n,) before
    return 1.0 - (quality if quality.shape == targets.shape else quality.T)


def flagged_pairs(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(n, L)`` bool: the pairs cleanlab's confident learning finds mislabelled, per label
    (pruned by the estimated noise rate of each label's one-vs-rest problem)."""
    targets, probs = _checked(targets, probs)
    masks = _cleanlab().filter.find_multilabel_issues_per_class(
        _label_lists(targets), probs, n_jobs=1
    )
    masks = np.asarray(masks, dtype=bool)  # (n, L) in cleanlab 2.9; a list of (n,) before
    return masks if masks.shape == targets.shape else masks.T


def find_label_issues(
    targets: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    label_names: Sequence[str],
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    *,
    ranking: Ranking = DEFAULT_RANKING,
) -> list[LabelIssue]:
    """The pairs cleanlab flags, most likely wrong first (ties: the row, then the label order).

    Args:
        targets: ``(n, L)`` 0/1, the labels as given.
        probs: ``(n, L)`` out-of-fold probabilities.
        thresholds: ``(L,)`` each label's threshold on those probabilities.
        label_names, texts, ids: for the records (``ids``: DATA's id column, when it has one).
        ranking: how pairs are scored (:data:`RANKINGS`).
    """
    scores = pair_scores(targets, probs, ranking)
    rows, cols = np.nonzero(flagged_pairs(targets, probs))
    order = np.lexsort((cols, rows, -scores[rows, cols]))
    return [
        LabelIssue(
            row=int(rows[i]),
            label=label_names[cols[i]],
            given=int(targets[rows[i], cols[i]]),
            score=round(float(scores[rows[i], cols[i]]), 6),
            probability=round(float(probs[rows[i], cols[i]]), 6),
            threshold=round(float(thresholds[cols[i]]), 6),
            text=texts[rows[i]],
            id=None if ids is None else ids[rows[i]],
        )
        for i in order
    ]


def label_health(
    targets: np.ndarray, probs: np.ndarray, label_names: Sequence[str], issues: list[LabelIssue]
) -> tuple[list[LabelHealth], float]:
    """Each label's health (worst first) and the data's overall health score, from cleanlab."""
    targets, probs = _checked(targets, probs)
    dataset = _cleanlab().dataset
    lists = _label_lists(targets)
    table = dataset.rank_classes_by_multilabel_quality(lists, probs, class_names=list(label_names))
    found = {(issue.label, issue.kind): 0 for issue in issues}
    for issue in issues:
        found[(issue.label, issue.kind)] += 1
    positives = targets.sum(axis=0)
    health = [
        LabelHealth(
            label=str(row["Class Name"]),
            positives=int(positives[int(row["Class Index"])]),
            health=round(float(row["Label Quality Score"]), 6),
            noise=round(float(row["Label Noise"]), 6),
            missing_rate=round(float(row["Inverse Label Noise"]), 6),
            wrong=found.get((str(row["Class Name"]), "wrong"), 0),
            missing=found.get((str(row["Class Name"]), "missing"), 0),
        )
        for _, row in table.iterrows()
    ]
    health.sort(key=lambda h: (h.health, h.label))
    return health, float(dataset.overall_multilabel_health_score(lists, probs))
