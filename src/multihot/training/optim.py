"""What the optimiser is given: parameter groups with their learning rates, and the schedule.

A pretrained encoder wants gentler steps than the freshly initialised head on top of it, and its
lower layers (general features: the embeddings, the first blocks) gentler still than its top ones
(Howard & Ruder 2018; Clark et al. 2020, ELECTRA). So:

- the head and pooling train at ``head_lr`` (default ``lr``);
- with ``layer_lr_decay`` d < 1 the encoder's top block trains at ``lr``, the block below it at
  ``lr * d``, and so on down to the embeddings at ``lr * d ** num_layers``;
- with ``freeze_encoder_epochs`` the encoder is not trained at all at first (only the head learns,
  so its random start does not send large gradients into the pretrained weights), and its own
  warmup and decay start when it is unfrozen; ``freeze_embeddings`` keeps the embeddings as they
  were for the whole run.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from multihot.core.config import TrainConfig
from multihot.core.errors import ConfigError

ENCODER_PREFIXES = ("encoder.", "model.encoder.")
"""Where the encoder's parameters are in a :class:`multihot.modeling.model.MultiLabelModel`
(and in the MLM training wrapper around it)."""

_BLOCK = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


def is_encoder_param(name: str) -> bool:
    return name.startswith(ENCODER_PREFIXES)


def is_embedding_param(name: str) -> bool:
    return is_encoder_param(name) and "embeddings." in name


def encoder_depth(name: str, num_layers: int) -> int:
    """How high an encoder parameter sits: 0 for the embeddings, ``i + 1`` for block ``i``,
    ``num_layers + 1`` for what comes after the last block (BERT's pooler, a final norm)."""
    if "embeddings." in name:
        return 0
    found = _BLOCK.search(name)
    return int(found.group(1)) + 1 if found else num_layers + 1


def count_layers(model: torch.nn.Module) -> int:
    """The encoder's number of blocks: its config's ``num_hidden_layers``, else the highest block
    index found in the parameter names, plus one."""
    encoder = model.get_submodule("encoder" if hasattr(model, "encoder") else "model.encoder")
    layers = getattr(getattr(encoder, "config", None), "num_hidden_layers", None)
    if layers:
        return int(layers)
    indices = [int(m.group(1)) for n, _ in model.named_parameters() if (m := _BLOCK.search(n))]
    return max(indices, default=-1) + 1


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The AdamW groups: one per (part, depth, decay) with its learning rate.

    Each group carries ``encoder: bool`` (the schedule treats the encoder apart while it is frozen)
    and ``depth`` (0 = embeddings; the head has none). Biases and norms get no weight decay.
    Parameters that do not require gradients (frozen embeddings) are left out.
    """
    if config.lr is None:
        raise ConfigError("lr: not set (resolve_config gives the encoder's default)")
    lr = config.lr
    head_lr = config.head_lr or lr
    num_layers = count_layers(model)
    decay = 1.0 if config.layer_lr_decay is None else config.layer_lr_decay
    groups: dict[tuple[bool, int, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        encoder = is_encoder_param(name)
        depth = min(encoder_depth(name, num_layers), num_layers) if encoder else -1
        if decay == 1.0 and encoder:
            depth = num_layers  # one group: every depth has the same rate
        no_decay = param.ndim < 2 or "norm" in name.lower()
        groups.setdefault((encoder, depth, no_decay), []).append(param)
    return [
        {
            "params": params,
            "lr": lr * decay ** (num_layers - depth) if encoder else head_lr,
            "weight_decay": 0.0 if no_decay else config.weight_decay,
            "encoder": encoder,
            "depth": depth,
        }
        for (encoder, depth, no_decay), params in sorted(groups.items(), key=lambda g: g[0])
    ]


def freeze_embeddings(model: torch.nn.Module) -> int:
    """Stop the encoder's embeddings from training; returns how many tensors were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if is_embedding_param(name):
            param.requires_grad_(False)
            frozen += 1
    if not frozen:
        raise ConfigError("freeze_embeddings: the encoder has no parameters named *embeddings.*")
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
