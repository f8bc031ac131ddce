"""The training loop, on Hugging Face Accelerate.

Accelerate places the model and batches, applies mixed precision and, launched with
``accelerate launch``, shards the data over processes; the loop itself stays a plain PyTorch loop.
It knows nothing about files or the CLI: progress goes to an optional callback, and the best
weights, the history and the validation probabilities at the best evaluation come back in a
:class:`TrainResult`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from multihot.core.config import TrainConfig
from multihot.core.distributed import check_batch_split, gather_rows
from multihot.core.errors import ConfigError
from multihot.core.precision import accelerate_mixed_precision, fast_attention, resolve_precision
from multihot.data.batching import (
    Collator,
    LengthGroupedBatchSampler,
    TokenizedDataset,
    model_inputs,
    split_documents,
    window_inputs,
)
from multihot.modeling.dropout import use_fast_dropout
from multihot.modeling.encoders import use_eager_attention
from multihot.modeling.masking import MaskedLMTraining, mask_tokens
from multihot.scoring.metrics import metric_is_better
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import tune_thresholds
from multihot.training.checkpoint import TrainingCheckpoint
from multihot.training.optim import freeze_embeddings, frozen_steps, param_groups, warmup_decay
from multihot.training.result import TrainResult
from multihot.training.tracking import Tracking, check_trackers
from multihot.training.tracking import log as tracking_log
from multihot.training.tracking import start as tracking_start

logger = logging.getLogger(__name__)

# On a GPU the loss shown by the progress callback is read back every this many steps, not every
# step: each read stalls the host until the GPU has finished.
LOSS_SYNC_EVERY = 25


class TrainCallback(Protocol):
    """What the loop reports; the CLI draws a progress bar from it, tests can record it."""

    def on_train_start(self, total_steps: int, steps_per_epoch: int) -> None: ...

    def on_step(self, step: int, loss: float, samples_per_second: float) -> None: ...

    def on_evaluate(self, record: dict[str, Any]) -> None: ...

    def on_train_end(self) -> None: ...


def fit(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    train: TokenizedDataset,
    val: TokenizedDataset,
    config: TrainConfig,
    *,
    pad_token_id: int,
    label_names: list[str],
    callback: TrainCallback | None = None,
    mask_token_id: int | None = None,
    special_ids: Sequence[int] = (),
    checkpoint: str | Path | None = None,
    resume: bool = False,
    tracking: Tracking | None = None,
    batch_tokens: int = 16384,
) -> TrainResult:
    """Train ``model`` on ``train``, evaluate on ``val``, keep the best weights by ``config.metric``.

    The model and loss should be built after seeding (``accelerate.utils.set_seed``) so a run
    repeats exactly. ``mask_token_id`` and ``special_ids`` (tokens never masked) are needed with
    ``config.mask_prob`` (see :mod:`multihot.modeling.masking`). Evaluation tunes thresholds on
    ``val`` with ``config.thresholds`` before computing the selection metric, the same way the
    final thresholds are chosen.

    With ``checkpoint`` (a directory), the full training state is saved there after every
    evaluation (:class:`multihot.training.checkpoint.TrainingCheckpoint`); with ``resume`` too,
    training continues from the state saved there, exactly where the interrupted run was.

    With ``config.report_to``, every evaluation is also logged to those trackers
    (:mod:`multihot.training.tracking`) under ``tracking``'s name.

    Documents of windows (``long_text="chunk"``) train in batches of ``config.batch_size``
    documents; they are evaluated packed up to ``batch_tokens`` ids per batch.
    """
    accelerator, precision = build_accelerator(config)
    tracked = tracking_start(accelerator, config, tracking)
    if not accelerator.is_main_process:
        callback = None  # one progress bar and one log, from the main process
    train_loader, val_loader, sampler = build_loaders(
        train, val, config, accelerator, pad_token_id, batch_tokens
    )
    masking = masking_settings(config, model, mask_token_id, special_ids, pad_token_id)
    run = _prepare(model, loss_fn, config, accelerator, train_loader, sampler, masking)
    run.batch_tokens = batch_tokens
    checkpoints = _checkpoints(run, config, checkpoint)
    result = TrainResult(state_dict={}, best={}, precision=precision)
    counters = _Counters(started=time.perf_counter())
    resumed = None
    if checkpoints is not None and resume:
        resumed = checkpoints.restore(result)
        counters.resume_from(resumed)
        logger.info("resumed at step %d of %d", counters.step, run.total_steps)
    evaluator = Evaluator(
        run, val, val_loader, config, label_names, result, counters, checkpoints, callback
    )
    if callback:
        callback.on_train_start(run.total_steps, run.steps_per_epoch)
    _epochs(run, evaluator, counters, config, callback, checkpoints, resumed)
    if counters.stopped:
        result.stopped_early = True
        logger.info("early stopping after %d evaluations without improvement", config.patience)
    if callback:
        callback.on_train_end()
    if tracked:
        accelerator.end_training()
    accelerator.free_memory()
    return result


def build_accelerator(config: TrainConfig):
    """``(accelerator, precision)``: Accelerate set up for this run (device, mixed precision,
    gradient accumulation, the global batch cut into one slice per process)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(config.precision, device)
    # AcceleratorState is a process-wide singleton that refuses a second Accelerator with another
    # precision; each run sets its own. The distributed state (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    # split_batches: batch_size is the global batch, cut into one slice per process, so N processes
    # take the same optimiser steps on the same texts as one process does (and the same schedule).
    # cpu=True is what makes Accelerate join processes launched on a CPU machine over gloo.
    # DDP must be told that some parameters may get no gradient in a step: an encoder's pooler
    # that the chosen pooling does not use, or the MLM head in a batch where nothing was masked.
    trackers = check_trackers(config)
    accelerator = Accelerator(
        cpu=device == "cpu",
        log_with=trackers or None,
        project_dir=config.tracking_dir if trackers else None,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        mixed_precision=accelerate_mixed_precision(precision),
        gradient_accumulation_steps=config.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    check_batch_split(config.batch_size, accelerator.num_processes)
    if accelerator.num_processes > 1:
        logger.info(
            "training in %d processes (%s, %s), %d texts per process and step",
            accelerator.num_processes,
            accelerator.distributed_type.value,
            accelerator.device.type,
            config.batch_size // accelerator.num_processes,
        )
    return accelerator, precision


def build_loaders(
    train: TokenizedDataset,
    val: TokenizedDataset,
    config: TrainConfig,
    accelerator,
    pad_token_id: int,
    batch_tokens: int = 16384,
) -> tuple[DataLoader, DataLoader, LengthGroupedBatchSampler]:
    """``(train_loader, val_loader, sampler)``: length-grouped shuffled training batches; this
    process's share of the validation batches (batch i goes to process i mod N)."""
    collate = Collator(pad_token_id)
    sampler = LengthGroupedBatchSampler(train.lengths, config.batch_size, seed=config.seed)
    workers = config.num_workers
    if workers is None:
        workers = 2 if accelerator.device.type == "cuda" else 0
    loader_options = {"collate_fn": collate, "num_workers": workers}
    if workers:
        loader_options.update(pin_memory=accelerator.device.type == "cuda")
    train_loader = DataLoader(train, batch_sampler=sampler, **loader_options)
    # Validation is sharded by whole batches, not by Accelerate: _gather_logits puts every row
    # back in its place (no row repeated or dropped).
    val_batches = val.inference_batches(config.batch_size * 2, batch_tokens)
    val_loader = DataLoader(
        val,
        batch_sampler=val_batches[accelerator.process_index :: accelerator.num_processes],
        **loader_options,
    )
    return train_loader, val_loader, sampler


def masking_settings(
    config: TrainConfig,
    model,
    mask_token_id: int | None,
    special_ids: Sequence[int],
    pad_token_id: int,
) -> dict[str, Any] | None:
    """The arguments of :func:`multihot.modeling.masking.mask_tokens` for this run, or None
    without ``config.mask_prob``. Its generator is the run's own, so resuming can restore it."""
    if not config.mask_prob:
        return None
    if mask_token_id is None:
        raise ConfigError("mask_prob: the tokenizer has no mask token to corrupt texts with")
    return {
        "prob": config.mask_prob,
        "mask_token_id": mask_token_id,
        "special_ids": sorted(set(special_ids) | {pad_token_id, mask_token_id}),
        "vocab_size": model.encoder.get_input_embeddings().weight.shape[0],
        "generator": torch.Generator().manual_seed(config.seed),
    }


@dataclass
class _Run:
    """The pieces one training run is made of, prepared by Accelerate."""

    accelerator: Any
    net: torch.nn.Module
    """What is trained: the model, or the model with an MLM head (``mlm_weight``)."""
    model: torch.nn.Module
    """What is evaluated and saved (prepared)."""
    optimizer: Any
    scheduler: Any
    loss_fn: torch.nn.Module
    ema: Any
    train_loader: DataLoader
    sampler: LengthGroupedBatchSampler
    masking: dict[str, Any] | None
    steps_per_epoch: int
    total_steps: int
    frozen_steps: int = 0
    """Optimiser steps at the start during which the encoder is not trained."""
    batch_tokens: int = 16384
    """Ids per forward pass at most for documents of windows: a batch over it is trained in
    groups of its documents (:func:`multihot.data.batching.split_documents`)."""


def _prepare(model, loss_fn, config: TrainConfig, accelerator, train_loader, sampler, masking):
    """The optimizer, the schedule and the EMA, and everything placed by Accelerate."""
    # With an MLM loss the module trained carries a prediction head that the saved model does not.
    net = MaskedLMTraining(model) if config.mlm_weight else model
    if accelerator.device.type == "cpu":
        # Both cut the per-step costs that dominate a small encoder's step on a CPU.
        use_fast_dropout(net)
        use_eager_attention(net)
    if config.freeze_embeddings:
        freeze_embeddings(net)
    if config.gradient_checkpointing:
        checkpoint_activations(model)
    # The fused AdamW kernel updates all parameters in one pass: 2x faster steps on CPU.
    optimizer = torch.optim.AdamW(param_groups(net, config), lr=config.lr, fused=True)
    net, optimizer, train_loader = accelerator.prepare(net, optimizer, train_loader)
    model = accelerator.unwrap_model(net).model if config.mlm_weight else net
    # Evaluate (and keep) an exponential moving average of the weights: smoother than any step.
    ema = None
    if config.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(
            accelerator.unwrap_model(model),
            multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),
            use_buffers=True,
        )
    # The schedule counts this process's optimiser steps, so it is built after sharding.
    steps_per_epoch = math.ceil(len(train_loader) / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    frozen = frozen_steps(config, steps_per_epoch, total_steps)
    scheduler = warmup_decay(optimizer, config, total_steps, frozen)
    return _Run(
        accelerator,
        net,
        model,
        optimizer,
        scheduler,
        loss_fn.to(accelerator.device),
        ema,
        train_loader,
        sampler,
        masking,
        steps_per_epoch,
        total_steps,
        frozen,
    )


def checkpoint_activations(model: torch.nn.Module) -> None:
    """Turn on the encoder's gradient checkpointing (Hugging Face encoders that support it)."""
    encoder = model.encoder
    if not getattr(encoder, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"gradient_checkpointing: the encoder ({type(encoder).__name__}) does not support it"
        )
    # Non-reentrant: works when the inputs need no gradient and with frozen parts. transformers 5
    # renamed the method (the old name warns).
    kwargs = {"use_reentrant": False}
    enable = getattr(encoder, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _checkpoints(run: _Run, config: TrainConfig, directory) -> TrainingCheckpoint | None:
    if directory is None:
        return None
    if not TrainingCheckpoint.supported(run.accelerator):
        logger.warning(
            "no checkpoints with %s: this run cannot be resumed", run.accelerator.distributed_type
        )
        return None
    return TrainingCheckpoint(
        directory,
        run.accelerator,
        net=run.net,
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        steps_per_epoch=run.steps_per_epoch,
        grad_accum=config.grad_accum,
        ema=run.ema,
        generator=run.masking["generator"] if run.masking else None,
    )


@dataclass
class _Counters:
    """What the loop counts, shared with the :class:`Evaluator`."""

    started: float
    step: int = 0
    stale: int = 0
    """Evaluations without improvement (early stopping)."""
    seen: int = 0
    """Training texts seen, all processes (the throughput shown)."""
    epoch: int = 0
    """The epoch to start at (a resumed run's)."""
    stopped: bool = False
    running_loss: Any = 0.0
    """The training loss summed since the last evaluation (a tensor on the device once summed)."""
    running_count: int = 0
    shown_loss: float = float("nan")
    """The loss the progress callback shows (read back from a GPU only now and then)."""

    def resume_from(self, at) -> None:
        """Take the counters of a checkpoint (:class:`multihot.training.checkpoint.Position`)."""
        self.step, self.stale, self.seen = at.step, at.stale, at.seen
        self.stopped, self.epoch = at.stopped, at.epoch
        self.started -= at.seconds

    def seconds(self) -> float:
        return time.perf_counter() - self.started


class Evaluator:
    """Scores the validation data, records the evaluation, keeps the best weights, saves the
    checkpoint and says when early stopping ends the run.

    Args:
        run: the prepared pieces of the run.
        val: the validation data (its targets).
        val_loader: this process's share of the validation batches.
        config: the run's settings (metric, thresholds, patience).
        label_names: the labels, for the metrics.
        result: where the history and the best evaluation go.
        counters: the loop's counters (step, stale, running loss).
        checkpoints: where the state is saved after each evaluation, or None.
        callback: told about each evaluation, or None.
    """

    def __init__(
        self,
        run: _Run,
        val: TokenizedDataset,
        val_loader: DataLoader,
        config: TrainConfig,
        label_names: list[str],
        result: TrainResult,
        counters: _Counters,
        checkpoints: TrainingCheckpoint | None,
        callback: TrainCallback | None,
    ):
        self.run, self.val, self.val_loader, self.config = run, val, val_loader, config
        self.label_names, self.result, self.counters = label_names, result, counters
        self.checkpoints, self.callback = checkpoints, callback

    def __call__(self, epoch: float) -> bool:
        """Evaluate at ``epoch`` (fractional mid-epoch); True when early stopping says stop."""
        run, config, result, counters = self.run, self.config, self.result, self.counters
        evaluated = run.model if run.ema is None else run.ema.module
        record, probs = self._score(evaluated, epoch)
        result.history.append(record)
        if not result.best or metric_is_better(
            config.metric, record[config.metric], result.best[config.metric]
        ):
            result.best, result.val_probs = record, probs
            # get_state_dict gathers the full weights where FSDP or DeepSpeed shard them (every
            # process takes part; with FSDP only the main process receives them).
            weights = (
                run.accelerator.get_state_dict(run.model)
                if run.ema is None
                else run.accelerator.unwrap_model(evaluated).state_dict()
            )
            result.state_dict = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
            counters.stale = 0
        else:
            counters.stale += 1
        stop = bool(config.patience) and counters.stale >= config.patience
        if self.checkpoints is not None:
            self.checkpoints.save(
                result,
                step=counters.step,
                stale=counters.stale,
                stopped=stop,
                seen=counters.seen,
                seconds=counters.seconds(),
            )
        if self.callback:
            self.callback.on_evaluate(record)
        if run.accelerator.trackers:
            tracking_log(run.accelerator, record, counters.step)
        logger.info(
            "step %d: %s %.4f (best %.4f)",
            counters.step,
            config.metric,
            record[config.metric],
            result.best[config.metric],
        )
        return stop

    def _score(self, evaluated, epoch: float) -> tuple[dict[str, Any], np.ndarray]:
        """The evaluation's record (losses, metrics after tuned thresholds) and probabilities."""
        run, counters, accelerator = self.run, self.counters, self.run.accelerator
        # Scored unwrapped: processes score different numbers of batches, and DDP's forward is a
        # collective (it broadcasts buffers), so a wrapped forward would hang on uneven shares.
        logits = _gather_logits(
            accelerator.unwrap_model(evaluated),
            self.val_loader,
            accelerator,
            len(self.val),
            len(self.label_names),
        )
        targets, device = self.val.targets, accelerator.device
        val_loss = run.loss_fn(
            torch.from_numpy(logits).to(device), torch.from_numpy(targets).to(device)
        ).item()
        # Each process summed the loss of its slices; the mean over processes is the batch loss.
        summed = torch.as_tensor(counters.running_loss, dtype=torch.float32, device=device)
        train_loss = float(accelerator.reduce(summed, reduction="mean")) / max(
            1, counters.running_count
        )
        probs = sigmoid(logits)
        metrics = tune_thresholds(targets, probs, **self.config.threshold_settings()).metrics(
            targets, probs, self.label_names
        )
        metrics.pop("per_label")
        counters.running_loss, counters.running_count = 0.0, 0
        record = {
            "step": counters.step,
            "epoch": round(epoch, 4),
            "train_loss": train_loss,
            "val_loss": val_loss,
            **metrics,
            "seconds": round(counters.seconds(), 2),
        }
        return record, probs


def _epochs(
    run: _Run,
    evaluate: Evaluator,
    counters: _Counters,
    config: TrainConfig,
    callback: TrainCallback | None,
    checkpoints: TrainingCheckpoint | None,
    resumed,
) -> None:
    """The epoch loop: train, evaluate every ``eval_every`` steps or each epoch, stop early."""
    accelerator, train_loader = run.accelerator, run.train_loader
    for epoch in range(counters.epoch, config.epochs):
        if counters.stopped:  # a resumed run that early stopping had already ended
            return
        run.sampler.set_epoch(epoch)
        # Accelerate's loader re-sets the sampler's epoch from its own count of passes, which a
        # resumed run did not start at zero.
        train_loader.set_epoch(epoch)
        run.net.train()
        batches, skipped = train_loader, 0
        if resumed is not None:  # the rest of the epoch the checkpoint was taken in
            batches = checkpoints.batches(accelerator, train_loader, resumed)
            skipped, resumed = resumed.batch, None
        for batch_index, batch in enumerate(batches, start=skipped):
            if not _train_step(run, batch, config, counters, callback):
                continue
            if config.eval_every and counters.step % config.eval_every == 0:
                counters.stopped = evaluate(epoch + (batch_index + 1) / len(train_loader))
                run.net.train()
                if counters.stopped:
                    return
        # Every epoch without --eval-every; with it, once more at the end unless the last step was.
        last_epoch = epoch == config.epochs - 1
        if not config.eval_every or (last_epoch and counters.step % config.eval_every):
            counters.stopped = evaluate(epoch + 1.0)
            if counters.stopped:
                return


def _train_step(
    run: _Run, batch, config: TrainConfig, counters: _Counters, callback: TrainCallback | None
) -> bool:
    """One batch forward and backward; True when it ended an optimiser step (gradients synced)."""
    accelerator, net = run.accelerator, run.net
    if run.frozen_steps:
        accelerator.unwrap_model(run.model).freeze_encoder = counters.step < run.frozen_steps
    with accelerator.accumulate(net):
        with fast_attention(accelerator.device):
            loss = _documents_backward(run, batch, config)
        if accelerator.sync_gradients and config.grad_clip:
            accelerator.clip_grad_norm_(net.parameters(), config.grad_clip)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    # On a GPU, .item() waits for the step to finish; summing on the device keeps the host
    # queueing the next batch while the GPU works.
    counters.running_loss = counters.running_loss + loss.detach().float()
    counters.running_count += 1
    counters.seen += batch["index"].shape[0] * accelerator.num_processes  # slices are equal
    if not accelerator.sync_gradients:
        return False
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(accelerator.unwrap_model(run.model))
    counters.step += 1
    if callback:
        if (
            accelerator.device.type == "cpu"
            or counters.step % LOSS_SYNC_EVERY == 0
            or counters.step == 1
        ):
            counters.shown_loss = loss.item()
        callback.on_step(counters.step, counters.shown_loss, counters.seen / counters.seconds())
    return True


def _documents_backward(run: _Run, batch, config: TrainConfig) -> torch.Tensor:
    """Forward and backward of a batch; documents over the token budget in groups of them, each
    group's loss weighted by its share of the batch (the same gradient), gradients synchronised
    over processes after the last group only. The batch's loss, detached."""
    accelerator, net = run.accelerator, run.net
    parts = split_documents(batch, run.batch_tokens)
    total, loss = batch["index"].shape[0], 0.0
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(net):
            share = part["index"].shape[0] / total
            part_loss = share * _training_loss(
                net, run.loss_fn, part, run.masking, config.mlm_weight, run.batch_tokens
            )
            accelerator.backward(part_loss)
        loss = loss + part_loss.detach()
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
    corrupted = input_ids
    if masking is not None:
        corrupted, chosen = mask_tokens(input_ids, attention_mask, **masking)
    if not mlm_weight:
        return loss_fn(net(corrupted, attention_mask, **windows), batch["targets"])
    windows.pop("encoder_rows", None)  # the MLM head reads every window's token states
    logits, vocab_logits = net(corrupted, attention_mask, chosen, **windows)
    loss = loss_fn(logits, batch["targets"])
    if chosen.any():
        loss = loss + mlm_weight * F.cross_entropy(vocab_logits.float(), input_ids[chosen])
    return loss


@torch.no_grad()
def _gather_logits(model, loader, accelerator, num_rows: int, num_labels: int) -> np.ndarray:
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
