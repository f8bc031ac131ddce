"""What ``multihot serve`` is told: where to listen, which engine, how to batch, what to refuse."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

from multihot.core.config import PRECISIONS
from multihot.core.errors import ConfigError
from multihot.serve.access import host_name

BACKENDS = ("torch", "onnx")
CPU_BATCH_TOKENS = 2048
"""``max_batch_tokens`` on a CPU. A CPU's forward pass is compute-bound well below it, so larger
batches add memory, not speed: the int8 MiniLM server (Xeon, 2 cores, short texts) answered as many
requests with 2048 as with 8192, in 230 MB at 256 clients where 8192, computed at start, took
366 MB (docs/benchmarks.md, serving under load)."""
GPU_BATCH_TOKENS = 8192
"""``max_batch_tokens`` on a GPU, where larger batches keep the device busy."""
MASKED = "<hidden>"
"""What :meth:`ServeConfig.to_dict` shows for an API key (and what no key may be)."""


@dataclass
class ServeConfig:
    """The server's settings; every field is a ``multihot serve`` option of the same name."""

    host: str = "127.0.0.1"
    """Address to listen on; 127.0.0.1 answers this machine only."""
    port: int = 8000
    """TCP port; 0 picks a free one (printed when the server is up)."""
    api_key: str | None = field(default=None, repr=False)
    """Require Authorization: Bearer KEY on every endpoint but /healthz, /readyz and the page (which
    asks for it). Default: the MULTIHOT_API_KEY variable, which other users cannot read, as they can
    a command line."""
    allowed_hosts: list[str] | None = None
    """Host names to answer to besides the bound address (and localhost on a loopback or wildcard
    address); other Host headers get 400, against DNS rebinding; * answers any."""
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
    max_batch_tokens: int | None = None
    """Padded tokens in one forward pass at most (texts x the longest), so long texts make
    smaller batches; a single text longer than this still runs, alone. Default: 2048 on a CPU,
    8192 on a GPU. The server computes a batch this large before it is ready, so it sets the
    memory the server runs in."""
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
    read_timeout_s: float = 10.0
    """Seconds a connection has to send a request's headers, from opening or from its previous
    answer (else it is closed), and as many again for the body (else 408)."""
    max_connections: int = 512
    """Open connections at most (per worker); a request on a connection past it gets 503 and
    Retry-After."""
    drain_grace_s: float = 2.0
    """On SIGTERM, seconds the server keeps answering, /readyz with 503, before it stops
    listening and finishes what it accepted (so a load balancer sees it leave); Ctrl+C skips it."""

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
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ConfigError(
                f"max_batch_tokens: expected a positive integer, got {self.max_batch_tokens}"
            )
        for name in (
            "workers",
            "max_batch",
            "max_queue",
            "max_texts",
            "max_chars",
            "max_body_bytes",
            "max_connections",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.read_timeout_s > 0:
            raise ConfigError(
                f"read_timeout_s: expected a positive number, got {self.read_timeout_s}"
            )
        if not self.drain_grace_s >= 0:
            raise ConfigError(
                f"drain_grace_s: expected a non-negative number, got {self.drain_grace_s}"
            )
        self._check_access()
        if self.max_wait_ms < 0:
            raise ConfigError(
                f"max_wait_ms: expected a non-negative number, got {self.max_wait_ms}"
            )
        if self.max_queue < self.max_texts:
            raise ConfigError(
                f"max_queue ({self.max_queue}) is below max_texts ({self.max_texts}): a request "
                "of max_texts texts could never be queued"
            )

    def on_device(self, gpu: bool) -> ServeConfig:
        """This config with the defaults that depend on where the model computes filled in:
        ``max_batch_tokens`` :data:`CPU_BATCH_TOKENS` or :data:`GPU_BATCH_TOKENS`."""
        if self.max_batch_tokens is not None:
            return self
        tokens = GPU_BATCH_TOKENS if gpu else CPU_BATCH_TOKENS
        return dataclasses.replace(self, max_batch_tokens=tokens)

    def limits(self) -> dict[str, int]:
        """The limits a client runs into, as ``GET /v1/model`` reports them."""
        names = (
            "max_texts",
            "max_chars",
            "max_body_bytes",
            "max_queue",
            "max_batch",
            "max_batch_tokens",
        )
        return {name: getattr(self, name) for name in names}

    def _check_access(self) -> None:
        key = self.api_key
        if key == MASKED:
            raise ConfigError("api_key: this is the mask to_dict() shows; give the key itself")
        if key is not None and not (key and all("!" <= c <= "~" for c in key)):
            # the key itself is never repeated, not even in an error
            raise ConfigError(
                "api_key: expected printable ASCII characters without spaces (it "
                "travels in an HTTP header)"
            )
        for entry in self.allowed_hosts or ():
            if entry != "*" and host_name(entry) is None:
                raise ConfigError(
                    f"allowed_hosts: {entry!r} is not a host name or address "
                    "(give names like api.example.org, without scheme or "
                    "path)"
                )

    def to_dict(self, secrets: bool = False) -> dict:
        """The fields as JSON types; the API key masked unless ``secrets`` (handing the config to
        worker processes)."""
        masked = {"api_key": MASKED} if self.api_key is not None and not secrets else {}
        return {
            f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v)
            for f in fields(self)
        } | masked
