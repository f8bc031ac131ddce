"""Pooling: how the encoder's token states of shape ``(batch, seq, hidden)`` become one vector per
text, ``(batch, hidden)``, or one vector per label and text, ``(batch, num_labels, hidden)``.

Every pooling is masked: padding tokens get no weight, so a text pads the same however long the
batch is.
"""

from __future__ import annotations

import torch
from torch import nn


class Pooling(nn.Module):
    """Base class. ``per_label`` tells the head whether it gets one vector per label."""

    per_label = False

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, pooler_output: torch.Tensor | None):
        raise NotImplementedError


class ClsPooling(Pooling):
    """The hidden state of the first token ([CLS])."""

    def forward(self, hidden, mask, pooler_output=None):
        return hidden[:, 0]


class PoolerPooling(Pooling):
    """BERT's pooler output: tanh(W h_[CLS] + b), trained by the encoder's pretraining."""

    def forward(self, hidden, mask, pooler_output=None):
        if pooler_output is None:
            # MultiLabelModel refuses such an encoder when built (multihot.modeling.families).
            raise ValueError("pooling 'pooler': the encoder gave no pooler output; use 'cls'")
        return pooler_output


class MeanPooling(Pooling):
    """Mean of the non-padding token states."""

    def forward(self, hidden, mask, pooler_output=None):
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class MaxPooling(Pooling):
    """Element-wise maximum over the non-padding token states."""

    def forward(self, hidden, mask, pooler_output=None):
        masked = hidden.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(hidden.dtype).min)
        return masked.max(1).values


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis, where ``mask`` (broadcastable) is 0, exactly zero weight."""
    scores = scores.float().masked_fill(~mask.bool(), float("-inf"))
    return torch.softmax(scores, dim=-1)


class AttentionPooling(Pooling):
    """A learned score per token, softmax over the non-padding tokens, weighted sum of states."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, hidden, mask, pooler_output=None):
        weights = _masked_softmax(self.score(hidden).squeeze(-1), mask)  # (batch, seq)
        return torch.einsum("bs,bsh->bh", weights.to(hidden.dtype), hidden)


class LabelAttentionPooling(Pooling):
    """One learned query per label: each label reads its own tokens (its weights explain it)."""

    per_label = True
    label_rows = ("queries",)
    """The parameters with one row per label (:mod:`multihot.modeling.relabel` moves them)."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_labels, hidden_size) * hidden_size**-0.5)

    def attention(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Weights of shape ``(batch, num_labels, seq)``; rows sum to one over non-padding tokens."""
        scores = torch.einsum("lh,bsh->bls", self.queries.to(hidden.dtype), hidden)
        return _masked_softmax(scores * hidden.shape[-1] ** -0.5, mask.unsqueeze(1))

    def forward(self, hidden, mask, pooler_output=None):
        weights = self.attention(hidden, mask)
        return torch.einsum("bls,bsh->blh", weights.to(hidden.dtype), hidden)


class WindowPooling(nn.Module):
    """A document's windows to one vector (``long_text="chunk"``): the pooled vectors of every
    window of a batch, ``(windows, hidden)`` or per label ``(windows, num_labels, hidden)``, and a
    ``chunk_index`` of shape ``(documents, most windows)`` (each document's window rows, then -1)
    give ``(documents, hidden)`` or ``(documents, num_labels, hidden)``.

    Modes: ``max`` (element-wise over the windows), ``mean``, ``attention`` (a learned score per
    window vector, softmax over that document's windows; per label with a per-label pooling).
    Padding windows (-1) get no weight, so a document pools the same in any batch.

    Example:
        >>> pool = WindowPooling("max", hidden_size=2)
        >>> windows = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
        >>> pool(windows, torch.tensor([[0, 1], [2, -1]]))
        tensor([[1., 2.],
                [5., 5.]])
    """

    def __init__(self, mode: str, hidden_size: int):
        super().__init__()
        if mode not in ("max", "mean", "attention"):
            raise ValueError(f"unknown chunk pooling {mode!r}")
        self.mode = mode
        self.score = nn.Linear(hidden_size, 1) if mode == "attention" else None

    def forward(self, pooled: torch.Tensor, chunk_index: torch.Tensor) -> torch.Tensor:
        windows = pooled[chunk_index.clamp(min=0)]  # (docs, most windows, [labels,] hidden)
        present = (chunk_index >= 0).reshape(*chunk_index.shape, *([1] * (pooled.dim() - 1)))
        if self.mode == "max":
            return windows.masked_fill(~present, torch.finfo(windows.dtype).min).max(1).values
        if self.mode == "mean":
            weights = present.to(windows.dtype)
            return (windows * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        assert self.score is not None  # mode == "attention"
        scores = self.score(windows).float().masked_fill(~present, float("-inf"))
        weights = torch.softmax(scores, dim=1).to(windows.dtype)  # over the windows
        return (windows * weights).sum(1)


def build_pooling(name: str, hidden_size: int, num_labels: int) -> Pooling:
    """The pooling module called ``name`` (see :data:`multihot.core.config.POOLINGS`)."""
    if name == "cls":
        return ClsPooling()
    if name == "pooler":
        return PoolerPooling()
    if name == "mean":
        return MeanPooling()
    if name == "max":
        return MaxPooling()
    if name == "attention":
        return AttentionPooling(hidden_size)
    if name == "label-attention":
        return LabelAttentionPooling(hidden_size, num_labels)
    raise ValueError(f"unknown pooling {name!r}")
