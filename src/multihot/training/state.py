"""The loop state: everything a training run has to carry over a kill to go on exactly as it would
have.

:class:`LoopState` is the only thing a checkpoint writes and the only thing resuming reads
(:class:`multihot.training.checkpoint.TrainingCheckpoint`). Each field says how it is kept, so
adding a piece of state (a second random generator, say) is one field here, built where the run's
objects are built (:mod:`multihot.training.setup`): the checkpoint saves and restores it by its
kind, and nothing else learns of it.

Resuming is :func:`epoch_batches`: the batches of the epoch the checkpoint was taken in that were
not trained on yet, with every random state put back at the moment the uninterrupted run went on.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

# How a field is kept (``metadata["kept"]``); see multihot.training.checkpoint for the files.
COUNTER = "counter"
"""A number or flag, in the JSON part."""
RECORD = "record"
"""A JSON value (records of evaluations), in the JSON part."""
WEIGHTS = "weights"
"""A ``{name: tensor}`` dict, in the tensors part."""
ARRAY = "array"
"""A numpy array or None, in the tensors part."""
MODULE = "module"
"""A module (or EMA) restored in place: its state dict in the tensors part."""
OPTIMIZER = "optimizer"
"""An optimizer restored in place: moments in the tensors part, the rest in the JSON part."""
SETTINGS = "settings"
"""An object with a JSON-able ``state_dict`` (a schedule, a loss scaler), restored in place."""
GENERATOR = "generator"
"""A ``torch.Generator``: one state per process, restored when the run goes on
(:func:`epoch_batches`), as the process-wide generators are."""


def kept(how: str, default: Any = None, *, key: str | None = None, factory=None) -> Any:
    """A :class:`LoopState` field kept ``how``, saved under ``key`` (default: its name)."""
    metadata = {"kept": how, "key": key}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class LoopState:
    """Where a training run is, what it has kept, and the objects it trains (by reference).

    The loop (:func:`multihot.training.loop.train_steps`) advances the position and the trained
    objects; the session (:class:`multihot.training.session.TrainingSession`) keeps the history,
    the best evaluation and early stopping's count.
    """

    # Where the loop is.
    step: int = kept(COUNTER, 0)
    """Optimiser steps done."""
    epoch: int = kept(COUNTER, 0)
    """The epoch to go on with."""
    batch: int = kept(COUNTER, 0)
    """Batches of that epoch already trained on (0: it has not started)."""
    seen: int = kept(COUNTER, 0)
    """Training texts seen, all processes (the throughput shown)."""
    seconds: float = kept(COUNTER, 0.0)
    """Training time so far."""
    # What the session keeps.
    stale: int = kept(COUNTER, 0)
    """Evaluations without improvement (early stopping)."""
    stopped: bool = kept(COUNTER, False)
    """Early stopping has ended the run."""
    history: list[dict[str, Any]] = kept(RECORD, factory=list)
    """One record per evaluation."""
    best: dict[str, Any] = kept(RECORD, factory=dict)
    """The record of the best evaluation."""
    best_weights: dict[str, torch.Tensor] = kept(WEIGHTS, key="best", factory=dict)
    """The weights at the best evaluation, on the CPU."""
    best_probs: np.ndarray | None = kept(ARRAY, key="best_val_probs")
    """The validation probabilities at the best evaluation."""
    # What is trained, restored in place.
    net: torch.nn.Module | None = kept(MODULE)
    """The module trained (unwrapped): the model, or the model with its MLM head."""
    optimizer: Any = kept(OPTIMIZER)
    scheduler: Any = kept(SETTINGS)
    ema: AveragedModel | None = kept(MODULE)
    """The moving average of the weights (``ema_decay``), or None."""
    scaler: Any = kept(SETTINGS)
    """fp16's gradient scaler, or None."""
    masking: torch.Generator | None = kept(GENERATOR)
    """The generator that picks the tokens masked (``mask_prob``), or None."""
    # Set by a restore, used once by epoch_batches; never saved.
    resumed_rng: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def kept_fields(self, how: str) -> dict[str, Any]:
        """``{key: value}`` of the fields kept ``how`` (those that are None left out, but for
        counters)."""
        out = {}
        for f in fields(self):
            if f.metadata.get("kept") == how:
                value = getattr(self, f.name)
                if value is not None or how == COUNTER:
                    out[f.metadata.get("key") or f.name] = value
        return out

    @classmethod
    def kept_keys(cls, how: str) -> list[str]:
        """The keys of the fields kept ``how``, set or not."""
        return [
            f.metadata.get("key") or f.name for f in fields(cls) if f.metadata.get("kept") == how
        ]

    def set_kept(self, how: str, values: dict[str, Any]) -> None:
        """Set the fields kept ``how`` from ``{key: value}`` (keys absent are left as they are)."""
        for f in fields(self):
            key = f.metadata.get("key") or f.name
            if f.metadata.get("kept") == how and key in values:
                setattr(self, f.name, values[key])


# ------------------------------------------------------------------------- the random generators
def rng_states(state: LoopState, device: torch.device) -> dict[str, torch.Tensor]:
    """This process's generator states: torch's (and CUDA's) and the state's own generators."""
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    for key, generator in state.kept_fields(GENERATOR).items():
        states[key] = generator.get_state()
    return states


def host_rng() -> dict[str, Any]:
    """Python's and numpy's generator states (the main process's), as JSON."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy = [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)]
    return {"python": random.getstate(), "numpy": numpy}


def restore_rng(state: LoopState, device: torch.device) -> None:
    """Put back the generator states a restore read (``state.resumed_rng``), once."""
    rng, state.resumed_rng = state.resumed_rng, None
    if rng is None:
        return
    rows = rng["rows"]
    torch.set_rng_state(rows["torch"])
    if "cuda" in rows and device.type == "cuda":
        torch.cuda.set_rng_state(rows["cuda"], device)
    for key, generator in state.kept_fields(GENERATOR).items():
        if key in rows:
            generator.set_state(rows[key])
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def epoch_batches(state: LoopState, accelerator, loader) -> Iterable:
    """The batches of the epoch to train on: all of them, or after a restore, those after the
    first ``state.batch``, with every generator put back at the moment the uninterrupted run went
    on from the checkpoint.

    Making a data loader iterator draws a seed from torch's generator, at its first batch. At an
    epoch's start the uninterrupted run made its iterator after the checkpoint: restore, then
    iterate. Mid-epoch it had made it before: make the iterator, take its first batch, restore.
    """
    if state.resumed_rng is None:
        return loader
    if state.batch == 0:
        restore_rng(state, accelerator.device)
        return loader
    rest = iter(accelerator.skip_first_batches(loader, state.batch))
    first = next(rest, None)
    restore_rng(state, accelerator.device)
    return rest if first is None else itertools.chain([first], rest)
