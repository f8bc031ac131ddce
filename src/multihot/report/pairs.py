"""How labels go together: which true labels come with which (co-occurrence), and which labels
fire wrongly on the texts of another (the confusion between labels). Pure functions of arrays."""

from __future__ import annotations

import numpy as np


def cooccurrence(targets: np.ndarray) -> np.ndarray:
    """``P(j true | i true)``: of the texts that have label ``i``, the share that also have ``j``.

    Args:
        targets: ``(n_texts, n_labels)`` 0/1.

    Returns:
        ``(n_labels, n_labels)``, row ``i`` conditioned on label ``i``; the diagonal is 1 where
        the label occurs, and a row of NaN for a label that never does.

    Example:
        >>> cooccurrence(np.array([[1, 1], [1, 0], [0, 1]])).tolist()
        [[1.0, 0.5], [0.5, 1.0]]
    """
    t = np.asarray(targets, dtype=np.float64)
    both = t.T @ t
    with np.errstate(invalid="ignore", divide="ignore"):
        return both / t.sum(axis=0)[:, None]


def false_fires(targets: np.ndarray, decisions: np.ndarray) -> np.ndarray:
    """How often label ``j`` fires without being true on the texts of label ``i``.

    Entry ``[i, j]`` is ``#(i true, j not true, j fired) / #(i true, j not true)``: a row shows
    which labels the model wrongly adds to texts of label ``i`` (``anger`` texts also called
    ``annoyance``, say).

    Args:
        targets: ``(n_texts, n_labels)`` 0/1.
        decisions: ``(n_texts, n_labels)`` 0/1, what fired.

    Returns:
        ``(n_labels, n_labels)``; NaN where no text has ``i`` without ``j`` (the diagonal always).

    Example:
        >>> targets = np.array([[1, 0], [1, 0], [0, 1]])
        >>> false_fires(targets, np.array([[1, 1], [1, 0], [0, 1]])).tolist()
        [[nan, 0.5], [0.0, nan]]
    """
    t = np.asarray(targets).astype(bool)
    wrong = (~t & np.asarray(decisions).astype(bool)).astype(np.float64)
    t, absent = t.astype(np.float64), (~t).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (t.T @ wrong) / (t.T @ absent)
