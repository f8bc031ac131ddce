"""What ``multihot serve`` is told: where to listen, which engine, how to batch, what to refuse."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from multihot.core.config import PRECISIONS
from multihot.core.errors import ConfigError

BACKENDS = ("torch", "onnx")


@dataclass
class ServeConfig:
    """The server's settings; every field is a ``multihot serve`` option of the same name."""

    host: str = "127.0.0.1"
    """Address to listen on; 127.0.0.1 answers this machine only."""
    port: int = 8000
    """TCP port; 0 picks a free one (printed when the server is up)."""
    backend: str = "torch"
    """torch (the run's weights) or onnx (a graph written by multihot export)."""
    onnx_model: Path | None = None
    """The ONNX graph for the onnx backend (default: the run's model.onnx)."""
    precision: str = "auto"
    """Torch backend: auto (bf16 where the processor supports it), fp32, bf16, fp16."""
    workers: int = 1
    """Server processes, each with the model loaded and its own batcher; cores are shared out."""
    max_batch: int = 64
    """Texts in one forward pass at most; 1 computes each text alone."""
    max_batch_tokens: int = 8192
    """Padded tokens in one forward pass at most (texts x the longest), so long texts make
    smaller batches; a single text longer than this still runs, alone."""
    max_wait_ms: float = 5.0
    """How long the first text of a batch waits for others to join it."""
    max_queue: int = 1024
    """Texts waiting to be computed at most; a request that would pass it gets 503 and
    Retry-After instead of a place in the queue."""
    max_texts: int = 256
    """Texts in one request at most (413 above)."""
    max_chars: int = 20_000
    """Characters in one text at most (413 above); the model reads its first max_length
    tokens either way, or with long_text chunk up to max_chunks windows of them."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Bytes of one request body at most (413 above)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"backend: expected one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.onnx_model is not None and self.backend != "onnx":
            raise ConfigError("onnx_model applies to the onnx backend only")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: expected 0..65535, got {self.port}")
        for name in ("workers", "max_batch", "max_batch_tokens", "max_queue", "max_texts",
                     "max_chars", "max_body_bytes"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ConfigError(
                f"max_wait_ms: expected a non-negative number, got {self.max_wait_ms}"
            )
        if self.max_queue < self.max_texts:
            raise ConfigError(
                f"max_queue ({self.max_queue}) is below max_texts ({self.max_texts}): a request "
                "of max_texts texts could never be queued"
            )

    def limits(self) -> dict[str, int]:
        """The limits a client runs into, as ``GET /v1/model`` reports them."""
        names = ("max_texts", "max_chars", "max_body_bytes", "max_queue", "max_batch",
                 "max_batch_tokens")  # fmt: skip
        return {name: getattr(self, name) for name in names}

    def to_dict(self) -> dict:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v)
                for f in fields(self)}  # fmt: skip
