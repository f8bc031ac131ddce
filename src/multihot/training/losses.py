"""Losses on logits of shape ``(batch, num_labels)`` and multi-hot targets of the same shape.

Every loss here is a per-label binary loss averaged over texts and labels, takes logits (computing
in float32 with ``logsigmoid`` for numerical stability), and supports:

- ``pos_weight`` ``w_l``: a per-label weight of the positive term (see :func:`compute_pos_weight`);
- ``label_smoothing`` ``e``: targets ``y`` become ``y * (1 - e) + e / 2``;
- ``known``, an optional bool mask of the same shape (partial labels): the loss is then the mean
  over the known pairs only, ``sum(known * loss) / sum(known)`` (0 for a batch with none), so an
  unknown pair is neither a positive nor a negative. Without it, the mean over every pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.functional import logsigmoid

from multihot.core.errors import ConfigError


def compute_pos_weight(
    targets: np.ndarray,
    mode: str,
    label_names: list[str] | None = None,
    known: np.ndarray | None = None,
) -> np.ndarray | None:
    """Per-label weight of the positive term of the loss.

    ``auto``: negatives / positives per label, so each label's positives weigh as much as its
    negatives; ``sqrt``: the square root of that, a milder correction; ``none``: no weight; any other
    value is a JSON file: a list of one weight per label, or an object mapping label names to weights
    (labels it leaves out get 1). A label with no positives gets weight 1 under auto and sqrt.

    Args:
        targets: multi-hot array of shape ``(n_texts, num_labels)``.
        label_names: the names of the columns (needed for a file keyed by name).
        known: bool, the shape of ``targets``: the labelled pairs (partial labels); negatives are
            then the known negatives. None: every pair is known.

    Returns:
        float32 array of shape ``(num_labels,)``, or None for ``none``.

    Example:
        >>> compute_pos_weight(np.array([[1, 0], [0, 0], [0, 1], [0, 1]]), "auto").tolist()
        [3.0, 1.0]
    """
    if mode == "none":
        return None
    if mode in ("auto", "sqrt"):
        positives = targets.sum(axis=0)
        labelled = targets.shape[0] if known is None else known.sum(axis=0)
        negatives = labelled - positives
        ratio = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
        return (ratio if mode == "auto" else np.sqrt(ratio)).astype(np.float32)
    return _pos_weight_file(Path(mode), targets.shape[1], label_names)


def _pos_weight_file(path: Path, num_labels: int, label_names: list[str] | None) -> np.ndarray:
    if not path.is_file():
        raise ConfigError(
            f"pos_weight: expected none, auto, sqrt or a JSON file; {path}: no such file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict):
        names = label_names or []
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"{path}: unknown labels {unknown}; the labels are {names}")
        weights = [data.get(name, 1.0) for name in names]
    elif isinstance(data, list):
        if len(data) != num_labels:
            raise ConfigError(
                f"{path}: expected {num_labels} weights, one per label, got {len(data)}"
            )
        weights = data
    else:
        raise ConfigError(f"{path}: expected a list of weights or an object of label: weight")
    try:
        array = np.asarray(weights, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: weights must be numbers") from None
    if not np.isfinite(array).all() or (array <= 0).any():
        raise ConfigError(f"{path}: weights must be positive finite numbers")
    return array


class _BinaryLoss(nn.Module):
    """Shared parts: positive weights, label smoothing, float32, mean over texts and labels."""

    pos_weight: torch.Tensor | None

    def __init__(self, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing: expected a value in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, known: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The mean loss over every pair, or over the ``known`` pairs only (bool, the shape of
        ``targets``): an unknown pair adds nothing to the loss or its gradient."""
        logits, targets = logits.float(), targets.float()
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / 2
        positive, negative = self.terms(logits)  # per element: -loss of a positive / of a negative
        if self.pos_weight is not None:
            positive = positive * self.pos_weight
        if known is None:
            return -(targets * positive + (1.0 - targets) * negative).mean()
        losses = -(targets * positive + (1.0 - targets) * negative)
        # where, not a product: an unknown pair's loss may be inf (asl's clip) and 0 * inf is nan.
        losses = torch.where(known.bool(), losses, torch.zeros_like(losses))
        return losses.sum() / known.sum().clamp(min=1)

    def terms(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class BCELoss(_BinaryLoss):
    """Binary cross-entropy: ``-[w y log p + (1 - y) log(1 - p)]``, ``p = sigmoid(z)``.

    Example:
        >>> loss = BCELoss(pos_weight=torch.tensor([2.0, 1.0]))
        >>> round(loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])).item(), 4)
        1.0397
        >>> z, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
        >>> BCELoss()(z, y, known=torch.tensor([[True, False]])) == BCELoss()(z[:, :1], y[:, :1])
        tensor(True)
    """

    def terms(self, logits):
        return logsigmoid(logits), logsigmoid(-logits)


class FocalLoss(_BinaryLoss):
    """Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    ``-[w y (1 - p)^g log p + (1 - y) p^g log(1 - p)]``: the factor ``(1 - p_t)^g`` down-weights
    texts the model already gets right, so the many easy negatives of rare labels stop dominating.
    ``gamma = 0`` is BCE.

    Example:
        >>> z, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
        >>> FocalLoss(gamma=0.0)(z, y).item() == BCELoss()(z, y).item()
        True
    """

    def __init__(self, gamma: float = 2.0, pos_weight=None, label_smoothing: float = 0.0):
        super().__init__(pos_weight, label_smoothing)
        if gamma < 0:
            raise ConfigError(f"focal_gamma: expected a non-negative number, got {gamma}")
        self.gamma = gamma

    def terms(self, logits):
        log_p, log_not_p = logsigmoid(logits), logsigmoid(-logits)
        if not self.gamma:
            return log_p, log_not_p
        return torch.exp(self.gamma * log_not_p) * log_p, torch.exp(self.gamma * log_p) * log_not_p


class AsymmetricLoss(_BinaryLoss):
    """Asymmetric loss (Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021).

    ``-[w y (1 - p)^g+ log p + (1 - y) p_m^g- log(1 - p_m)]`` with ``p_m = max(p - m, 0)``: negatives
    are focused harder than positives (``g- > g+``), and a negative whose probability is already
    below the clip ``m`` contributes nothing. ``g+ = g- = m = 0`` is BCE.

    Example:
        >>> z, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
        >>> AsymmetricLoss(0.0, 0.0, 0.0)(z, y).item() == BCELoss()(z, y).item()
        True
    """

    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        pos_weight=None,
        label_smoothing: float = 0.0,
    ):
        super().__init__(pos_weight, label_smoothing)
        if gamma_neg < 0 or gamma_pos < 0:
            raise ConfigError("asl gammas: expected non-negative numbers")
        if not 0.0 <= clip < 1.0:
            raise ConfigError(f"asl_clip: expected a value in [0, 1), got {clip}")
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    def terms(self, logits):
        p = torch.sigmoid(logits)
        log_p = logsigmoid(logits)
        if self.clip:
            p_m = (p - self.clip).clamp(min=0.0)
            log_not_p = torch.log((1.0 - p_m).clamp(min=1e-8))
        else:
            p_m, log_not_p = p, logsigmoid(-logits)
        positive = (1.0 - p).pow(self.gamma_pos) * log_p if self.gamma_pos else log_p
        negative = p_m.pow(self.gamma_neg) * log_not_p if self.gamma_neg else log_not_p
        return positive, negative


