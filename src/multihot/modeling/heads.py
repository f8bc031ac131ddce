"""Heads: pooled vectors to one logit per label.

A head takes ``(batch, hidden)`` from a per-text pooling, or ``(batch, num_labels, hidden)`` from a
per-label pooling (each label then has its own output weights applied to its own vector), and
returns logits of shape ``(batch, num_labels)``.
"""

from __future__ import annotations

import torch
from torch import nn


class LabelOutput(nn.Module):
    """The last layer: ``(batch, hidden) -> (batch, L)``, or per label ``(batch, L, hidden) -> (batch, L)``."""

    label_rows = ("weight", "bias")
    """The parameters with one row per label (:mod:`multihot.modeling.relabel` moves them)."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_labels, hidden_size))
        self.bias = nn.Parameter(torch.zeros(num_labels))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # per-label vectors: label l's vector meets only label l's weights
            return (x * self.weight.to(x.dtype)).sum(-1) + self.bias.to(x.dtype)
        return nn.functional.linear(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


class LinearHead(nn.Module):
    """Dropout, then one linear layer to the logits."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = LabelOutput(hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(pooled))


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}
"""The mlp head's activations by name (see :data:`multihot.core.config.HEAD_ACTIVATIONS`)."""


class MLPHead(nn.Module):
    """Dropout, linear to ``head_hidden``, the activation (GELU, ReLU or tanh), dropout, linear to
    the logits.

    With tanh, ``head_hidden`` = the encoder's hidden size and cls pooling this is RoBERTa's
    classification head (ELECTRA's with GELU, DistilBERT's with ReLU), so such a run exports to
    that family's ``...ForSequenceClassification``.
    """

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        head_hidden: int = 256,
        dropout: float = 0.1,
        activation: str = "gelu",
    ):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(hidden_size, head_hidden)
        self.act = ACTIVATIONS[activation]()
        self.out = LabelOutput(head_hidden, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = self.act(self.hidden(self.dropout(pooled)))
        return self.out(self.dropout(x))


def build_head(
    name: str,
    hidden_size: int,
    num_labels: int,
    head_hidden: int,
    dropout: float,
    activation: str = "gelu",
) -> nn.Module:
    """The head called ``name`` (see :data:`multihot.core.config.HEADS`)."""
    if name == "linear":
        return LinearHead(hidden_size, num_labels, dropout)
    if name == "mlp":
        return MLPHead(hidden_size, num_labels, head_hidden, dropout, activation)
    raise ValueError(f"unknown head {name!r}")
