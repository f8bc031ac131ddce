"""What the endpoints share: the predictor, its batcher, metrics, readiness, the model's card and
the rates seen on the run's validation rows (:mod:`multihot.serve.drift`)."""

from __future__ import annotations

import contextlib
from importlib import metadata
from typing import Any

from multihot import __version__
from multihot.core.config import BASELINE_KIND, is_baseline
from multihot.core.files import json_safe
from multihot.serve.access import http_model_id
from multihot.serve.batcher import MicroBatcher
from multihot.serve.config import ServeConfig
from multihot.serve.drift import validation_rates
from multihot.serve.metrics import ServerMetrics


class ServerState:
    """What the endpoints share: the predictor, its batcher, metrics, readiness."""

    def __init__(self, predictor, config: ServeConfig):
        gpu = getattr(getattr(predictor.engine, "device", None), "type", "cpu") != "cpu"
        config = config.on_device(gpu)  # the defaults that depend on the device, filled in
        assert config.max_batch_tokens is not None  # on_device fills it in
        self.predictor, self.config = predictor, config
        self.model_id = http_model_id(predictor.model_id or "unnamed")  # it goes in a header
        self.metrics = ServerMetrics(lambda: self.batcher.depth, predictor.label_names)
        self.validation_rates = validation_rates(predictor.files)
        """Per label, how the run predicted its validation rows; None without such rows."""
        if self.validation_rates is not None:
            self.metrics.publish_validation(
                self.validation_rates.predicted_rate, self.validation_rates.mean_probability
            )
        self.batcher = MicroBatcher(
            predictor,
            max_batch=config.max_batch,
            max_batch_tokens=config.max_batch_tokens,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            on_batch=self._on_batch,
            on_drop=lambda n: self.metrics.dropped.inc(n),
        )
        self.ready = False
        self.draining = False
        self.model_info = self._model_info()

    def _on_batch(self, texts: int, padded_tokens: int) -> None:
        self.metrics.batch_size.observe(texts)
        self.metrics.batch_tokens.observe(padded_tokens)
        self.metrics.texts.inc(texts)

    def _model_info(self) -> dict[str, Any]:
        p, files = self.predictor, self.predictor.files
        linear = files is not None and is_baseline(files.kind)
        validation = files.metrics.get("validation", {}) if files is not None else {}
        return {
            "model_id": self.model_id,
            "run": files.path.name if files is not None else None,
            "kind": files.kind if files is not None else None,
            "backend": p.backend,
            "precision": p.precision,
            "encoder": BASELINE_KIND if linear else p.config.model.encoder,
            "max_length": p.config.model.max_length,
            "long_text": None if linear else p.config.model.long_text,
            "max_chunks": p.config.model.max_chunks if p.config.model.chunked else None,
            "labels": p.label_names,
            "thresholds": dict(zip(p.label_names, map(float, p.thresholds.values), strict=True)),
            "threshold_strategy": p.thresholds.strategy,
            "calibration": (
                None
                if files is None or files.calibration is None
                else json_safe(files.calibration.to_dict(p.label_names))
            ),
            "validation": json_safe(validation),
            "validation_rates": (
                None
                if self.validation_rates is None
                else self.validation_rates.to_dict(p.label_names)
            ),
            "versions": {
                "trained_with": files.raw.get("versions", {}) if files is not None else {},
                "serving": serving_versions(p.backend),
            },
            "limits": self.config.limits(),
        }

    def warm_up(self) -> None:
        """Forward passes before the server says it is ready: one short text (builds the
        inference copy), then the largest batch the batcher can form (:func:`largest_batch`).

        The second takes at start the memory the model computes in (onnxruntime's arena, torch's
        buffers), as text-embeddings-inference warms up: the server's memory when ready is about
        its memory under any load, and a machine too small fails at start, not under load."""
        p, batcher = self.predictor, self.batcher
        p.predict_proba_encoded(p.encode(["warm up"]), batch_size=1)
        batch = largest_batch(p, batcher.max_batch, batcher.max_batch_tokens)
        p.predict_proba_encoded(batch, batch_size=len(batch))
        self.ready = True


def largest_batch(predictor, max_batch: int, max_batch_tokens: int) -> list:
    """The largest batch :class:`multihot.serve.batcher.MicroBatcher` forms, encoded: as many
    texts of ``max_length`` tokens (``max_batch_tokens`` at most) as ``max_batch`` and
    ``max_batch_tokens`` allow, one at least."""
    words = "warm up " * predictor.config.model.max_length  # a token per word at least
    (encoded,) = predictor.encode([words])
    tokens = min(predictor.token_count(encoded), max_batch_tokens)
    return [encoded] * max(1, min(max_batch, max_batch_tokens // max(1, tokens)))


def serving_versions(backend: str) -> dict[str, str]:
    """The versions of what answers requests, read from the installed packages' metadata (the
    ONNX backend's server never imports torch)."""
    engine = "onnxruntime" if backend == "onnx" else "torch"
    versions = {"multihot": __version__}
    for name in ("fastapi", "uvicorn", "tokenizers", engine):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions
