"""Checkpoints: the training state on disk, so that a killed run continues where it stopped.

While a run trains into ``RUN``, and until the final save replaces that directory whole, it holds:

```
RUN/checkpoints/
  run.json            what resuming needs: the resolved config, the data files, fingerprints of
                      the data and the tokenizer
  member-0/last/      member 0's training state at its latest evaluation:
    state.json          step, place in the epoch, early-stopping count, history, best record,
                        scheduler, optimizer settings, python and numpy RNG states
    state.safetensors   weights, optimizer moments, EMA and best weights, the best validation
                        probabilities, torch RNG states (one row per process)
  member-0/result/    member 0's best weights, validation probabilities and history, once done
  member-1/ ...       the next member of an ensemble (members train one after another)
```

Nothing is pickled: tensors go to safetensors files, everything else to JSON, and loading reads
those two files by name and nothing else (a ``.bin`` or ``.pt`` dropped in is never opened). Every
directory is written by :func:`multihot.core.files.write_dir_atomic`, so a kill at any moment leaves
either the previous complete state or the new one.

Restoring every RNG state at the moment the uninterrupted run would have used it (see
:meth:`TrainingCheckpoint.batches`) makes a resumed run draw the same dropout and masking noise,
so on a CPU in fp32 it ends with exactly the weights of a run that was never killed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from multihot.artifacts.rundir import CHECKPOINTS, CONFIG, read_json
from multihot.core import distributed
from multihot.core.config import RunConfig
from multihot.core.errors import MultihotError, RunDirError
from multihot.core.files import remove_leftovers, write_atomic, write_dir_atomic
from multihot.training.result import TrainResult

if TYPE_CHECKING:
    from multihot.training.result import TrainResult

logger = logging.getLogger(__name__)

FORMAT = 1
STATE_JSON, STATE_TENSORS = "state.json", "state.safetensors"


def _dumps(obj: Any) -> str:
    # Plain json, not run.dumps: NaN and infinities in history records must come back as they were.
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def _read_state(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and the tensors of a state directory (safetensors and json only, never a pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_json(directory / STATE_JSON)
    if meta.get("format") != FORMAT:
        raise RunDirError(
            f"{directory / STATE_JSON}: unknown checkpoint format {meta.get('format')!r}"
        )
    try:
        tensors = load_file(directory / STATE_TENSORS, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise RunDirError(
            f"{directory / STATE_TENSORS}: cannot read ({str(err).splitlines()[0][:200]})"
        ) from None
    return meta, tensors


def _write_state(directory: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    def fill(tmp: Path) -> None:
        save_file(_own_storage(tensors), tmp / STATE_TENSORS)
        write_atomic(tmp / STATE_JSON, _dumps({"format": FORMAT, **meta}))

    write_dir_atomic(directory, fill)


def _own_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, none sharing memory with another (safetensors refuses that)."""
    out, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if pointer in seen and tensor.numel() else tensor
        seen.add(pointer)
    return out


def _with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in tensors.items()}


def _best_tensors(result: TrainResult) -> dict[str, torch.Tensor]:
    """A result's best weights and its validation probabilities there, as tensors to save."""
    tensors = _prefixed("best/", result.state_dict)
    if result.val_probs is not None:
        tensors["best_val_probs"] = torch.from_numpy(np.ascontiguousarray(result.val_probs))
    return tensors


def _best_arrays(
    tensors: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], np.ndarray | None]:
    """What :func:`_best_tensors` saved: ``(best weights, validation probabilities or None)``."""
    probs = tensors.get("best_val_probs")
    return _with_prefix(tensors, "best/"), None if probs is None else probs.numpy()


