"""Prediction from a run directory with a choice of engine: PyTorch or ONNX Runtime.

:class:`Predictor` gives the same answers whichever backend computes the probabilities: the run's
labels, the run's thresholds (thresholds.json), the run's tokenizer and ``max_length``, texts batched
by length with dynamic padding and put back in input order.

Backends (each has ``kind``, ``predict_proba(texts, batch_size, precision)``, and the same in two
steps, ``encode(texts)`` then ``predict_proba_encoded(encoded, batch_size, precision)``, so a server
can encode each request as it comes and compute many requests' texts in one forward pass):

- :class:`multihot.inference.torch_backend.TorchBackend`: a transformer run's weights;
- :class:`multihot.baseline.linear.TfidfLogistic`: a linear baseline run;
- :class:`multihot.inference.onnx_backend.OnnxBackend`: a graph written by
  ``multihot export RUN --format onnx`` (``RUN/model.onnx`` unless another path is given) on the
  CPU; the PyTorch weights are not loaded, nor torch itself.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from multihot.artifacts.runs import RunFiles, model_id, read_linear_model, read_run_files
from multihot.baseline.linear import BaselineConfig, TfidfLogistic
from multihot.core import distributed
from multihot.core.config import RunConfig, is_baseline
from multihot.core.errors import ConfigError, RunDirError
from multihot.data.encoding import Reading, check_texts, token_count
from multihot.data.labels import LabelSet
from multihot.inference.onnx_backend import load_onnx_backend
from multihot.scoring.thresholds import Thresholds

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")


def load_backend(files: RunFiles):
    """The model of a run directory as a backend: :class:`TorchBackend` for a transformer run,
    :class:`TfidfLogistic` for a linear baseline run; calibrated when the run is."""
    if is_baseline(files.kind):
        try:
            baseline = BaselineConfig(**files.raw.get("baseline", {}))
        except (TypeError, ConfigError) as err:
            raise RunDirError(
                f"{files.path / 'config.json'}: bad 'baseline' section ({err})"
            ) from None
        vocabulary, arrays = read_linear_model(files)
        model = TfidfLogistic.from_arrays(
            vocabulary, arrays, baseline, files.path, len(files.labels)
        )
        model.calibration = files.calibration
        return model
    # Here, not above: they import torch; this keeps torch off the ONNX path (and the baseline's).
    from multihot.artifacts.transformer import load_transformer_model
    from multihot.inference.torch_backend import TorchBackend

    model, tokenizer, encoder_config = load_transformer_model(files)
    return TorchBackend(
        model, tokenizer, encoder_config, Reading.of(files.config.model), files.calibration
    )


class Predictor:
    """Label texts with a run directory's model, on PyTorch or ONNX Runtime.

    Attributes:
        label_names: the labels, in the order of the probability columns.
        thresholds: the run's per-label thresholds (:class:`multihot.scoring.thresholds.Thresholds`).
        config: the run's configuration (``config.model.max_length``, ``config.data.text_col``).
        backend: ``torch`` or ``onnx``.

    Example:
        >>> p = Predictor.load("runs/emotions", backend="onnx")  # doctest: +SKIP
        >>> p.predict_proba(["so happy for you!"]).shape  # doctest: +SKIP
        (1, 28)
        >>> p.predict(["so happy for you!"])  # doctest: +SKIP
        [['joy']]
    """

    def __init__(
        self,
        labels: LabelSet,
        thresholds: Thresholds,
        config: RunConfig,
        backend: str,
        engine,
        precision: str = "auto",
        files: RunFiles | None = None,
    ):
        self.files = files
        """The run directory's files (metrics, config.json as read), when loaded from one."""
        self.labels = labels
        self.thresholds = thresholds
        self.config = config
        self.backend = backend
        self.engine = engine
        """What computes the probabilities (a backend of :mod:`multihot.inference`)."""
        self.precision = precision

    @property
    def label_names(self) -> list[str]:
        return self.labels.names

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        backend: str = "torch",
        onnx_path: str | Path | None = None,
        precision: str = "auto",
    ) -> Predictor:
        """Load a run directory for prediction.

        Args:
            run_dir: a run directory written by ``multihot train`` (or ``baseline`` for torch).
            backend: ``torch`` (the saved weights; any kind of run) or ``onnx``.
            onnx_path: the ONNX graph (default ``run_dir/model.onnx``); onnx backend only.
            precision: torch backend only: ``auto`` (bf16 where supported), ``fp32``, ``bf16``,
                ``fp16``. The onnx backend computes in the graph's own precision.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "torch":
            if onnx_path is not None:
                raise ConfigError("an ONNX model path applies to the onnx backend only")
            files = read_run_files(run_dir)
            engine = load_backend(files)
        else:
            if precision not in ("auto", "fp32"):
                raise ConfigError(
                    f"precision {precision!r} applies to the torch backend only; the onnx backend "
                    "computes in the precision the graph was exported with"
                )
            files = read_run_files(run_dir, for_onnx=True)
            engine = load_onnx_backend(files, onnx_path)
        return cls(files.labels, files.thresholds, files.config, backend, engine, precision, files)

    @functools.cached_property
    def model_id(self) -> str | None:
        """:func:`multihot.artifacts.runs.model_id` of the run and the model file in use (the
        ONNX graph for that backend); None for a predictor not loaded from a run directory."""
        if self.files is None:
            return None
        return model_id(self.files, getattr(self.engine, "path", None))

    # --------------------------------------------------------------------------------- prediction
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Probabilities of shape ``(n_texts, num_labels)``; column ``j`` is ``label_names[j]``."""
        return self.engine.predict_proba(texts, batch_size, self.precision)

    def encode(self, texts: Sequence[str]) -> list:
        """What the engine computes from, one entry per text: token ids (the text itself for a
        linear baseline). Checks the texts (:func:`multihot.data.encoding.check_texts`)."""
        return self.engine.encode(texts)

    @staticmethod
    def token_count(encoded) -> int:
        """The tokens one encoded text (:meth:`encode`) costs a forward pass (words for a baseline)."""
        return token_count(encoded) if isinstance(encoded, list) else len(encoded.split())

    def predict_proba_encoded(self, encoded: list, batch_size: int = 64) -> np.ndarray:
        """:meth:`predict_proba` of texts already encoded (:meth:`encode`); the same probabilities."""
        return self.engine.predict_proba_encoded(encoded, batch_size, self.precision)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[list[str]]:
        """Label names per text, with the run's thresholds applied."""
        return self.labels.decode(self.thresholds.apply(self.predict_proba(texts, batch_size)))

    def iter_predict(
        self, batches: Iterable[Sequence[str]], batch_size: int = 64, *, distribute: bool = False
    ) -> Iterator[tuple[list[str], np.ndarray, list[list[str]]]]:
        """Stream ``(texts, probs, labels)`` per input batch, so inputs of any size keep memory flat.

        Args:
            batches: lists of texts.
            batch_size: texts per forward pass.
            distribute: in a job of several processes (``accelerate launch``), spread each batch
                over the processes. Every process must pass the same ``batches``; each computes
                its share, and every process yields every batch's results, in input order.
        """
        for texts in batches:
            if distribute:
                probs = self._distributed_proba(texts, batch_size)
            else:
                probs = self.predict_proba(texts, batch_size)
            yield list(texts), probs, self.labels.decode(self.thresholds.apply(probs))

    def _distributed_proba(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Probabilities for all ``texts``, this process computing its contiguous share of them."""
        import torch  # keeps torch off the ONNX path (prediction in one process)

        texts = check_texts(texts)  # the whole batch, so every process fails alike on a bad text
        mine = distributed.share(len(texts))
        probs = self.predict_proba(texts[mine.start : mine.stop], batch_size)
        device = distributed.state().device
        return distributed.gather_rows(
            torch.arange(mine.start, mine.stop, device=device),
            torch.from_numpy(probs).to(device),
            len(texts),
            "prediction",
        )
