"""How many CPU threads this process computes with: one setting for torch and the ONNX backend.

The thread count is part of what a forward pass computes, not only how fast: torch's CPU kernels
split their sums over the threads, so the same texts on 1 and on 2 threads give probabilities that
differ in their last bits in fp32 and by up to about 0.01 in bf16 (MiniLM on an AMX Xeon, 57 of
3,000 texts). Two jobs give byte-identical output only on the same thread count; ``predict
--threads`` and ``--engine ray`` actors take it from here.

Nothing here imports torch: the ONNX path runs without it.
"""

from __future__ import annotations

import os
import sys

from multihot.core.errors import ConfigError

_threads: int | None = None
"""The count :func:`set_threads` chose for this process, if it was called."""


def set_threads(threads: int) -> None:
    """Compute on ``threads`` CPU threads in this process: torch's intra-operator threads (now
    if torch is loaded, else when it loads, by way of ``OMP_NUM_THREADS``) and the batches the
    ONNX backend runs at once (:func:`available_cores`)."""
    global _threads
    if threads < 1:
        raise ConfigError(f"threads: expected at least 1, got {threads}")
    _threads = threads
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def available_cores() -> int:
    """The cores this process may use: the count given to :func:`set_threads`, else torch's
    thread count where torch is loaded (a launched job gives each process its share), else the
    CPUs the process may run on."""
    if _threads is not None:
        return _threads
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
