"""Checkpoints: the training state on disk, so that a killed run continues where it stopped.

While a run trains into ``RUN``, and until the final save replaces that directory whole, it holds:

```
RUN/checkpoints/
  run.json            what resuming needs: the resolved config, the data files, fingerprints of
                      the data and the tokenizer
  member-0/last/      member 0's loop state (multihot.training.state.LoopState) at its latest
                      evaluation:
    state.json          counters (step, place in the epoch, early stopping), history, best
                        record, schedule, optimizer settings, python and numpy RNG states
    state.safetensors   weights, optimizer moments, EMA and best weights, the best validation
                        probabilities, every generator's state (one row per process)
  member-0/result/    member 0's best weights, validation probabilities and history, once done
  member-1/ ...       the next member of an ensemble (members train one after another)
```

Nothing is pickled: tensors go to safetensors files, everything else to JSON, and loading reads
those two files by name and nothing else (a ``.bin`` or ``.pt`` dropped in is never opened). Every
directory is written by :func:`multihot.core.files.write_dir_atomic`, so a kill at any moment leaves
either the previous complete state or the new one.

Restoring every RNG state at the moment the uninterrupted run would have used it (see
:func:`multihot.training.state.epoch_batches`) makes a resumed run draw the same dropout and masking noise,
so on a CPU in fp32 it ends with exactly the weights of a run that was never killed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from multihot.artifacts.rundir import (
    CHECKPOINT_RUN,
    CHECKPOINTS,
    CONFIG,
    MEMBER_PREFIX,
    MEMBER_RESULT,
    MEMBER_STATE,
    STATE_JSON,
    STATE_TENSORS,
    read_json,
)
from multihot.core import distributed
from multihot.core.config import RunConfig
from multihot.core.errors import MultihotError, RunDirError
from multihot.core.files import leftovers, remove_leftovers, write_atomic, write_dir_atomic
from multihot.data.readers import Dataset
from multihot.training.result import TrainResult
from multihot.training.state import (
    ARRAY,
    COUNTER,
    MODULE,
    OPTIMIZER,
    RECORD,
    SETTINGS,
    WEIGHTS,
    LoopState,
    host_rng,
    rng_states,
)

logger = logging.getLogger(__name__)

FORMAT = 1


def _dumps(obj: Any) -> str:
    # Plain json, not run.dumps: NaN and infinities in history records must come back as they were.
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def _read_state(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and the tensors of a state directory (safetensors and json only, never a pickle)."""
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


def _data_tensors(state: LoopState) -> dict[str, torch.Tensor]:
    """The state's weights and arrays (the best evaluation's), as tensors to save."""
    tensors: dict[str, torch.Tensor] = {}
    for key, weights in state.kept_fields(WEIGHTS).items():
        tensors.update(_prefixed(f"{key}/", weights))
    for key, array in state.kept_fields(ARRAY).items():
        tensors[key] = torch.from_numpy(np.ascontiguousarray(array))
    return tensors


