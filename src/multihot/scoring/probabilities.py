"""Probabilities from logits."""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed in float64 and returned as float32."""
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
