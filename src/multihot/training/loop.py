"""The training loop: a generator of events, on Hugging Face Accelerate.

:func:`train_steps` trains and evaluates when its plan says, and yields a :class:`StepEvent` after
each optimiser step and an :class:`EvalEvent` after each evaluation. It knows no files, trackers,
callbacks or best weights: the caller (:class:`multihot.training.session.TrainingSession`) decides
what an event means, and stops the run by no longer asking for steps (the shape of spaCy's
``train_while_improving``). What it changes is the :class:`multihot.training.state.LoopState`
it is given, so a checkpoint taken between two events is the whole state of the run.

Accelerate places the model and batches, applies mixed precision and, launched with
``accelerate launch``, shards the data over processes; the loop itself stays a plain PyTorch loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from multihot.core.precision import fast_attention
from multihot.data.batching import split_documents, window_inputs
from multihot.modeling.masking import mask_tokens
from multihot.training.losses import label_loss
from multihot.training.setup import TrainingParts
from multihot.training.state import LoopState, epoch_batches
from multihot.training.validation import Validator


@dataclass
class StepEvent:
    """An optimiser step has been taken."""

    step: int
    loss: torch.Tensor
    """The batch's loss, detached, on the device (reading it waits for the device)."""
    samples_per_second: float


@dataclass
class EvalEvent:
    """The model has been evaluated on the validation data."""

    record: dict[str, Any]
    """Step, epoch, losses, metrics and seconds: one row of the history."""
    probs: np.ndarray
    """The validation probabilities."""
    weights: Callable[[], dict[str, torch.Tensor]]
    """The weights that were evaluated (the model's, or their moving average's)."""


def train_steps(
    parts: TrainingParts, state: LoopState, validate: Validator
) -> Iterator[StepEvent | EvalEvent]:
    """Train from ``state`` (a fresh one or a restored one) to the end of the plan, evaluating with
    ``validate`` when the plan says; one event after each optimiser step and each evaluation."""
    plan, accelerator, loader, net = parts.plan, parts.accelerator, parts.train_loader, state.net
    if net is None:
        raise ValueError("the loop state holds no module to train")
    started = time.perf_counter() - state.seconds
    running = _RunningLoss(accelerator)
    for epoch in range(state.epoch, plan.epochs):
        parts.sampler.set_epoch(epoch)
        # Accelerate's loader re-sets the sampler's epoch from its own count of passes, which a
        # resumed run did not start at zero.
        loader.set_epoch(epoch)
        net.train()
        for batch in epoch_batches(state, accelerator, loader):
            loss = _train_step(parts, state, net, batch)
            running.add(loss)
            state.batch += 1
            state.seen += batch["index"].shape[0] * accelerator.num_processes  # equal slices
            if not accelerator.sync_gradients:
                continue
            state.seconds = time.perf_counter() - started
            yield StepEvent(state.step, loss, state.seen / state.seconds)
            if plan.evaluates_after_step(state.step):
                at = epoch + state.batch / len(loader)
                if state.batch == len(loader):  # the epoch's last batch: resume at the next
                    state.epoch, state.batch = epoch + 1, 0
                yield _evaluate(parts, state, validate, running, at, started)
                net.train()
        state.epoch, state.batch = epoch + 1, 0
        if plan.evaluates_after_epoch(epoch, state.step):
            yield _evaluate(parts, state, validate, running, epoch + 1.0, started)


def _train_step(
    parts: TrainingParts, state: LoopState, net: torch.nn.Module, batch
) -> torch.Tensor:
    """One batch forward and backward, and the optimiser's step when it ends an accumulation
    (``accelerator.sync_gradients``). The batch's loss, detached."""
    accelerator, plan = parts.accelerator, parts.plan
    if plan.frozen_steps:
        accelerator.unwrap_model(parts.model).freeze_encoder = state.step < plan.frozen_steps
    with accelerator.accumulate(net):
        with fast_attention(accelerator.device):
            loss = _documents_backward(parts, net, batch)
        if accelerator.sync_gradients and plan.grad_clip:
            accelerator.clip_grad_norm_(net.parameters(), plan.grad_clip)
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
    if accelerator.sync_gradients:
        state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(accelerator.unwrap_model(parts.model))
        state.step += 1
    return loss


