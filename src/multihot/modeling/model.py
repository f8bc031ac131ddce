"""The network: encoder -> pooling -> head -> logits (one per label)."""

from __future__ import annotations

import torch
from torch import nn

from multihot.core.config import ModelConfig
from multihot.modeling.heads import build_head
from multihot.modeling.pooling import build_pooling


class MultiLabelModel(nn.Module):
    """A text encoder with a pooling and a head; ``forward`` returns logits ``(batch, num_labels)``.

    Sigmoid is applied at prediction time; losses take logits (the numerically stable form).

    Example:
        >>> from multihot.modeling.encoders import encoder_from_config, scratch_config
        >>> enc = encoder_from_config(scratch_config("scratch-tiny", vocab_size=100, max_length=16))
        >>> model = MultiLabelModel(enc, num_labels=3, config=ModelConfig(pooling="mean"))
        >>> ids = torch.tensor([[2, 10, 11, 3, 0]]); mask = (ids != 0).long()
        >>> model(ids, mask).shape
        torch.Size([1, 3])
    """

    def __init__(self, encoder: nn.Module, num_labels: int, config: ModelConfig):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.pooling = build_pooling(config.pooling, hidden, num_labels)
        self.head = build_head(
            config.head, hidden, num_labels, config.head_hidden, config.dropout,
            config.head_activation,
        )  # fmt: skip
        self.num_labels = num_labels
        self.freeze_encoder = False
        """While True the encoder runs without gradients (training the head alone)."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; with ``return_hidden`` also the encoder's token states ``(batch, seq, hidden)``."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if self.freeze_encoder:
            with torch.no_grad():
                out = self.encoder(**kwargs)
        else:
            out = self.encoder(**kwargs)
        pooled = self.pooling(
            out.last_hidden_state, attention_mask, getattr(out, "pooler_output", None)
        )
        logits = self.head(pooled)
        return (logits, out.last_hidden_state) if return_hidden else logits