def _set_data(state: LoopState, tensors: dict[str, torch.Tensor]) -> None:
    """Put back what :func:`_data_tensors` saved."""
    state.set_kept(
        WEIGHTS, {key: _with_prefix(tensors, f"{key}/") for key in state.kept_keys(WEIGHTS)}
    )
    state.set_kept(
        ARRAY, {key: tensors[key].numpy() for key in state.kept_keys(ARRAY) if key in tensors}
    )


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
class TrainingCheckpoint:
    """Writes a :class:`multihot.training.state.LoopState` to a directory and reads it back.

    Each field goes where its kind says (:mod:`multihot.training.state`): counters and records to
    ``state.json``; weights, arrays, modules' and optimizers' tensors to ``state.safetensors``;
    every generator's state, one row per process; python's and numpy's of the main process (the
    loop does not use those two). Only the main process writes; every process must call
    :meth:`save`, which gathers the generator states.

    Example:
        >>> ckpt = TrainingCheckpoint("runs/x/checkpoints/member-0/last", accelerator,
        ...     steps_per_epoch=100)  # doctest: +SKIP
        >>> ckpt.save(state)  # doctest: +SKIP
        >>> ckpt.restore(state); batches = epoch_batches(state, accelerator, loader)  # doctest: +SKIP
    """

    def __init__(self, directory: str | Path, accelerator, *, steps_per_epoch: int):
        self.directory = Path(directory)
        self.accelerator = accelerator
        self.steps_per_epoch = steps_per_epoch

    @staticmethod
    def supported(accelerator) -> bool:
        """DDP and single processes keep whole weights and optimizer states in every process;
        FSDP, DeepSpeed and Megatron shard them, which these checkpoints do not handle."""
        return accelerator.distributed_type.name not in ("FSDP", "DEEPSPEED", "MEGATRON_LM")

    # ------------------------------------------------------------------------------------ save
    def save(self, state: LoopState) -> None:
        """Write ``state`` (after an evaluation)."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        rng_rows = self._gather_rng(state)  # every process takes part
        if accelerator.is_main_process:
            meta, tensors = self._to_files(state)
            tensors.update(_prefixed("rng/", rng_rows))
            remove_leftovers(self.directory)
            _write_state(self.directory, meta, tensors)
            logger.debug("checkpoint at step %d in %s", state.step, self.directory)
        accelerator.wait_for_everyone()

    def _to_files(self, state: LoopState) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The state as ``(JSON part, tensors)``, each field by its kind."""
        unwrap = self.accelerator.unwrap_model
        meta: dict[str, Any] = {
            **state.kept_fields(COUNTER),
            **state.kept_fields(RECORD),
            "steps_per_epoch": self.steps_per_epoch,
            "num_processes": self.accelerator.num_processes,
            "rng": host_rng(),
        }
        tensors = _data_tensors(state)
        for key, module in state.kept_fields(MODULE).items():
            tensors.update(_prefixed(f"{key}/", unwrap(module).state_dict()))
        for key, optimizer in state.kept_fields(OPTIMIZER).items():
            meta[key], moments = optimizer_to_files(optimizer)
            tensors.update(_prefixed(f"{key}/", moments))
        for key, settings in state.kept_fields(SETTINGS).items():
            meta[key] = settings.state_dict()
        return meta, tensors

    def _gather_rng(self, state: LoopState) -> dict[str, torch.Tensor]:
        """Each generator state as a ``(num_processes, size)`` tensor, row ``i`` from process ``i``."""
        states = rng_states(state, self.accelerator.device)
        if self.accelerator.num_processes == 1:
            return {k: v[None] for k, v in states.items()}
        device = self.accelerator.device
        return {
            k: self.accelerator.gather(v.to(device, torch.int64)[None]).to("cpu", torch.uint8)
            for k, v in states.items()
        }

    # --------------------------------------------------------------------------------- restore
    def restore(self, state: LoopState) -> None:
        """Load the saved state into ``state`` and the objects it holds. The generator states are
        put back when the run goes on (:func:`multihot.training.state.epoch_batches`)."""
        meta, tensors = _read_state(self.directory)
        self._check_same_run(meta)
        self._load_objects(state, meta, tensors)
        state.set_kept(COUNTER, meta)
        state.set_kept(RECORD, meta)
        _set_data(state, tensors)
        rank = self.accelerator.process_index
        # A copy of the row: torch reads an RNG state from the start of its storage, not the view's.
        rows = {k: v[rank].clone() for k, v in _with_prefix(tensors, "rng/").items()}
        state.resumed_rng = {"rows": rows, **meta["rng"]}

    def _check_same_run(self, meta: dict[str, Any]) -> None:
        processes = self.accelerator.num_processes
        if meta["num_processes"] != processes:
            raise RunDirError(
                f"{self.directory}: saved by a run of {meta['num_processes']} processes; resume it "
                f"with the same number (this one has {processes})"
            )
        if meta["steps_per_epoch"] != self.steps_per_epoch:
            raise RunDirError(
                f"{self.directory}: saved with {meta['steps_per_epoch']} steps per epoch, but the "
                f"data and batch size now give {self.steps_per_epoch}; resume with the same ones"
            )

    def _load_objects(self, state: LoopState, meta: dict[str, Any], tensors) -> None:
        """Restore the modules, optimizers and settings ``state`` holds, in place."""
        unwrap = self.accelerator.unwrap_model
        try:
            for key, module in state.kept_fields(MODULE).items():
                unwrap(module).load_state_dict(_with_prefix(tensors, f"{key}/"))
            for key, optimizer in state.kept_fields(OPTIMIZER).items():
                optimizer_from_files(optimizer, meta[key], _with_prefix(tensors, f"{key}/"))
        except (RuntimeError, KeyError, ValueError) as err:
            raise RunDirError(
                f"{self.directory}: does not fit this model ({str(err).splitlines()[0][:200]})"
            ) from None
        for key, settings in state.kept_fields(SETTINGS).items():
            if meta.get(key) is not None:
                settings.load_state_dict(meta[key])


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(vocab.encode("utf-8", "surrogatepass")).hexdigest()


def recorded_inputs(train, val, data_sha256: str, tokenizer) -> dict[str, Any]:
    """What resuming checks besides the config: the data files (absolute paths, so a run resumes
    from any directory; None for data given in memory) and fingerprints of data and tokenizer."""
    return {
        "train": _source(train),
        "val": _source(val),
        "in_memory": isinstance(train, Dataset) or isinstance(val, Dataset),
        "data_sha256": data_sha256,
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
    }


