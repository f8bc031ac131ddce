"""Partial labels: which (text, label) pairs are labelled, as the scoring functions take them.

A text may be labelled for some labels only; its other pairs are unknown, not "no". The scoring
functions take an optional ``known`` bool array of the targets' shape and count an unknown pair
nowhere. None, or an array that is all True, means every pair is known: the functions then take
the path they take without it, so fully labelled data score exactly as they always did.
"""

from __future__ import annotations

import numpy as np

from multihot.core.errors import MultihotError


def check_known(known: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``known`` as a bool array of ``shape``, or None where it is None or every pair is known.

    Raises:
        MultihotError: ``known`` has another shape.

    Example:
        >>> check_known(np.array([[1, 0]]), (1, 2)).tolist(), check_known(np.ones((1, 2)), (1, 2))
        ([[True, False]], None)
    """
    if known is None:
        return None
    known = np.asarray(known)
    if known.shape != shape:
        raise MultihotError(f"known shape {known.shape} does not match targets shape {shape}")
    known = known.astype(bool)
    return None if known.all() else known
