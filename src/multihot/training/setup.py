"""What a training run is built from, before its first step: Accelerate, the data loaders, the
masking settings, the optimizer, the schedule and the EMA, placed on the device.

:func:`prepare` returns the run's :class:`TrainingParts` (what the loop reads) and its initial
:class:`multihot.training.state.LoopState` (what the loop changes and a checkpoint saves). A new
piece of training state is built here and given its field in the loop state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from multihot.core.config import TrainConfig
from multihot.core.distributed import check_batch_split
from multihot.core.errors import ConfigError
from multihot.core.precision import accelerate_mixed_precision, resolve_precision
from multihot.data.batching import Collator, LengthGroupedBatchSampler, TokenizedDataset
from multihot.modeling.dropout import use_fast_dropout
from multihot.modeling.encoders import use_eager_attention
from multihot.modeling.families import check_gradient_checkpointing, encoder_support
from multihot.modeling.masking import MaskedLMTraining
from multihot.modeling.model import MultiLabelModel
from multihot.training.optim import freeze_embeddings, frozen_steps, param_groups, warmup_decay
from multihot.training.state import LoopState
from multihot.training.tracking import check_trackers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopPlan:
    """How the loop goes: how long, when it evaluates, what each step does besides the update."""

    epochs: int
    steps_per_epoch: int
    """This process's optimiser steps per epoch."""
    eval_every: int = 0
    """Evaluate every this many optimiser steps; 0: at the end of each epoch."""
    grad_clip: float = 0.0
    mlm_weight: float = 0.0
    frozen_steps: int = 0
    """Optimiser steps at the start during which the encoder is not trained."""
    batch_tokens: int = 16384
    """Ids per forward pass at most for documents of windows: a batch over it is trained in
    groups of its documents (:func:`multihot.data.batching.split_documents`)."""

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def evaluates_after_step(self, step: int) -> bool:
        """Whether the loop evaluates right after optimiser step ``step``."""
        return bool(self.eval_every) and step % self.eval_every == 0

    def evaluates_after_epoch(self, epoch: int, step: int) -> bool:
        """Whether the loop evaluates at the end of ``epoch`` (its last step ``step``): every
        epoch without ``eval_every``; with it, once more at the end unless the last step was."""
        last = epoch == self.epochs - 1
        return not self.eval_every or (last and step % self.eval_every != 0)


@dataclass
class TrainingParts:
    """What the loop reads: the accelerator, the data, the loss and the plan."""

    accelerator: Any
    model: torch.nn.Module
    """What is evaluated and saved (prepared); the trained module is ``LoopState.net``."""
    loss_fn: torch.nn.Module
    train_loader: Any
    """The training batches, prepared by Accelerate (a ``DataLoaderShard``)."""
    val_loader: DataLoader
    """This process's share of the validation batches."""
    sampler: LengthGroupedBatchSampler
    masking: dict[str, Any] | None
    """The arguments of :func:`multihot.modeling.masking.mask_tokens`, or None."""
    plan: LoopPlan


def prepare(
    model: MultiLabelModel,
    loss_fn: torch.nn.Module,
    train: TokenizedDataset,
    val: TokenizedDataset,
    config: TrainConfig,
    accelerator,
    *,
    tokenizer,
    batch_tokens: int = 16384,
) -> tuple[TrainingParts, LoopState]:
    """The run's parts and its initial loop state: the model (with an MLM head for
    ``mlm_weight``), the optimizer, the schedule and the EMA, placed by Accelerate."""
    train_loader, val_loader, sampler = build_loaders(
        train, val, config, accelerator, tokenizer.pad_token_id, batch_tokens
    )
    masking = masking_settings(
        config, model, tokenizer.mask_token_id, tokenizer.all_special_ids, tokenizer.pad_token_id
    )
    # With an MLM loss the module trained carries a prediction head that the saved model does not.
    net = MaskedLMTraining(model) if config.mlm_weight else model
    _speed_up_and_freeze(net, model, config, accelerator)
    # The fused AdamW kernel updates all parameters in one pass: 2x faster steps on CPU.
    groups = param_groups(net, config)  # refuses a config without lr
    assert config.lr is not None
    optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=True)
    net, optimizer, train_loader = accelerator.prepare(net, optimizer, train_loader)
    model = accelerator.unwrap_model(net).model if config.mlm_weight else net
    ema = _moving_average(accelerator.unwrap_model(model), config.ema_decay)
    plan = _plan(config, math.ceil(len(train_loader) / config.grad_accum), batch_tokens)
    # The schedule counts this process's optimiser steps, so it is built after sharding.
    scheduler = warmup_decay(optimizer, config, plan.total_steps, plan.frozen_steps)
    parts = TrainingParts(
        accelerator,
        model,
        loss_fn.to(accelerator.device),
        train_loader,
        val_loader,
        sampler,
        masking,
        plan,
    )
    state = LoopState(
        net=net,
        optimizer=optimizer,
        scheduler=scheduler,
        ema=ema,
        scaler=accelerator.scaler,
        masking=masking["generator"] if masking else None,
    )
    return parts, state


def _plan(config: TrainConfig, steps_per_epoch: int, batch_tokens: int) -> LoopPlan:
    assert config.epochs is not None  # resolved before training (auto_epochs)
    return LoopPlan(
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        eval_every=config.eval_every,
        grad_clip=config.grad_clip,
        mlm_weight=config.mlm_weight,
        frozen_steps=frozen_steps(config, steps_per_epoch, steps_per_epoch * config.epochs),
        batch_tokens=batch_tokens,
    )


def _speed_up_and_freeze(net, model, config: TrainConfig, accelerator) -> None:
    if accelerator.device.type == "cpu":
        # Both cut the per-step costs that dominate a small encoder's step on a CPU.
        use_fast_dropout(net)
        use_eager_attention(net)
    if config.freeze_embeddings:
        freeze_embeddings(net)
    if config.gradient_checkpointing:
        checkpoint_activations(model)


def _moving_average(model: torch.nn.Module, decay: float):
    """An exponential moving average of ``model``'s weights (evaluated and kept: smoother than
    any step), or None without ``decay``."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def build_accelerator(config: TrainConfig):
    """``(accelerator, precision)``: Accelerate set up for this run (device, mixed precision,
    gradient accumulation, the global batch cut into one slice per process)."""
    # heavy: accelerate (imported when training starts, not with the package)
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
    loader_options: dict[str, Any] = {"collate_fn": collate, "num_workers": workers}
    if workers:
        loader_options.update(pin_memory=accelerator.device.type == "cuda")
    train_loader = DataLoader(train, batch_sampler=sampler, **loader_options)
    # Validation is sharded by whole batches, not by Accelerate: gather_logits puts every row
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
    without ``config.mask_prob``. Its generator is the run's own, kept in the loop state."""
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


def checkpoint_activations(model: torch.nn.Module) -> None:
    """Turn on the encoder's gradient checkpointing (Hugging Face encoders that support it).

    A run checks this when its encoder is loaded (:func:`multihot.modeling.families.check_settings`);
    this refusal is the backstop for callers of ``fit`` alone.
    """
    encoder: Any = model.get_submodule("encoder")  # a Hugging Face PreTrainedModel
    check_gradient_checkpointing(encoder_support(encoder))
    # Non-reentrant: works when the inputs need no gradient and with frozen parts. transformers 5
    # renamed the method (the old name warns).
    kwargs = {"use_reentrant": False}
    enable = getattr(encoder, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
