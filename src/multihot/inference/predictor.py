"""Prediction from a run directory with a choice of engine: PyTorch or ONNX Runtime.

:class:`Predictor` gives the same answers whichever backend computes the probabilities: the run's
labels, the run's thresholds (thresholds.json), the run's tokenizer and ``max_length``, texts batched
by length with dynamic padding and put back in input order.

- ``torch`` wraps :class:`multihot.Classifier` (any run, baseline runs included).
- ``onnx`` runs a graph written by ``multihot export RUN --format onnx`` (``RUN/model.onnx`` unless
  another path is given) with onnxruntime on the CPU; the PyTorch weights are not loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.rundir import ONNX_FILE
from multihot.core.config import RunConfig
from multihot.core.errors import ConfigError, MultihotError, RunDirError
from multihot.data.batching import Collator, TokenizedDataset, sorted_batches, tokenize
from multihot.data.labels import LabelSet
from multihot.scoring.thresholds import Thresholds

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUT = "probabilities"
DISABLED_ORT_FUSIONS = ("SkipLayerNormFusion",)
"""Graph rewrites of onnxruntime's that the sessions here turn off. SkipLayerNormFusion merges
each residual Add with the LayerNorm after it into one SkipLayerNormalization, whose CPU kernel
(onnxruntime 1.32) is a scalar loop with a division per element: on int8 scratch-mini it took
1.25 ms a call against 0.17 ms for a LayerNormalization of the same shape, and left unfused the
graph ran 19% faster at batch 64 on one core (30% at batch 32; same probabilities up to float
rounding)."""


def import_onnxruntime():
    """The ``onnxruntime`` module, or a clear error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise MultihotError(
            "onnxruntime is not installed; install the ONNX extra: pip install 'multihot[onnx]'"
        ) from None
    return onnxruntime


def onnx_session(path: str | Path, options=None):
    """An onnxruntime CPU session for the graph at ``path``, with inputs and output checked.

    Args:
        path: an ``.onnx`` file written by ``multihot export``.
        options: an ``onnxruntime.SessionOptions`` to start from (to turn on profiling, say); its
            intra-operator thread count is set to one either way.

    Raises:
        RunDirError: the file is missing, is not an ONNX model, or lacks the multihot inputs/output.
    """
    ort = import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: no such ONNX model")
    options = options if options is not None else ort.SessionOptions()
    # One core per run: onnx_probabilities runs several batches at once instead (onnxruntime
    # releases the GIL while it computes), which keeps every core busy without the per-operator
    # hand-offs of a thread pool; with short texts those cost more than they save.
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(DISABLED_ORT_FUSIONS),
        )
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise RunDirError(f"{path}: cannot load ONNX model ({reason})") from None
    inputs = sorted(i.name for i in session.get_inputs())
    outputs = [o.name for o in session.get_outputs()]
    if inputs != sorted(ONNX_INPUTS) or outputs != [ONNX_OUTPUT]:
        raise RunDirError(
            f"{path}: expected inputs {', '.join(ONNX_INPUTS)} and output {ONNX_OUTPUT}, "
            f"got inputs {', '.join(inputs)} and outputs {', '.join(outputs)}; "
            "expected a graph written by 'multihot export RUN --format onnx'"
        )
    return session