def _documents_backward(parts: TrainingParts, net, batch) -> torch.Tensor:
    """Forward and backward of a batch; documents over the token budget in groups of them, each
    group's loss weighted by its share of the batch (the same gradient), gradients synchronised
    over processes after the last group only. The batch's loss, detached.

    The share is of the documents, or with partial labels of the known pairs, since the loss is
    then a mean over those (:mod:`multihot.training.losses`)."""
    accelerator, budget = parts.accelerator, parts.plan.batch_tokens
    groups = split_documents(batch, budget)
    total, loss = batch["index"].shape[0], None
    known_total = int(batch["known"].sum()) if "known" in batch and len(groups) > 1 else 0
    for k, group in enumerate(groups):
        last = k == len(groups) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(net):
            if known_total:
                share = int(group["known"].sum()) / known_total
            else:
                share = group["index"].shape[0] / total
            group_loss = share * _training_loss(
                net, parts.loss_fn, group, parts.masking, parts.plan.mlm_weight, budget
            )
            accelerator.backward(group_loss)
        loss = group_loss.detach() if loss is None else loss + group_loss.detach()
    assert loss is not None  # a batch is at least one group
    return loss


def _training_loss(
    net,
    loss_fn,
    batch: dict[str, torch.Tensor],
    masking: dict | None,
    mlm_weight: float,
    batch_tokens: int | None = None,
) -> torch.Tensor:
    """The label loss on the (possibly corrupted) batch, plus the weighted MLM loss if any.
    Documents' windows go through the encoder at most ``batch_tokens`` ids at a time."""
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    windows = window_inputs(batch, input_ids.device, batch_tokens)
    corrupted, chosen = input_ids, None
    if masking is not None:
        corrupted, chosen = mask_tokens(input_ids, attention_mask, **masking)
    if not mlm_weight:
        return label_loss(loss_fn, net(corrupted, attention_mask, **windows), batch)
    assert chosen is not None  # mlm_weight needs mask_prob (TrainConfig checks)
    windows.pop("encoder_rows", None)  # the MLM head reads every window's token states
    logits, vocab_logits = net(corrupted, attention_mask, chosen, **windows)
    loss = label_loss(loss_fn, logits, batch)
    if chosen.any():
        loss = loss + mlm_weight * F.cross_entropy(vocab_logits.float(), input_ids[chosen])
    return loss


def _evaluate(
    parts: TrainingParts,
    state: LoopState,
    validate: Validator,
    running: _RunningLoss,
    epoch: float,
    started: float,
) -> EvalEvent:
    """Score the model (or its moving average) and make the history's record."""
    accelerator = parts.accelerator
    evaluated = parts.model if state.ema is None else state.ema.module
    val_loss, metrics, probs = validate(accelerator.unwrap_model(evaluated))
    state.seconds = time.perf_counter() - started
    record = {
        "step": state.step,
        "epoch": round(epoch, 4),
        "train_loss": running.mean_and_reset(),
        "val_loss": val_loss,
        **metrics,
        "seconds": round(state.seconds, 2),
    }
    return EvalEvent(record, probs, partial(_evaluated_weights, parts, state))


def _evaluated_weights(parts: TrainingParts, state: LoopState) -> dict[str, torch.Tensor]:
    """The weights evaluated; get_state_dict gathers the full weights where FSDP or DeepSpeed shard
    them (every process takes part; with FSDP only the main process receives them)."""
    accelerator = parts.accelerator
    if state.ema is None:
        return accelerator.get_state_dict(parts.model)
    return accelerator.unwrap_model(state.ema.module).state_dict()


class _RunningLoss:
    """The training loss summed since the last evaluation. On a GPU, reading a loss waits for the
    step to finish; summing on the device keeps the host queueing the next batch meanwhile."""

    def __init__(self, accelerator):
        self.accelerator, self.count = accelerator, 0
        self.total: torch.Tensor | float = 0.0

    def add(self, loss: torch.Tensor) -> None:
        self.total = self.total + loss.detach().float()
        self.count += 1

    def mean_and_reset(self) -> float:
        """The mean over the batches (each process summed its slices; the mean over processes is
        the batch loss), and start again."""
        device = self.accelerator.device
        summed = torch.as_tensor(self.total, dtype=torch.float32, device=device)
        mean = float(self.accelerator.reduce(summed, reduction="mean")) / max(1, self.count)
        self.total, self.count = 0.0, 0
        return mean
