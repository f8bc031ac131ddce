"""The options of a batch job, typed and checked: what a worker needs to label batches
(:class:`BatchOptions`) and how a Ray job spreads over actors (:class:`RayOptions`).

Plain values only, and no pandas, pyarrow or ray: the CLI builds them before choosing an engine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihot.core.errors import ConfigError
from multihot.inference.predictor import BACKENDS


@dataclass(frozen=True)
class BatchOptions:
    """What a worker needs to label batches; the keyword arguments of :class:`BatchPredictor`."""

    run: Path
    """The run directory, on a path every worker can read (a shared file system on a cluster)."""
    backend: str = "torch"
    """``torch`` (the run's weights) or ``onnx`` (a graph written by ``multihot export``)."""
    onnx_model: Path | None = None
    """The ONNX graph for the onnx backend (default: ``run/model.onnx``)."""
    precision: str = "auto"
    """torch backend: ``auto`` (bf16 where supported), ``fp32``, ``bf16``, ``fp16``."""
    text_col: str | None = None
    """The column holding the texts (default: the run's, as for ``multihot predict``)."""
    batch_size: int = 64
    """Texts per forward pass, within each batch the engine hands over."""
    threads: int | None = None
    """CPU threads in each worker, for torch and the ONNX backend (default: what the engine gives
    it; a Ray actor's reserved CPUs, one by default). Output equals ``predict --threads N``'s byte
    for byte on the same N (:mod:`multihot.core.threads` says why it must be the same)."""
    prefix: str = ""
    """Put before every added column's name, for rows that already have a ``labels`` column or a
    column named after a label (gold labels, one 0/1 column per label)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", Path(self.run))
        if self.onnx_model is not None:
            object.__setattr__(self, "onnx_model", Path(self.onnx_model))
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"backend: expected one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.onnx_model is not None and self.backend != "onnx":
            raise ConfigError("onnx_model: an ONNX graph applies to backend='onnx' only")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: expected at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads: expected at least 1, got {self.threads}")

    def kwargs(self) -> dict[str, Any]:
        """These options as ``fn_constructor_kwargs`` for ``map_batches`` (plain values)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RayOptions:
    """How a job spreads over Ray: actors, their resources, the rows each call labels, and the
    part files of a directory output. A killed actor is restarted and its batch retried by Ray
    Data itself (its default for actor pools)."""

    concurrency: int = 1
    """Actors, each loading the run once (``--concurrency``)."""
    chunk_size: int = 8192
    """Rows per actor call; the same number as ``predict --chunk-size`` gives the same output."""
    cpus_per_actor: float = 1.0
    """CPUs Ray reserves for each actor (and the threads torch uses in it)."""
    gpus_per_actor: float = 0.0
    """GPUs Ray gives each actor (0: none, the CPU computes)."""
    rows_per_file: int = 262_144
    """A directory output: at least this many rows per Parquet part file (Ray writes a file per
    block otherwise: thousands of small files for a large job)."""

    def __post_init__(self) -> None:
        for name in ("concurrency", "chunk_size", "rows_per_file"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected at least 1, got {getattr(self, name)}")
        if self.cpus_per_actor <= 0 or self.gpus_per_actor < 0:
            raise ConfigError(
                "cpus_per_actor must be above 0 and gpus_per_actor at least 0; got "
                f"{self.cpus_per_actor}, {self.gpus_per_actor}"
            )

    @property
    def actor_cpus(self) -> float:
        return self.concurrency * self.cpus_per_actor