def onnx_probabilities(
    session,
    input_ids: list[list[int]],
    *,
    pad_token_id: int,
    batch_size: int = 64,
    workers: int | None = None,
) -> np.ndarray:
    """Probabilities of shape ``(n_texts, num_labels)`` from an ONNX session, rows in input order.

    Batching is that of :func:`multihot.inference.torch_backend.predict_logits` (sorted by length, padded to the
    batch's longest text), so both engines see the same padded batches; only when there are fewer
    texts than ``batch_size`` per worker are the batches made smaller, so that every worker gets one.
    ``workers`` batches run at once, each on one core (see :func:`onnx_session`); the default is
    torch's thread count, the cores this process may use (its share of them in a launched job).
    On GoEmotions test with int8 scratch-mini and 2 cores, tokenization included, this ran at 2311
    texts/s (median of six) against 1946 for one batch at a time on two intra-operator threads.
    """
    import torch

    workers = max(1, workers or torch.get_num_threads())
    dataset = TokenizedDataset(input_ids)
    collate = Collator(pad_token_id)
    out = np.empty((len(dataset), onnx_num_labels(session)), dtype=np.float32)
    size = max(1, min(batch_size, -(-len(dataset) // workers)))

    def run(batch_indices: list[int]) -> None:
        batch = collate([dataset[i] for i in batch_indices])
        feeds = {name: batch[name].numpy() for name in ONNX_INPUTS}
        out[batch_indices] = session.run([ONNX_OUTPUT], feeds)[0]

    batches = sorted_batches(dataset.lengths, size)
    if workers == 1 or len(batches) < 2:
        for batch_indices in batches:
            run(batch_indices)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(batches))) as pool:
            list(pool.map(run, batches))  # list(): re-raises a batch's exception here
    return out


def onnx_num_labels(session) -> int:
    """The width of the graph's output: its static shape, else the labels in its metadata."""
    width = session.get_outputs()[0].shape[1]
    if isinstance(width, int):
        return width
    labels = onnx_metadata(session).get("labels")
    if not isinstance(labels, list):
        raise RunDirError("ONNX model: output width unknown and no 'labels' in its metadata")
    return len(labels)


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
        *,
        classifier=None,
        session=None,
        tokenizer=None,
        precision: str = "auto",
    ):
        self.labels = labels
        self.thresholds = thresholds
        self.config = config
        self.backend = backend
        self.precision = precision
        self._classifier = classifier
        self._session = session
        self._tokenizer = tokenizer

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
            backend: ``torch`` (the saved weights through :class:`multihot.Classifier`) or ``onnx``.
            onnx_path: the ONNX graph (default ``run_dir/model.onnx``); onnx backend only.
            precision: torch backend only: ``auto`` (bf16 where supported), ``fp32``, ``bf16``,
                ``fp16``. The onnx backend computes in the graph's own precision.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "torch":
            if onnx_path is not None:
                raise ConfigError("an ONNX model path applies to the onnx backend only")
            from multihot.classifier import Classifier

            clf = Classifier.load(run_dir)
            return cls(
                clf.labels, clf.thresholds, clf.config, "torch", classifier=clf, precision=precision
            )
        if precision not in ("auto", "fp32"):
            raise ConfigError(
                f"precision {precision!r} applies to the torch backend only; the onnx backend "
                "computes in the precision the graph was exported with"
            )
        return cls._load_onnx(Path(run_dir), onnx_path)

    @classmethod
    def _load_onnx(cls, run: Path, onnx_path: str | Path | None) -> Predictor:
        from multihot.artifacts.rundir import check_run_dir, check_self_contained, read_json
        from multihot.classifier import read_run

        run = check_run_dir(
            run, required=("config.json", "tokenizer", "labels.json", "thresholds.json")
        )
        raw = read_json(run / "config.json")
        if raw.get("kind") == "tfidf-logreg":
            raise ConfigError(
                f"{run}: a baseline (TF-IDF + logistic regression) run has no ONNX export; "
                "use the torch backend"
            )
        path = Path(onnx_path) if onnx_path is not None else run / ONNX_FILE
        if not path.is_file():
            raise RunDirError(
                f"{path}: no such ONNX model; write it with 'multihot export {run} --format onnx'"
                + (f" -o {path}" if onnx_path is not None else "")
            )
        if onnx_path is None:
            check_self_contained(run, (ONNX_FILE,))
        config, labels, thresholds = read_run(run, raw)
        session = onnx_session(path)
        _check_graph_matches_run(session, path, labels, thresholds, run)
        return cls(
            labels,
            thresholds,
            config,
            "onnx",
            session=session,
            tokenizer=load_tokenizer(run / "tokenizer"),
        )

    # --------------------------------------------------------------------------------- prediction
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Probabilities of shape ``(n_texts, num_labels)``; column ``j`` is ``label_names[j]``."""
        if self._classifier is not None:
            return self._classifier.predict_proba(texts, batch_size, self.precision)
        from multihot.classifier import check_texts

        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        ids = tokenize(self._tokenizer, texts, self.config.model.max_length)
        return onnx_probabilities(
            self._session, ids, pad_token_id=self._tokenizer.pad_token_id, batch_size=batch_size
        )

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
        import torch

        from multihot.classifier import check_texts
        from multihot.core import distributed

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


def load_tokenizer(path: Path):
    """The run's Hugging Face tokenizer, or :class:`RunDirError` naming the directory."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # transformers raises many types for broken tokenizer files
        raise RunDirError(
            f"{path}: cannot load tokenizer ({str(err).splitlines()[0][:200]})"
        ) from None


def onnx_metadata(session) -> dict[str, Any]:
    """The multihot entries of a graph's metadata_props, JSON-decoded (absent ones left out)."""
    props = session.get_modelmeta().custom_metadata_map
    out = {}
    for key, value in props.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _check_graph_matches_run(
    session, path: Path, labels: LabelSet, thresholds: Thresholds, run: Path
) -> None:
    """The graph must be this run's model: same labels; thresholds re-tuned since are only logged."""
    meta = onnx_metadata(session)
    num_outputs = onnx_num_labels(session)
    graph_labels = meta.get("labels")
    if num_outputs != len(labels) or (graph_labels is not None and graph_labels != labels.names):
        raise RunDirError(
            f"{path}: the graph's labels ({graph_labels if graph_labels else num_outputs}) do not "
            f"match {run / 'labels.json'}; export this run again"
        )
    saved = meta.get("thresholds", {}).get("thresholds")
    if saved is not None and saved != thresholds.to_dict(labels.names)["thresholds"]:
        logger.warning(
            "%s: thresholds differ from %s (re-tuned after export?); using the run's",
            path,
            run / "thresholds.json",
        )
