"""What ``multihot predict`` prints on a terminal: per text, the labels that fired and the near misses.

A function of label names, probabilities and thresholds, so it is tested without a terminal. The
result is a rich :class:`~rich.text.Text` (styles, never markup: a text may hold ``[bold]``); rich
drops the styles where the output is not a terminal, and the plain form reads the same.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from rich.cells import cell_len
from rich.text import Text

NEAR_MISSES = 3
"""Labels shown under "near misses": those that did not fire, closest to their threshold first."""


def _digits(prob: float, threshold: float, least: int = 2, most: int = 6) -> int:
    """The fewest decimals (at least ``least``) at which ``prob`` and ``threshold`` print apart, so
    a near miss never reads as equal to its threshold (rounding keeps their order)."""
    for digits in range(least, most):
        if f"{prob:.{digits}f}" != f"{threshold:.{digits}f}":
            return digits
    return most


def render_prediction(
    text: str,
    label_names: Sequence[str],
    probs: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    fired: Collection[str] | None = None,
    *,
    near_misses: int = NEAR_MISSES,
    text_width: int = 78,
) -> Text:
    """One text's prediction for a person: the text, what fired, and what nearly did.

    The text comes first, its whitespace collapsed and cut to ``text_width`` cells. Then each
    label that fired with its probability and threshold, most probable first, or "no label above
    its threshold". Then up to ``near_misses`` labels that did not fire, closest first, where
    closeness is the gap ``threshold - prob``: in the units of the printed numbers, so what comes
    first is what a reader sees to be nearest. A label that fired below its threshold (the run's
    top-1 fallback gave the text its most probable label) says so.

    Args:
        text: the input text.
        label_names: shape (n_labels,), in the order of ``probs``.
        probs: shape (n_labels,), this text's probabilities.
        thresholds: shape (n_labels,), each label's threshold.
        fired: the names of the labels that fired (what ``Predictor`` decided); default: each
            label whose probability is at or above its threshold.
        near_misses: how many labels that did not fire to show at most.
        text_width: the longest the text may print, in terminal cells.

    Returns:
        The block, without a trailing newline; ``.plain`` is its text without styles.

    Example:
        >>> block = render_prediction("so happy", ["joy", "anger"], [0.71, 0.3], [0.43, 0.5])
        >>> print(block.plain)
        "so happy"
          joy      0.71  (threshold 0.43)
          near misses:
            anger  0.30  (threshold 0.50)
    """
    probs = np.asarray(probs, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if not len(label_names) == len(probs) == len(thresholds):
        raise ValueError(
            f"got {len(label_names)} label names, {len(probs)} probabilities and "
            f"{len(thresholds)} thresholds"
        )
    if fired is None:
        hits = probs >= thresholds
    else:
        hits = np.array([name in fired for name in label_names], dtype=bool)
    width = max(cell_len(name) for name in label_names)

    shown = Text(" ".join(text.split()))
    shown.truncate(max(text_width - 2, 1), overflow="ellipsis")
    block = Text()  # styles per piece: a Text's own style would reach everything appended
    block.append_text(Text.assemble('"', shown, '"', style="bold"))

    def row(j: int, indent: str, pad: int, style: str) -> None:
        name, prob, threshold = label_names[j], float(probs[j]), float(thresholds[j])
        digits = _digits(prob, threshold)
        block.append("\n" + indent)
        block.append(name, style=style)
        block.append(" " * (pad - cell_len(name)))
        note = "; top-1 fallback" if hits[j] and prob < threshold else ""
        block.append(f"  {prob:.{digits}f}  (threshold {threshold:.{digits}f}{note})")

    # Stable sorts: equal probabilities (or gaps) keep the labels' own order.
    fired_order = sorted(np.flatnonzero(hits).tolist(), key=lambda j: -probs[j])
    closest = sorted(np.flatnonzero(~hits).tolist(), key=lambda j: thresholds[j] - probs[j])
    for j in fired_order:
        row(j, "  ", width + 2, "bold")
    if not fired_order:
        block.append("\n  no label above its threshold")
    if closest[:near_misses]:
        block.append("\n  near misses:", style="dim")
        for j in closest[:near_misses]:
            row(j, "    ", width, "")
    return block
