"""Losses on logits of shape ``(batch, num_labels)`` and multi-hot targets of the same shape."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from multihot.errors import ConfigError


def compute_pos_weight(targets: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-label weight of the positive term of BCE.

    ``auto``: negatives / positives per label, so each label's positives weigh as much as its
    negatives; ``sqrt``: the square root of that, a milder correction; ``none``: no weight.
    A label with no positives gets weight 1 (there is nothing to up-weight).

    Args:
        targets: multi-hot array of shape ``(n_texts, num_labels)``.

    Returns:
        float32 array of shape ``(num_labels,)``, or None for ``none``.

    Example:
        >>> compute_pos_weight(np.array([[1, 0], [0, 0], [0, 1], [0, 1]]), "auto").tolist()
        [3.0, 1.0]
    """
    if mode == "none":
        return None
    positives = targets.sum(axis=0)
    negatives = targets.shape[0] - positives
    ratio = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    if mode == "auto":
        return ratio.astype(np.float32)
    if mode == "sqrt":
        return np.sqrt(ratio).astype(np.float32)
    raise ConfigError(f"pos_weight: expected none, auto or sqrt, got {mode!r}")


class BCELoss(nn.Module):
    """Binary cross-entropy per label, averaged over texts and labels.

    ``loss = -mean( w_l * y * log sigmoid(z) + (1 - y) * log(1 - sigmoid(z)) )``, with ``w_l`` the
    optional per-label positive weight (``BCEWithLogitsLoss``, which is the numerically stable form).

    Example:
        >>> loss = BCELoss(pos_weight=torch.tensor([2.0, 1.0]))
        >>> round(loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])).item(), 4)
        1.0397
    """

    def __init__(self, pos_weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            logits.float(), targets.float(), pos_weight=self.pos_weight
        )


def build_loss(name: str, pos_weight: np.ndarray | None) -> nn.Module:
    """The loss called ``name`` (see :data:`multihot.config.LOSSES`)."""
    weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
    if name == "bce":
        return BCELoss(weight)
    raise ConfigError(f"loss: expected bce, got {name!r}")
