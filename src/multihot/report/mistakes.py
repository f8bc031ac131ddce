"""Each label's worst mistakes: the texts it fired on most confidently without being true, and the
texts where it was true but scored lowest (pure functions of arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORST = 5
"""How many false positives and false negatives the report shows per label."""


@dataclass(frozen=True)
class Mistakes:
    """One label's worst mistakes as row indices, worst first, and how many there were in all.

    Attributes:
        false_positives: texts where the label is not true but fired, highest probability first.
        false_negatives: texts where the label is true but did not fire, lowest probability first.
        num_false_positives: all the label's false positives (``false_positives`` is the worst).
        num_false_negatives: all the label's false negatives.
    """

    false_positives: np.ndarray
    false_negatives: np.ndarray
    num_false_positives: int
    num_false_negatives: int


def worst_mistakes(
    targets: np.ndarray, probs: np.ndarray, decisions: np.ndarray, k: int = WORST
) -> list[Mistakes]:
    """Up to ``k`` false positives and ``k`` false negatives for each label.

    Ties keep the texts' order (stable sort), so the choice is deterministic.

    Args:
        targets: ``(n_texts, n_labels)`` 0/1.
        probs: ``(n_texts, n_labels)``.
        decisions: ``(n_texts, n_labels)`` 0/1, what fired.
        k: at most this many of each kind per label.

    Returns:
        One :class:`Mistakes` per label, in column order.

    Example:
        >>> targets = np.array([[1], [0], [0], [1]])
        >>> probs = np.array([[0.2], [0.9], [0.6], [0.8]])
        >>> m = worst_mistakes(targets, probs, probs >= 0.5, k=5)[0]
        >>> m.false_positives.tolist(), m.false_negatives.tolist()
        ([1, 2], [0])
    """
    targets = np.asarray(targets).astype(bool)
    decisions = np.asarray(decisions).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    found = []
    for j in range(targets.shape[1]):
        fp = np.flatnonzero(~targets[:, j] & decisions[:, j])
        fn = np.flatnonzero(targets[:, j] & ~decisions[:, j])
        worst_fp = fp[np.argsort(-probs[fp, j], kind="stable")[:k]]
        worst_fn = fn[np.argsort(probs[fn, j], kind="stable")[:k]]
        found.append(Mistakes(worst_fp, worst_fn, len(fp), len(fn)))
    return found