def _source(data) -> str | None:
    return None if data is None or isinstance(data, Dataset) else str(Path(data).resolve())


class RunCheckpoints:
    """``RUN/checkpoints``: how to resume a run, and the state of each ensemble member.

    Written by the main process only; the methods that write are no-ops elsewhere and wait for it.
    """

    def __init__(self, run: str | Path):
        self.run = Path(run)
        self.directory = self.run / CHECKPOINTS

    def exists(self) -> bool:
        return (self.directory / CHECKPOINT_RUN).exists()

    def refuse_unfinished(self) -> None:
        """A fresh run must not silently throw away the training of an interrupted one.

        Checkpoints with nothing to continue from (no member's state, no finished member: the run
        failed or was killed before its first checkpoint, say on a bad setting or out of memory in
        its first step) hold no training, so a fresh run replaces them (:meth:`start`). Accepting
        them here rather than deleting them when a run fails also covers a kill, which runs no
        cleanup, and keeps them while the failed run could still be resumed.
        """
        if self.directory.exists():
            if self.resumable():
                raise RunDirError(
                    f"{self.run}: holds an unfinished training run; continue it with "
                    f"'multihot train --resume {self.run}', or delete the directory to start again"
                )
            logger.info(
                "%s: replacing the checkpoints of a run that stopped before its first checkpoint "
                "(nothing to resume)",
                self.run,
            )
        _wait()  # every process looks before the main one writes (:meth:`start`)

    def resumable(self) -> bool:
        """Whether some member has training to continue from: a state, a finished result, or
        either of them beside its place (what a kill in the middle of replacing it leaves)."""
        for member in self.directory.glob(f"{MEMBER_PREFIX}*"):
            for name in (MEMBER_STATE, MEMBER_RESULT):
                if (member / name / STATE_JSON).exists() or leftovers(member / name, "old-*"):
                    return True
        return False

    def start(self, invocation: dict[str, Any]) -> None:
        """Record how to resume (config, data sources, fingerprints), all at once."""
        if _is_main():
            write_dir_atomic(
                self.directory, lambda tmp: write_atomic(tmp / CHECKPOINT_RUN, _dumps(invocation))
            )
        _wait()

    def check_same_inputs(self, saved: dict[str, Any], now: dict[str, Any]) -> None:
        """Refuse to resume on other data or with another tokenizer than the run recorded."""
        if saved.get("data_sha256") != now["data_sha256"]:
            raise RunDirError(
                f"{self.run}: the training or validation data differ from the interrupted "
                f"run's (recorded: train {saved.get('train')}, val {saved.get('val')}); resume "
                f"with the same data"
            )
        if saved.get("tokenizer_sha256") != now["tokenizer_sha256"]:
            raise RunDirError(
                f"{self.run}: the tokenizer built now differs from the interrupted run's "
                f"(another encoder directory, or another tokenizers version?); it cannot be resumed"
            )

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
        return read_json(self.directory / CHECKPOINT_RUN)

    def config(self, saved: dict[str, Any] | None = None) -> RunConfig:
        """The :class:`multihot.core.config.RunConfig` the run started with (read from ``saved``, what
        :meth:`invocation` returned, when the caller has it already)."""
        saved = self.invocation() if saved is None else saved
        try:
            return RunConfig.from_saved(
                saved.get("config") or {}, source=str(self.directory / CHECKPOINT_RUN)
            )
        except MultihotError as err:
            raise RunDirError(str(err)) from None

    def member_state(self, member: int) -> Path:
        """Where :class:`TrainingCheckpoint` keeps member ``member``'s state while it trains."""
        return self.directory / f"{MEMBER_PREFIX}{member}" / MEMBER_STATE

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
            # The best weights and probabilities as a loop state keeps them.
            best = LoopState(best_weights=result.state_dict, best_probs=result.val_probs)
            _write_state(self._result(member), meta, _data_tensors(best))
            remove_leftovers(self.member_state(member))
            shutil.rmtree(self.member_state(member), ignore_errors=True)
        _wait()

    def load_member(self, member: int) -> TrainResult | None:
        """A finished member's :class:`multihot.training.result.TrainResult`, or None if not finished."""
        directory = self._result(member)
        if not (directory / STATE_JSON).exists():
            return None
        meta, tensors = _read_state(directory)
        best = LoopState()
        _set_data(best, tensors)
        return TrainResult(
            state_dict=best.best_weights,
            best=meta["best"],
            history=meta["history"],
            val_probs=best.best_probs,
            stopped_early=meta["stopped_early"],
            precision=meta["precision"],
        )

    def _result(self, member: int) -> Path:
        return self.directory / f"{MEMBER_PREFIX}{member}" / MEMBER_RESULT


def _is_main() -> bool:
    return distributed.state().is_main_process


def _wait() -> None:
    distributed.state().wait_for_everyone()
