"""What the optimiser is given: parameter groups with their learning rates, and the schedule.

A pretrained encoder wants gentler steps than the freshly initialised head on top of it, and its
lower layers (general features: the embeddings, the first blocks) gentler still than its top ones
(Howard & Ruder 2018; Clark et al. 2020, ELECTRA). So:

- the head and pooling train at ``head_lr`` (default ``lr``);
- with ``layer_lr_decay`` d < 1 the encoder's top block trains at ``lr``, the block below it at
  ``lr * d``, and so on down to the embeddings at ``lr * d ** num_layers``. Which block a
  parameter belongs to is read from the encoder's modules (:mod:`multihot.modeling.layer_groups`:
  ALBERT's shared layers and relative-position tables used by every block take the middle
  block's rate);
- with ``freeze_encoder_epochs`` the encoder is not trained at all at first (only the head learns,
  so its random start does not send large gradients into the pretrained weights), and its own
  warmup and decay start when it is unfrozen; ``freeze_embeddings`` keeps the embeddings (and
  what maps them to the hidden size) as they were for the whole run.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from multihot.core.config import TrainConfig
from multihot.core.errors import ConfigError
from multihot.modeling.layer_groups import EncoderLayout, encoder_layout

ENCODER_PREFIXES = ("encoder.", "model.encoder.")
"""Where the encoder's parameters are in a :class:`multihot.modeling.model.MultiLabelModel`
(and in the MLM training wrapper around it)."""

logger = logging.getLogger(__name__)


def encoder_part(model: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    """``(prefix, encoder)``: the encoder inside ``model`` and the prefix of its parameters' names
    in ``model`` (``"encoder."``, or ``"model.encoder."`` in the MLM training wrapper)."""
    prefix = ENCODER_PREFIXES[0] if hasattr(model, "encoder") else ENCODER_PREFIXES[1]
    return prefix, model.get_submodule(prefix[:-1])


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The AdamW groups: one per (part, depth, decay) with its learning rate.

    Each group carries ``encoder: bool`` (the schedule treats the encoder apart while it is frozen)
    and ``depth`` (0 = embeddings; the head has none). Each encoder parameter's depth comes from
    the encoder's modules (:func:`multihot.modeling.layer_groups.encoder_layout`: ALBERT's shared
    layers and relative-position tables train at the middle block's rate); what comes after the
    last block shares the top block's group. Biases and norms get no weight decay. Parameters
    that do not require gradients (frozen embeddings) are left out. Logs the groups made.
    """
    if config.lr is None:
        raise ConfigError("lr: not set (resolve_config gives the encoder's default)")
    lr = config.lr
    head_lr = config.head_lr or lr
    prefix, encoder_module = encoder_part(model)
    layout = encoder_layout(encoder_module)
    num_layers = layout.num_layers
    decay = 1.0 if config.layer_lr_decay is None else config.layer_lr_decay
    groups: dict[tuple[bool, int, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        encoder = name.startswith(prefix)
        depth = min(layout.depths[name[len(prefix) :]], num_layers) if encoder else -1
        if decay == 1.0 and encoder:
            depth = num_layers  # one group: every depth has the same rate
        no_decay = param.ndim < 2 or "norm" in name.lower()
        groups.setdefault((encoder, depth, no_decay), []).append(param)
    made = [
        {
            "params": params,
            "lr": lr * decay ** (num_layers - depth) if encoder else head_lr,
            "weight_decay": 0.0 if no_decay else config.weight_decay,
            "encoder": encoder,
            "depth": depth,
        }
        for (encoder, depth, no_decay), params in sorted(groups.items(), key=lambda g: g[0])
    ]
    _log_groups(made, layout, decay)
    return made


def _log_groups(groups: list[dict[str, Any]], layout: EncoderLayout, decay: float) -> None:
    rates = [g["lr"] for g in groups]
    if not rates:
        return
    spread = f"lr {_rate(min(rates))} .. {_rate(max(rates))}"
    if decay < 1.0:
        spread += f" (layer_lr_decay {decay:g} over {layout.num_layers} blocks)"
    logger.info("%d parameter groups, %s", len(groups), spread)
    if decay < 1.0 and layout.shared:
        logger.info(
            "%d encoder tensors are used by several blocks (shared layers, relative-position "
            "tables) and train at the rate of the middle block they serve",
            len(layout.shared),
        )
    if layout.from_names:
        logger.warning(
            "encoder structure not recognised: layer depths and embeddings read from the "
            "parameter names"
        )


def _rate(lr: float) -> str:
    """``1.1e-5``, ``1e-3``: a learning rate as the log shows it."""
    return f"{lr:.1e}".replace(".0e", "e").replace("e-0", "e-").replace("e+0", "e")


def freeze_embeddings(model: torch.nn.Module) -> int:
    """Stop the encoder's embedding stage from training: the input embeddings and what maps them
    to the hidden size (:func:`multihot.modeling.layer_groups.encoder_layout`); returns how many
    tensors were frozen."""
    prefix, encoder = encoder_part(model)
    embeddings = {prefix + name for name in encoder_layout(encoder).embeddings}
    frozen = 0
    for name, param in model.named_parameters():
        if name in embeddings:
            param.requires_grad_(False)
            frozen += 1
    if not frozen:
        raise ConfigError("freeze_embeddings: found no input embeddings in the encoder")
    return frozen


def frozen_steps(config: TrainConfig, steps_per_epoch: int, total_steps: int) -> int:
    """Optimiser steps at the start of the run during which the encoder does not train."""
    steps = round(config.freeze_encoder_epochs * steps_per_epoch)
    if steps >= total_steps:
        raise ConfigError(
            f"freeze_encoder_epochs: {config.freeze_encoder_epochs} epochs is the whole run "
            f"({config.epochs} epochs); the encoder would never train"
        )
    return steps


def warmup_decay(optimizer, config: TrainConfig, total_steps: int, frozen: int = 0):
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to zero at the end.

    Encoder groups start their own warmup when the encoder is unfrozen (after ``frozen`` steps),
    over the same fraction of the steps left; before that their rate is zero.
    """

    def schedule(start: int):
        warmup = int(config.warmup_ratio * (total_steps - start))

        def factor(step: int) -> float:
            if step < start:
                return 0.0
            step -= start
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total_steps - start - step) / max(1, total_steps - start - warmup))

        return factor

    lambdas = [schedule(frozen if g.get("encoder") else 0) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
