"""Several processes, one job: the process group as Accelerate sees it, and launching it.

multihot does no process handling of its own. ``accelerate launch`` (or ``multihot train
--processes N``, which runs it) starts the processes; :class:`accelerate.PartialState` joins them
(gloo on a CPU, NCCL on GPUs); the training loop in :mod:`multihot.training.loop` is an Accelerate loop.
This module holds the little that sits around that: which process may write, and the command line
that launches N processes of a multihot command.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from multihot.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

# torch is imported by the functions that use it: the launch helpers and is_launched() serve the
# command line, which must start without it (ONNX prediction never loads torch).


def state():
    """The process group of this job (a group of one when nothing launched several processes).

    ``cpu=True`` on a machine without a GPU is what makes Accelerate join processes that
    ``accelerate launch`` started there, over gloo.
    """
    # heavy: torch and accelerate, which the command line starts without (see above)
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def leave(synchronize: bool = False) -> None:
    """Tear down this process's group, if it joined one, while the interpreter is still whole.

    Call it as a launched process ends. Left to interpreter shutdown, gloo's worker threads may
    still hold finished work there; the process then dies with SIGABRT ("terminate called without an
    active exception") after doing everything right, and the launcher reports the job failed
    (pytorch/pytorch#190489). The two-process prediction test hit it once in a fresh clone.

    Args:
        synchronize: wait for every process to get here first (a process that ends well: one
            tearing down while a peer still talks to the group can hit the same abort; 1 run in 4
            of that test on 2026-12-06, none in 8 with the wait). Never after an error: the peers
            may be waiting in a collective that this process will not join, and would wait here
            for ever instead of being stopped by the launcher.
    """
    import torch  # heavy: torch, which the command line starts without

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if synchronize:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def check_batch_split(batch_size: int, processes: int) -> None:
    """The global batch is cut into one equal slice per process: refuse sizes that cannot be."""
    if batch_size % processes:
        raise ConfigError(
            f"batch_size: {batch_size} texts cannot be split evenly over {processes} processes; "
            f"use a multiple of {processes}"
        )


def gather_rows(index: torch.Tensor, rows: torch.Tensor, num_rows: int, what: str) -> np.ndarray:
    """The rows every process computed, put together in order: ``(num_rows, ...)`` on each process.

    Each process passes the positions (``index``) and values (``rows``) of its own share, on its
    device. One gather collects them, padded to the longest share (padding marked by index -1).
    Every position must come back exactly once, or :class:`RuntimeError` names what went missing:
    a missing row would otherwise pass silently as zeros.
    """
    from accelerate.utils import gather, pad_across_processes  # heavy: accelerate

    group = state()
    if group.num_processes > 1:
        index = pad_across_processes(index, pad_index=-1)
        rows = pad_across_processes(rows)
        index, rows = gather((index, rows))
    positions, values = index.cpu().numpy(), rows.cpu().numpy()
    keep = positions >= 0
    positions, values = positions[keep], values[keep]
    counts = np.bincount(positions, minlength=num_rows)
    if len(counts) != num_rows or not (counts == 1).all():
        raise RuntimeError(
            f"{what}: gathered {len(positions)} rows from {group.num_processes} process(es) "
            f"for {num_rows} rows; {int((counts[:num_rows] == 0).sum())} missing, "
            f"{int((counts > 1).sum())} repeated, {max(0, len(counts) - num_rows)} out of range"
        )
    out = np.empty((num_rows, *values.shape[1:]), dtype=values.dtype)
    out[positions] = values
    return out


def share(num_rows: int) -> range:
    """This process's contiguous share of ``num_rows`` rows (shares differ by one row at most)."""
    group = state()
    rank, size = group.process_index, group.num_processes
    base, extra = divmod(num_rows, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def is_launched() -> bool:
    """True inside a process started by ``accelerate launch``/torchrun for a multi-process job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "LOCAL_RANK" in os.environ


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now, for the group's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(processes: int, args: Sequence[str], port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command that runs ``multihot ARGS`` in ``processes`` processes.

    ``--multi_gpu`` selects Accelerate's torchrun launcher; on a machine without a GPU the processes
    still join over gloo (see :func:`state`). Mixed precision is left to multihot's own
    ``--precision``. Each process gets one thread per core it can have.
    """
    threads = max(1, (os.cpu_count() or 1) // processes)
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--main_process_port",
        str(port or free_port()),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        str(threads),
        "-m",
        "multihot",
        *args,
    ]


def run_launch(command: Sequence[str]) -> int:
    """Run a launch command and return its exit code; the job stops if this process dies.

    On Linux the launcher is told to take SIGTERM when its parent goes (``PR_SET_PDEATHSIG``), even
    by SIGKILL, and it stops its workers in turn: killing ``multihot train --processes N`` does not
    leave N orphaned processes training on.
    """
    return subprocess.run(list(command), preexec_fn=_die_with_parent).returncode


def _die_with_parent() -> None:
    """In the forked child before exec: ask the kernel for SIGTERM when the parent exits."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
