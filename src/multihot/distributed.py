"""Several processes, one job: the process group as Accelerate sees it, and launching it.

multihot does no process handling of its own. ``accelerate launch`` (or ``multihot train
--processes N``, which runs it) starts the processes; :class:`accelerate.PartialState` joins them
(gloo on a CPU, NCCL on GPUs); the training loop in :mod:`multihot.training` is an Accelerate loop.
This module holds the little that sits around that: which process may write, and the command line
that launches N processes of a multihot command.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence

import torch


def state():
    """The process group of this job (a group of one when nothing launched several processes).

    ``cpu=True`` on a machine without a GPU is what makes Accelerate join processes that
    ``accelerate launch`` started there, over gloo.
    """
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def check_batch_split(batch_size: int, processes: int) -> None:
    """The global batch is cut into one equal slice per process: refuse sizes that cannot be."""
    from multihot.errors import ConfigError

    if batch_size % processes:
        raise ConfigError(
            f"batch_size: {batch_size} texts cannot be split evenly over {processes} processes; "
            f"use a multiple of {processes}"
        )


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
