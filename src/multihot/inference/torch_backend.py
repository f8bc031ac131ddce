"""Batched inference: token ids in, probabilities out, in input order."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from multihot.core.precision import autocast, fast_attention
from multihot.data.batching import Collator, TokenizedDataset, sorted_batches
from multihot.modeling.first_token import first_token_only


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    input_ids: list[list[int]],
    *,
    pad_token_id: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    prune: bool = True,
) -> np.ndarray:
    """Logits of shape ``(n_texts, num_labels)`` as float32, rows in the order of ``input_ids``.

    Texts are batched in order of length (so padding is small) and put back in input order. With
    ``prune``, models that read only the first token's state compute their last layer for that
    token only (:mod:`multihot.modeling.first_token`; the same logits up to float rounding).
    """
    dataset = TokenizedDataset(input_ids)
    collate = Collator(pad_token_id)
    out = np.empty((len(dataset), model.num_labels), dtype=np.float32)
    model.eval()
    pruned = first_token_only(model) if prune else contextlib.nullcontext()
    with pruned:
        for batch_indices in sorted_batches(dataset.lengths, batch_size):
            batch = collate([dataset[i] for i in batch_indices])
            with autocast(device, precision), fast_attention(device):
                logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            out[batch_indices] = logits.float().cpu().numpy()
    return out


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed in float64 and returned as float32."""
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
