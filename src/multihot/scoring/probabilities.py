"""Probabilities from logits."""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed in float64 and returned as float32."""
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def logit(probs: np.ndarray, eps: float = 1e-7, dtype=np.float32) -> np.ndarray:
    """Logits from probabilities (the inverse of :func:`sigmoid`), the probabilities kept ``eps``
    away from 0 and 1; computed in float64 and returned as ``dtype`` (float32 by default).

    Example:
        >>> logit(sigmoid(np.array([-2.0, 0.0, 3.0]))).round(4).tolist()
        [-2.0, 0.0, 3.0]
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1.0 - eps)
    return (np.log(p) - np.log1p(-p)).astype(dtype, copy=False)