def label_loss(loss_fn, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss of ``logits`` against ``batch["targets"]``, over the known pairs when the batch
    has a ``known`` mask (partial labels); without one the loss is called as it always was.

    Example:
        >>> z, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
        >>> label_loss(BCELoss(), z, {"targets": y}) == BCELoss()(z, y)
        tensor(True)
    """
    if "known" not in batch:
        return loss_fn(logits, batch["targets"])
    return loss_fn(logits, batch["targets"], batch["known"])


def build_loss(
    name: str,
    pos_weight: np.ndarray | None = None,
    *,
    label_smoothing: float = 0.0,
    focal_gamma: float = 2.0,
    asl_gamma_neg: float = 4.0,
    asl_gamma_pos: float = 0.0,
    asl_clip: float = 0.05,
) -> nn.Module:
    """The loss called ``name`` (see :data:`multihot.core.config.LOSSES`)."""
    weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
    if name == "bce":
        return BCELoss(weight, label_smoothing)
    if name == "focal":
        return FocalLoss(focal_gamma, weight, label_smoothing)
    if name == "asl":
        return AsymmetricLoss(asl_gamma_neg, asl_gamma_pos, asl_clip, weight, label_smoothing)
    raise ConfigError(f"loss: expected bce, focal or asl, got {name!r}")
