"""The ONNX Runtime backend: a graph written by ``multihot export RUN --format onnx`` run on the CPU.

Nothing here imports torch: tokenizing, padding (:mod:`multihot.data.encoding`) and the graph are
all this backend needs, so ``multihot predict --backend onnx`` and a serving image start quickly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.rundir import (
    CALIBRATION,
    CONFIG,
    ONNX_FILE,
    THRESHOLDS,
    TOKENIZER,
    check_self_contained,
)
from multihot.artifacts.runs import WEIGHTS_DIGEST, RunFiles, reading_record
from multihot.core.config import ModelConfig, is_baseline
from multihot.core.errors import ConfigError, MultihotError, RunDirError
from multihot.core.threads import available_cores
from multihot.data.encoding import (
    Reading,
    RustTokenizer,
    encode,
    inference_batches,
    is_document,
    pack_documents,
    pad,
)
from multihot.data.labels import LabelSet
from multihot.scoring.calibration import Calibration
from multihot.scoring.thresholds import Thresholds

logger = logging.getLogger(__name__)


ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_DOCUMENT_INPUTS = (*ONNX_INPUTS, "chunk_index")
"""The inputs of a graph of a run that reads long texts in windows (``long_text="chunk"``): the
windows' rows, and which rows make each document (:func:`multihot.data.encoding.pack_documents`)."""


ONNX_OUTPUT = "probabilities"

GRAPH_RUN_THRESHOLDS = "run_thresholds"
"""Metadata of a graph tuned for itself (int8, see :mod:`multihot.export.int8`): the run's
thresholds.json as it was at export. The graph's own thresholds, tuned on its probabilities, are
under ``thresholds``; a graph without this key uses the run's."""
GRAPH_RUN_CALIBRATION = "run_calibration"
"""Metadata of a graph tuned for itself: the run's calibration at export (the form of
:func:`graph_calibration`). The calibration inside the graph, refitted on its logits, is under
``calibration`` (:meth:`multihot.scoring.calibration.Calibration.to_dict`)."""


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
        import onnxruntime  # optional: onnxruntime
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
    known = (sorted(ONNX_INPUTS), sorted(ONNX_DOCUMENT_INPUTS))
    if inputs not in known or outputs != [ONNX_OUTPUT]:
        raise RunDirError(
            f"{path}: expected inputs {', '.join(ONNX_INPUTS)} (and chunk_index) and output "
            f"{ONNX_OUTPUT}, "
            f"got inputs {', '.join(inputs)} and outputs {', '.join(outputs)}; "
            "expected a graph written by 'multihot export RUN --format onnx'"
        )
    return session


def reads_documents(session) -> bool:
    """Whether a graph takes documents of windows (a ``chunk_index`` input)."""
    return any(i.name == "chunk_index" for i in session.get_inputs())


