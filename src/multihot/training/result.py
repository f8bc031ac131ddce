"""What a training run of one model leaves: :class:`TrainResult` (the loop returns it, checkpoints
save and restore it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class TrainResult:
    """What training leaves: the best weights and how they were found."""

    state_dict: dict[str, torch.Tensor]
    """The weights of the best evaluation, on CPU."""
    best: dict[str, Any]
    """The history record of the best evaluation."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One record per evaluation: step, epoch, losses, metrics, seconds."""
    val_probs: np.ndarray | None = None
    """Validation probabilities ``(n_val, num_labels)`` at the best evaluation."""
    stopped_early: bool = False
    precision: str = "fp32"
