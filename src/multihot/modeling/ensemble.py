"""A seed ensemble: several models of the same shape whose probabilities are averaged.

Each member is a :class:`multihot.modeling.model.MultiLabelModel` trained with its own seed on the same data
and vocabulary. The ensemble is itself a module with the same interface (token ids in, logits out),
so prediction, evaluation, saving and export treat it like a single model: its logits are the logits
of the members' mean probability,

    logit(p̄) = log p̄ - log(1 - p̄),  p̄ = (1/M) Σ_m σ(z_m),

computed in log space (``log p̄ = logsumexp_m(-softplus(-z_m)) - log M``, and the same with
``softplus(z_m)`` for ``log(1 - p̄)``), so nothing underflows however confident the members are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from multihot.core.config import ModelConfig
from multihot.modeling.encoders import encoder_from_config
from multihot.modeling.model import MultiLabelModel


def mean_probability_logits(logits: torch.Tensor) -> torch.Tensor:
    """``(members, batch, labels)`` logits -> ``(batch, labels)`` logits of the mean probability.

    Example:
        >>> z = torch.tensor([[[0.0, 2.0]], [[0.0, -2.0]]])
        >>> torch.sigmoid(mean_probability_logits(z))
        tensor([[0.5000, 0.5000]])
    """
    logits = logits.float()
    log_m = math.log(logits.shape[0])
    log_p = torch.logsumexp(-F.softplus(-logits), dim=0) - log_m
    log_not_p = torch.logsumexp(-F.softplus(logits), dim=0) - log_m
    return log_p - log_not_p


class SeedEnsemble(nn.Module):
    """Members of one shape; ``forward`` returns the logits of their mean probability."""

    def __init__(self, members: Sequence[MultiLabelModel]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.num_labels = members[0].num_labels

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        chunk_index: torch.Tensor | None = None,
        encoder_rows: int | None = None,
    ) -> torch.Tensor:
        stacked = torch.stack(
            [
                member(
                    input_ids,
                    attention_mask,
                    token_type_ids,
                    chunk_index=chunk_index,
                    encoder_rows=encoder_rows,
                )
                for member in self.members
            ]
        )
        return mean_probability_logits(stacked)


def build_model(
    encoder_config: dict[str, Any], num_labels: int, config: ModelConfig
) -> MultiLabelModel | SeedEnsemble:
    """A randomly initialised model of the shape ``config`` describes, ready for saved weights."""
    members = [
        MultiLabelModel(
            encoder_from_config(encoder_config),
            num_labels,
            replace(config, pooling=config.member_pooling(i)),
        )
        for i in range(config.ensemble)
    ]
    return members[0] if len(members) == 1 else SeedEnsemble(members)