def onnx_probabilities(
    session,
    input_ids: list,
    *,
    pad_token_id: int,
    batch_size: int = 64,
    workers: int | None = None,
    batch_tokens: int = 16384,
) -> np.ndarray:
    """Probabilities of shape ``(n_texts, num_labels)`` from an ONNX session, rows in input order.

    Batching is that of :func:`multihot.inference.torch_backend.predict_logits` (sorted by length, padded to the
    batch's longest text), so both engines see the same padded batches; only when there are fewer
    texts than ``batch_size`` per worker are the batches made smaller, so that every worker gets one.
    ``workers`` batches run at once, each on one core (see :func:`onnx_session`); the default is
    :func:`multihot.core.threads.available_cores`. Documents of windows are packed as
    :func:`multihot.data.encoding.document_batches` says, at most ``batch_tokens`` ids a batch.
    On GoEmotions test with int8 scratch-mini and 2 cores, tokenization included, this ran at 2311
    texts/s (median of six) against 1946 for one batch at a time on two intra-operator threads.
    """
    workers = max(1, workers or available_cores())
    out = np.empty((len(input_ids), onnx_num_labels(session)), dtype=np.float32)
    size = max(1, min(batch_size, -(-len(input_ids) // workers)))
    documents = bool(input_ids) and is_document(input_ids[0])
    if input_ids and documents != reads_documents(session):
        raise MultihotError(
            "the graph reads "
            + ("documents of windows" if reads_documents(session) else "truncated texts")
            + ", and was given "
            + ("documents" if documents else "truncated texts")
        )

    def run(batch_indices: list[int]) -> None:
        texts = [input_ids[i] for i in batch_indices]
        arrays: tuple[np.ndarray, ...]
        names: tuple[str, ...]
        if documents:
            arrays, names = pack_documents(texts, pad_token_id), ONNX_DOCUMENT_INPUTS
        else:
            arrays, names = pad(texts, pad_token_id), ONNX_INPUTS
        out[batch_indices] = session.run([ONNX_OUTPUT], dict(zip(names, arrays, strict=True)))[0]

    batches = inference_batches(input_ids, size, batch_tokens)
    if workers == 1 or len(batches) < 2:
        for batch_indices in batches:
            run(batch_indices)
    else:
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


def graph_calibration(calibration: Calibration | None, labels: LabelSet) -> dict | None:
    """The ``calibration`` entry of a graph's metadata for a run with ``calibration``: the
    temperatures and biases the graph applies, by label."""
    if calibration is None:
        return None
    saved = calibration.to_dict(labels.names)
    return {"temperatures": saved["temperatures"], "biases": saved["biases"]}


def _check_graph_matches_run(session, path: Path, files: RunFiles) -> dict[str, Any]:
    """The graph must be this run's model: same labels, exported from the calibration the run
    has (it is inside the graph); thresholds re-tuned since are only logged. Returns the graph's
    metadata."""
    labels, run = files.labels, files.path
    meta = onnx_metadata(session)
    num_outputs = onnx_num_labels(session)
    graph_labels = meta.get("labels")
    if num_outputs != len(labels) or (graph_labels is not None and graph_labels != labels.names):
        raise RunDirError(
            f"{path}: the graph's labels ({graph_labels if graph_labels else num_outputs}) do not "
            f"match {run / 'labels.json'}; export this run again"
        )
    own = GRAPH_RUN_THRESHOLDS in meta
    exported_from = meta.get(GRAPH_RUN_CALIBRATION) if own else meta.get("calibration")
    if exported_from != graph_calibration(files.calibration, labels):
        now = "is calibrated" if files.calibration is not None else "is not calibrated"
        raise RunDirError(
            f"{path}: the graph was exported with other calibration than the run has (the run "
            f"{now} now, see {run / CALIBRATION}); export this run again"
        )
    _check_graph_source(meta, path, files)
    saved = ((meta.get(GRAPH_RUN_THRESHOLDS) if own else meta.get("thresholds")) or {}).get(
        "thresholds"
    )
    if saved is not None and saved != files.thresholds.to_dict(labels.names)["thresholds"]:
        if own:
            logger.warning(
                "%s: %s changed since this graph was exported (re-tuned?); the graph keeps the "
                "thresholds tuned for it then; export it again to tune them anew",
                path,
                run / THRESHOLDS,
            )
        else:
            logger.warning(
                "%s: thresholds differ from %s (re-tuned after export?); using the run's",
                path,
                run / THRESHOLDS,
            )
    return meta


def graph_scoring(
    meta: dict[str, Any], labels: LabelSet, path: Path
) -> tuple[Thresholds, Calibration | None]:
    """The thresholds and calibration of a graph tuned for itself (int8), from its metadata.

    Raises:
        RunDirError: the metadata of the graph at ``path`` has no thresholds of its own, or they
            (or its calibration) do not fit the labels.
    """
    try:
        thresholds = Thresholds.from_dict(meta["thresholds"], labels.names)
        saved = meta.get("calibration")
        calibration = None if saved is None else Calibration.from_dict(saved, labels.names)
    except (KeyError, MultihotError) as err:
        raise RunDirError(
            f"{path}: the thresholds or calibration in the graph's metadata are unreadable "
            f"({err}); export the run again"
        ) from None
    return thresholds, calibration


def graph_reading(config: ModelConfig) -> dict[str, Any]:
    """The reading a graph records in its metadata: :func:`~multihot.artifacts.runs.reading_record`
    with ``preprocess`` always (an empty list for no steps), so that loading refuses a graph
    exported with other text preparation steps than config.json names, none against some too."""
    return {**reading_record(config), "preprocess": list(config.preprocess or [])}


def _check_graph_source(meta: dict[str, Any], path: Path, files: RunFiles) -> None:
    """The graph must read texts as the run's config.json says (graphs exported before the whole
    reading was recorded have its ``max_length`` and ``long_text``, before the preparation steps
    were recorded no ``preprocess``), and be exported from the weights config.json records (where
    both record them)."""
    now = graph_reading(files.config.model)
    saved = meta.get("reading") or {k: meta[k] for k in ("max_length", "long_text") if k in meta}
    config = files.path / CONFIG
    for name in (name for name in saved if name in now and saved[name] != now[name]):
        raise RunDirError(
            f"{path}: the graph was exported for {name} {saved[name]!r}, {config} says {name} "
            f"{now[name]!r}; export this run again"
        )
    digest, recorded = meta.get(WEIGHTS_DIGEST), files.raw.get(WEIGHTS_DIGEST)
    if digest is not None and recorded is not None and digest != recorded:
        raise RunDirError(
            f"{path}: the graph was exported from other weights than {config} records "
            f"({WEIGHTS_DIGEST}); export this run again"
        )


class OnnxBackend:
    """Logits are not what the graph returns: probabilities are (the sigmoid is inside it).

    Args:
        session: an onnxruntime session from :func:`onnx_session`.
        tokenizer: the run's tokenizer.
        reading: how the run reads a text (:class:`multihot.data.encoding.Reading`; an int is
            its ``max_length``, truncating).
        path: the graph's file.
    """

    kind = "onnx"

    def __init__(self, session, tokenizer, reading: Reading | int, path: Path | None = None):
        self.session, self.tokenizer = session, tokenizer
        self.reading = Reading.coerce(reading)
        self.path = path
        """The graph's file, where it was loaded from one."""
        self.calibration: Calibration | None = None
        """The calibration the graph was exported with (it is inside it)."""
        self.thresholds: Thresholds | None = None
        """The thresholds tuned for this graph at export (int8 graphs), which replace the run's;
        None: the run's apply."""

    def encode(self, texts: Sequence[str]) -> list:
        """The token ids of checked texts, read as the run reads them."""
        return encode(self.tokenizer, texts, self.reading)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"):
        """Probabilities of shape ``(n_texts, num_labels)``, rows in input order."""
        return self.predict_proba_encoded(self.encode(texts), batch_size, precision)

    def predict_proba_encoded(
        self, ids: list[list[int]], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """:meth:`predict_proba` of texts already encoded (:meth:`encode`)."""
        if not ids:
            return np.zeros((0, onnx_num_labels(self.session)), dtype=np.float32)
        return onnx_probabilities(
            self.session,
            ids,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=batch_size,
            batch_tokens=self.reading.batch_tokens,
        )


def load_onnx_backend(files: RunFiles, onnx_path: str | Path | None = None) -> OnnxBackend:
    """The ONNX backend of a transformer run: ``onnx_path`` or the run's model.onnx, checked
    against the run's labels.

    A graph tuned for itself (an int8 export: thresholds re-tuned on its probabilities, the
    calibration inside it refitted on its logits) brings its thresholds and calibration along:
    they are the backend's ``thresholds`` and ``calibration``, and replace ``files.thresholds``
    and ``files.calibration``, so that every caller holding ``files`` applies and shows them.
    """
    run = files.path
    if is_baseline(files.kind):
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
    session = onnx_session(path)
    meta = _check_graph_matches_run(session, path, files)
    reading = Reading.of(files.config.model)
    if reads_documents(session) != reading.chunked:
        raise RunDirError(
            f"{path}: the graph reads texts {'in windows' if reads_documents(session) else 'truncated'}"
            f", the run (long_text {reading.long_text}) does not; export this run again"
        )
    tokenizer = RustTokenizer.from_dir(run / TOKENIZER, reading.max_length)
    backend = OnnxBackend(session, tokenizer, reading, path)
    if GRAPH_RUN_THRESHOLDS in meta:
        backend.thresholds, backend.calibration = graph_scoring(meta, files.labels, path)
        # What this graph's predictions are scored and shown with, by whoever holds ``files``:
        # Predictor applies files.thresholds, the server shows files.calibration.
        files.thresholds = backend.thresholds
        files.calibration = backend.calibration
    else:
        backend.calibration = files.calibration  # inside the graph: checked above, not applied
    return backend