def optimizer_to_files(optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An optimizer's state as ``(JSON part, tensors)``: the tensors (moments) keyed
    ``"{param index}/{name}"``, everything else (step counts that are numbers, param groups) in
    the JSON part, so nothing needs pickling."""
    state = optimizer.state_dict()
    meta: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{name}"] = value
            else:
                meta["state"].setdefault(str(index), {})[name] = value
    return meta, tensors


def optimizer_from_files(optimizer, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Load what :func:`optimizer_to_files` wrote into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta["state"].items():
        state.setdefault(int(index), {}).update(values)
    groups = meta["param_groups"]
    for saved, current in zip(groups, optimizer.param_groups, strict=False):
        for key, value in saved.items():  # JSON has lists where the optimizer has tuples
            if isinstance(current.get(key), tuple):
                saved[key] = tuple(value)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ------------------------------------------------------------------------- one training run: fit
@dataclass
class Position:
    """Where a checkpoint was taken, and the counters :func:`multihot.training.loop.fit` keeps."""

    step: int
    """Optimiser steps done."""
    epoch: int
    """The epoch to continue."""
    batch: int
    """Batches of that epoch already trained on (0: the epoch has not started)."""
    stale: int
    """Evaluations without improvement (early stopping)."""
    stopped: bool
    """Early stopping had ended the run."""
    seen: int = 0
    """Training texts seen (for the throughput shown)."""
    seconds: float = 0.0
    """Training time before the checkpoint."""
    rng: dict[str, Any] = field(default_factory=dict, repr=False)


class TrainingCheckpoint:
    """Saves and restores everything :func:`multihot.training.loop.fit` needs to continue a run exactly.

    The model's (unwrapped) weights, the optimizer and scheduler states, the EMA weights, the best
    weights with their validation probabilities, the history, the counters, and the RNG states:
    torch's CPU and CUDA generators and the masking generator of every process, python's and
    numpy's of the main process (the loop does not use those two). Only the main process writes;
    every process must call :meth:`save`, which gathers the RNG states.

    Example:
        >>> ckpt = TrainingCheckpoint("runs/x/checkpoints/member-0/last", accelerator, net=net,
        ...     optimizer=optimizer, scheduler=scheduler, steps_per_epoch=100)  # doctest: +SKIP
        >>> ckpt.save(result, step=50, stale=0, stopped=False)  # doctest: +SKIP
        >>> at = ckpt.restore(result); batches = ckpt.batches(accelerator, loader, at)  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: str | Path,
        accelerator,
        *,
        net: torch.nn.Module,
        optimizer,
        scheduler,
        steps_per_epoch: int,
        grad_accum: int = 1,
        ema: torch.nn.Module | None = None,
        generator: torch.Generator | None = None,
    ):
        self.directory = Path(directory)
        self.accelerator = accelerator
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        self.ema, self.generator = ema, generator
        self.steps_per_epoch, self.grad_accum = steps_per_epoch, grad_accum

    @staticmethod
    def supported(accelerator) -> bool:
        """DDP and single processes keep whole weights and optimizer states in every process;
        FSDP, DeepSpeed and Megatron shard them, which these checkpoints do not handle."""
        return accelerator.distributed_type.name not in ("FSDP", "DEEPSPEED", "MEGATRON_LM")

    # ------------------------------------------------------------------------------------ save
    def save(
        self,
        result: TrainResult,
        *,
        step: int,
        stale: int,
        stopped: bool,
        seen: int = 0,
        seconds: float = 0.0,
    ) -> None:
        """Write the state after an evaluation at ``step`` (``result``: its best and history)."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        rng_rows = self._gather_rng()  # every process takes part
        if accelerator.is_main_process:
            epoch, within = divmod(step, self.steps_per_epoch)
            meta = {
                "step": step,
                "epoch": epoch,
                # Accelerate steps the optimizer every grad_accum batches and at an epoch's end.
                "batch": within * self.grad_accum,
                "stale": stale,
                "stopped": stopped,
                "seen": seen,
                "seconds": seconds,
                "steps_per_epoch": self.steps_per_epoch,
                "num_processes": accelerator.num_processes,
                "history": result.history,
                "best": result.best,
                "scheduler": self.scheduler.state_dict(),
                "scaler": accelerator.scaler.state_dict() if accelerator.scaler else None,
                "rng": {"python": random.getstate(), "numpy": _numpy_state()},
            }
            tensors = {
                **_prefixed("net/", accelerator.unwrap_model(self.net).state_dict()),
                **_best_tensors(result),
                **_prefixed("rng/", rng_rows),
            }
            if self.ema is not None:
                tensors.update(_prefixed("ema/", self.ema.state_dict()))
            meta["optimizer"], optimizer_tensors = optimizer_to_files(self.optimizer)
            tensors.update(_prefixed("optimizer/", optimizer_tensors))
            remove_leftovers(self.directory)
            _write_state(self.directory, meta, tensors)
            logger.debug("checkpoint at step %d in %s", step, self.directory)
        accelerator.wait_for_everyone()

    def _rng_states(self) -> dict[str, torch.Tensor]:
        states = {"torch": torch.get_rng_state()}
        if self.accelerator.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.accelerator.device)
        if self.generator is not None:
            states["masking"] = self.generator.get_state()
        return states

    def _gather_rng(self) -> dict[str, torch.Tensor]:
        """Each RNG state as a ``(num_processes, state_size)`` tensor, row ``i`` from process ``i``."""
        states = self._rng_states()
        if self.accelerator.num_processes == 1:
            return {k: v[None] for k, v in states.items()}
        device = self.accelerator.device
        return {
            k: self.accelerator.gather(v.to(device, torch.int64)[None]).to("cpu", torch.uint8)
            for k, v in states.items()
        }

    # --------------------------------------------------------------------------------- restore
    def restore(self, result: TrainResult) -> Position:
        """Load the state into the model, optimizer, scheduler, EMA and ``result``; the RNG states
        are restored later, by :meth:`batches`. Returns where to continue."""
        accelerator = self.accelerator
        meta, tensors = _read_state(self.directory)
        if meta["num_processes"] != accelerator.num_processes:
            raise RunDirError(
                f"{self.directory}: saved by a run of {meta['num_processes']} processes; resume it "
                f"with the same number (this one has {accelerator.num_processes})"
            )
        if meta["steps_per_epoch"] != self.steps_per_epoch:
            raise RunDirError(
                f"{self.directory}: saved with {meta['steps_per_epoch']} steps per epoch, but the "
                f"data and batch size now give {self.steps_per_epoch}; resume with the same ones"
            )
        try:
            accelerator.unwrap_model(self.net).load_state_dict(_with_prefix(tensors, "net/"))
            if self.ema is not None:
                self.ema.load_state_dict(_with_prefix(tensors, "ema/"))
            optimizer_from_files(
                self.optimizer, meta["optimizer"], _with_prefix(tensors, "optimizer/")
            )
        except (RuntimeError, KeyError, ValueError) as err:
            raise RunDirError(
                f"{self.directory}: does not fit this model ({str(err).splitlines()[0][:200]})"
            ) from None
        self.scheduler.load_state_dict(meta["scheduler"])
        if accelerator.scaler is not None and meta["scaler"]:
            accelerator.scaler.load_state_dict(meta["scaler"])
        result.history = meta["history"]
        result.best = meta["best"]
        result.state_dict, result.val_probs = _best_arrays(tensors)
        rank = accelerator.process_index
        # A copy of the row: torch reads an RNG state from the start of its storage, not the view's.
        rows = {k: v[rank].clone() for k, v in _with_prefix(tensors, "rng/").items()}
        rng = {"torch_rows": rows}
        rng.update(meta["rng"])
        return Position(
            step=meta["step"],
            epoch=meta["epoch"],
            batch=meta["batch"],
            stale=meta["stale"],
            stopped=meta["stopped"],
            seen=meta["seen"],
            seconds=meta["seconds"],
            rng=rng,
        )

    def batches(self, accelerator, loader, at: Position) -> Iterable:
        """The batches of epoch ``at.epoch`` after the first ``at.batch``, with every RNG state set
        back to the checkpoint's at the moment the uninterrupted run went on from it.

        Making a data loader iterator draws a seed from torch's generator, at its first batch. At an
        epoch's start the uninterrupted run made its iterator after the checkpoint: restore, then
        iterate. Mid-epoch it had made it before: make the iterator, take its first batch, restore.
        """
        if at.batch == 0:
            self._restore_rng(at.rng)
            return loader
        rest = iter(accelerator.skip_first_batches(loader, at.batch))
        first = next(rest, None)
        self._restore_rng(at.rng)
        return rest if first is None else itertools.chain([first], rest)

    def _restore_rng(self, rng: dict[str, Any]) -> None:
        rows = rng["torch_rows"]
        torch.set_rng_state(rows["torch"])
        if "cuda" in rows and self.accelerator.device.type == "cuda":
            torch.cuda.set_rng_state(rows["cuda"], self.accelerator.device)
        if self.generator is not None and "masking" in rows:
            self.generator.set_state(rows["masking"])
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(vocab.encode("utf-8", "surrogatepass")).hexdigest()


class RunCheckpoints:
    """``RUN/checkpoints``: how to resume a run, and the state of each ensemble member.

    Written by the main process only; the methods that write are no-ops elsewhere and wait for it.
    """

    def __init__(self, run: str | Path):
        self.run = Path(run)
        self.directory = self.run / CHECKPOINTS

    def exists(self) -> bool:
        return (self.directory / "run.json").exists()

    def refuse_unfinished(self) -> None:
        """A fresh run must not silently throw away the training of an interrupted one."""
        if self.directory.exists():
            raise RunDirError(
                f"{self.run}: holds an unfinished training run; continue it with "
                f"'multihot train --resume {self.run}', or delete the directory to start again"
            )
        _wait()  # every process looks before the main one writes (:meth:`start`)

    def start(self, invocation: dict[str, Any]) -> None:
        """Record how to resume (config, data sources, fingerprints), all at once."""
        if _is_main():
            write_dir_atomic(
                self.directory, lambda tmp: write_atomic(tmp / "run.json", _dumps(invocation))
            )
        _wait()

    def invocation(self) -> dict[str, Any]:
        """What :meth:`start` recorded; :class:`RunDirError` when there is nothing to resume.

        First puts back, or deletes, what a kill during the final save left beside the run.
        """
        if _is_main():
            remove_leftovers(self.run)
        _wait()
        if not self.run.is_dir():
            raise RunDirError(f"{self.run}: no such run directory")
        if not self.exists():
            if (self.run / CONFIG).exists():
                raise RunDirError(f"{self.run}: the run is complete; there is nothing to resume")
            raise RunDirError(
                f"{self.run}: no checkpoint to resume from (the run was stopped before it "
                f"recorded one); start it again"
            )
        return read_json(self.directory / "run.json")

    def config(self, saved: dict[str, Any] | None = None) -> RunConfig:
        """The :class:`multihot.core.config.RunConfig` the run started with (read from ``saved``, what
        :meth:`invocation` returned, when the caller has it already)."""
        saved = self.invocation() if saved is None else saved
        try:
            return RunConfig.from_dict(
                saved.get("config") or {}, source=str(self.directory / "run.json")
            )
        except MultihotError as err:
            raise RunDirError(str(err)) from None

    def member_state(self, member: int) -> Path:
        """Where :class:`TrainingCheckpoint` keeps member ``member``'s state while it trains."""
        return self.directory / f"member-{member}" / "last"

    def has_state(self, member: int) -> bool:
        """Whether member ``member`` has a training state to continue from."""
        state = self.member_state(member)
        if _is_main():
            remove_leftovers(state)  # puts back a state a kill left beside its place
        _wait()
        return (state / STATE_JSON).exists()

    def save_member(self, member: int, result: TrainResult) -> None:
        """Keep a finished member's outcome; its training state is then no longer needed."""
        if _is_main():
            meta = {
                "best": result.best,
                "history": result.history,
                "stopped_early": result.stopped_early,
                "precision": result.precision,
            }
            _write_state(self._result(member), meta, _best_tensors(result))
            remove_leftovers(self.member_state(member))
            shutil.rmtree(self.member_state(member), ignore_errors=True)
        _wait()

    def load_member(self, member: int) -> TrainResult | None:
        """A finished member's :class:`multihot.training.loop.TrainResult`, or None if not finished."""
        directory = self._result(member)
        if not (directory / STATE_JSON).exists():
            return None
        meta, tensors = _read_state(directory)
        state_dict, val_probs = _best_arrays(tensors)
        return TrainResult(
            state_dict=state_dict,
            best=meta["best"],
            history=meta["history"],
            val_probs=val_probs,
            stopped_early=meta["stopped_early"],
            precision=meta["precision"],
        )

    def _result(self, member: int) -> Path:
        return self.directory / f"member-{member}" / "result"


def _is_main() -> bool:
    return distributed.state().is_main_process


def _wait() -> None:
    distributed.state().wait_for_everyone()
