"""The network: encoder -> pooling -> head -> logits (one per label)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from multihot.core.config import ModelConfig
from multihot.core.errors import ConfigError
from multihot.modeling.families import check_pooling, encoder_support
from multihot.modeling.heads import build_head
from multihot.modeling.pooling import WindowPooling, build_pooling

if TYPE_CHECKING:
    from transformers import PreTrainedModel


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

    def __init__(self, encoder: PreTrainedModel, num_labels: int, config: ModelConfig):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        if config.pooling is None:
            raise ConfigError("pooling: not resolved (a run's config always has one)")
        check_pooling(encoder_support(encoder), config.pooling)
        self.pooling = build_pooling(config.pooling, hidden, num_labels)
        self.head = build_head(
            config.head,
            hidden,
            num_labels,
            config.head_hidden,
            config.dropout,
            config.head_activation,
        )
        self.window_pooling = (
            WindowPooling(config.chunk_pooling, hidden) if config.long_text == "chunk" else None
        )
        """Pools each document's windows into one vector (``long_text="chunk"``), else None."""
        self.num_labels = num_labels
        self.freeze_encoder = False
        """While True the encoder runs without gradients (training the head alone)."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
        chunk_index: torch.Tensor | None = None,
        encoder_rows: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; with ``return_hidden`` also the encoder's token states ``(rows, seq, hidden)``.

        With ``long_text="chunk"`` the rows are windows and ``chunk_index`` says which windows
        make each document (:func:`multihot.data.encoding.pack_documents`); the logits are then
        one row per document. ``encoder_rows`` (inference) runs the encoder on that many rows at a
        time, so a long document's windows need not fit in memory at once.
        """
        pooled, hidden = self._documents(
            input_ids, attention_mask, token_type_ids, chunk_index, encoder_rows, return_hidden
        )
        logits = self.head(pooled)
        if return_hidden:
            assert hidden is not None  # return_hidden runs the encoder on all rows at once
            return logits, hidden
        return logits

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        chunk_index: torch.Tensor | None = None,
        encoder_rows: int | None = None,
    ) -> torch.Tensor:
        """What the head reads, one row per document: ``(batch, hidden)``, or ``(batch,
        num_labels, hidden)`` with a per-label pooling (label attention); ``self.head`` of it is
        :meth:`forward`'s logits. The arguments are :meth:`forward`'s."""
        return self._documents(
            input_ids, attention_mask, token_type_ids, chunk_index, encoder_rows, False
        )[0]

    def _documents(
        self, input_ids, attention_mask, token_type_ids, chunk_index, encoder_rows, keep_hidden
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(pooled per document, token states or None)``: see :meth:`forward`."""
        hidden: torch.Tensor | None = None
        if encoder_rows and input_ids.shape[0] > encoder_rows and not keep_hidden:
            pooled = self._pooled_by_slices(input_ids, attention_mask, token_type_ids, encoder_rows)
        else:
            pooled, hidden = self._pooled(input_ids, attention_mask, token_type_ids)
        if self.window_pooling is not None:
            if chunk_index is None:  # one window per row: each row its own document
                chunk_index = torch.arange(pooled.shape[0], device=pooled.device).unsqueeze(1)
            pooled = self.window_pooling(pooled, chunk_index)
        elif chunk_index is not None:
            raise ValueError("windows of documents given to a model that reads truncated texts")
        return pooled, hidden

    def _pooled_by_slices(
        self, input_ids, attention_mask, token_type_ids, rows: int
    ) -> torch.Tensor:
        """The pooled vectors of :meth:`_pooled`, the encoder run on ``rows`` rows at a time."""
        parts = []
        for start in range(0, input_ids.shape[0], rows):
            part = slice(start, start + rows)
            types = None if token_type_ids is None else token_type_ids[part]
            parts.append(self._pooled(input_ids[part], attention_mask[part], types)[0])
        return torch.cat(parts)

    def _pooled(
        self, input_ids, attention_mask, token_type_ids
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pooled, token states)`` of rows of ids."""
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
        return pooled, out.last_hidden_state
