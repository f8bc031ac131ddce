"""Scoring the validation data during training: the loss, and the metrics after thresholds tuned
the way the final ones are (:func:`multihot.scoring.thresholds.tune_thresholds`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from multihot.core.distributed import gather_rows
from multihot.core.precision import fast_attention
from multihot.data.batching import TokenizedDataset, model_inputs
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import tune_thresholds
from multihot.training.losses import label_loss


class Validator:
    """Scores a model on the validation data, every process its own share of the batches.

    Args:
        val: the validation data (its targets).
        loader: this process's share of the validation batches.
        accelerator: the run's.
        loss_fn: the training loss (the validation loss is the same one).
        label_names: the labels, for the metrics.
        thresholds: the keywords of :func:`multihot.scoring.thresholds.tune_thresholds`.
    """

    def __init__(
        self,
        val: TokenizedDataset,
        loader,
        accelerator,
        loss_fn: torch.nn.Module,
        label_names: list[str],
        thresholds: dict[str, Any],
    ):
        if val.targets is None:
            raise ValueError("validation data without targets cannot be scored")
        self.val, self.targets = val, val.targets
        self.loader, self.accelerator = loader, accelerator
        self.loss_fn, self.label_names, self.thresholds = loss_fn, label_names, thresholds

    def __call__(self, model: torch.nn.Module) -> tuple[float, dict[str, Any], np.ndarray]:
        """``(validation loss, metrics, probabilities)`` of ``model`` (unwrapped: processes
        score different numbers of batches, and DDP's forward is a collective that would hang on
        uneven shares)."""
        logits = gather_logits(
            model, self.loader, self.accelerator, len(self.val), len(self.label_names)
        )
        targets, known, device = self.targets, self.val.known, self.accelerator.device
        batch = {"targets": torch.from_numpy(targets).to(device)}
        if known is not None:  # partial labels: the loss and the scores over the known pairs
            batch["known"] = torch.from_numpy(known).to(device)
        val_loss = label_loss(self.loss_fn, torch.from_numpy(logits).to(device), batch).item()
        probs = sigmoid(logits)
        metrics = tune_thresholds(targets, probs, **self.thresholds, known=known).metrics(
            targets, probs, self.label_names, known=known
        )
        metrics.pop("per_label")
        return val_loss, metrics, probs


@torch.no_grad()
def gather_logits(model, loader, accelerator, num_rows: int, num_labels: int) -> np.ndarray:
    """Logits ``(num_rows, num_labels)`` in dataset order, gathered from every process.

    Each process scores its own batches; :func:`multihot.core.distributed.gather_rows` collects them
    once at the end and checks that every row is there exactly once.
    """
    model.eval()
    device = accelerator.device
    indices = [torch.zeros(0, dtype=torch.long, device=device)]
    chunks = [torch.zeros(0, num_labels, device=device)]
    for batch in loader:
        # A prepared model autocasts itself; an EMA copy does not.
        with accelerator.autocast(), fast_attention(device):
            logits = model(**model_inputs(batch, device))
        indices.append(batch["index"].to(device))
        chunks.append(logits.float())
    return gather_rows(torch.cat(indices), torch.cat(chunks), num_rows, "evaluation")
