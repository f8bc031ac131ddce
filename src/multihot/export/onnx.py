"""ONNX export: the graph, int8 quantization, metadata; checked against PyTorch before it is written."""

from __future__ import annotations

import io
import json
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from multihot import __version__
from multihot.artifacts.rundir import ONNX_FILE, ONNX_INT8_FILE, TOKENIZER, VALIDATION, WEIGHTS
from multihot.artifacts.runs import WEIGHTS_DIGEST, weights_digest
from multihot.artifacts.validation import ValidationPredictions, read_validation
from multihot.core.errors import ExportError, MultihotError
from multihot.core.files import replaced
from multihot.data.encoding import Reading, RustTokenizer, tokenize
from multihot.export.int8 import (
    Int8Settings,
    judge_int8,
    logits_of,
    quantize_int8,
    refit_calibration,
    retune_thresholds,
    tuning_settings,
)
from multihot.export.parity import (
    FP32_TOLERANCE,
    INT8_MIN_AGREEMENT,
    INT8_TOLERANCE,
    ExportResult,
    load_transformer_run,
    measure_parity,
    parity_texts,
    run_ids,
    torch_probs,
)
from multihot.inference.onnx_backend import (
    GRAPH_RUN_CALIBRATION,
    GRAPH_RUN_THRESHOLDS,
    ONNX_DOCUMENT_INPUTS,
    ONNX_INPUTS,
    ONNX_OUTPUT,
    graph_calibration,
    graph_reading,
    onnx_probabilities,
    onnx_session,
)
from multihot.modeling.encoders import use_eager_attention
from multihot.modeling.first_token import first_token_only
from multihot.scoring.calibration import Calibration
from multihot.scoring.thresholds import Thresholds

logger = logging.getLogger(__name__)

QUANTIZATIONS = ("int8",)
OPSET = 17
MAX_ONNX_BYTES = 2 * 1024**3 - 64 * 1024**2
"""A single-file ONNX model is one protobuf message, limited to 2 GiB (a little kept for the graph)."""


# ---------------------------------------------------------------------------------------- ONNX
class ProbabilityGraph(nn.Module):
    """What the ONNX graph computes: a model's logits, calibrated (``logit / T + b``) when the run
    is, through the sigmoid, in float32."""

    def __init__(self, model: nn.Module, calibration: Calibration | None = None):
        super().__init__()
        self.model = model
        self.calibration = None
        if calibration is not None:
            self.calibration = tuple(
                torch.tensor(v, dtype=torch.float32)
                for v in (calibration.temperatures, calibration.biases)
            )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        chunk_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if chunk_index is None:
            logits = self.model(input_ids, attention_mask).float()
        else:
            logits = self.model(input_ids, attention_mask, chunk_index=chunk_index).float()
        if self.calibration is not None:
            temperatures, biases = self.calibration
            logits = logits / temperatures + biases
        return torch.sigmoid(logits)


def export_onnx(
    run: str | Path,
    output: str | Path | None = None,
    *,
    quantize: str | None = None,
    check_texts: Sequence[str] | None = None,
    batch_size: int = 32,
    int8: Int8Settings | None = None,
) -> ExportResult:
    """Export a run's model (single or seed ensemble) to ONNX and check it before writing it.

    An fp32 graph must give PyTorch's probabilities (:mod:`multihot.export.parity`). An int8 graph
    is judged on the run's validation rows (:mod:`multihot.export.int8`): its macro F1, with
    thresholds re-tuned for it (and the calibration refitted, for a calibrated run), within
    ``int8.max_f1_drop`` of the fp32 graph's; both are saved in its metadata. A run without
    validation rows gets the parity check instead, and its int8 graph the run's thresholds.

    Args:
        run: a run directory written by ``multihot train``.
        output: the ``.onnx`` file (or a directory to put it in); default ``run/model.onnx``, or
            ``run/model.int8.onnx`` with ``quantize="int8"``.
        quantize: ``None`` (fp32) or ``"int8"`` (dynamic quantization with onnxruntime).
        check_texts: texts of the user's to check parity on, besides the built-in ones (not used
            by the int8 check on validation rows).
        batch_size: texts per forward pass during the check.
        int8: how an int8 graph is quantized and how much F1 it may lose (default
            :class:`~multihot.export.int8.Int8Settings`).

    Returns:
        The path written and the check it passed.

    Raises:
        ExportError: a baseline run, a model over 2 GiB, or an export that fails its check
            (nothing is written then).

    Example:
        >>> result = export_onnx("runs/emotions", quantize="int8")  # doctest: +SKIP
        >>> print(result.accuracy.summary())  # doctest: +SKIP
        onnx int8 vs fp32 on 5426 validation texts x 28 labels, macro F1 with thresholds tuned out
        of fold (5 folds): fp32 0.5410, int8 0.5479, drop -0.0069 (allowed 0.0050); ...
    """
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    settings = int8 if int8 is not None else Int8Settings()
    _import_onnx()  # a clear error before any work when onnx is missing
    run = Path(run)
    clf = load_transformer_run(run, "ONNX")
    path = _onnx_destination(run, output, quantize)
    model = clf.model.to("cpu").float().eval()
    _check_size(model, run)
    reading = Reading.of(clf.config.model)
    texts = parity_texts(clf.tokenizer, reading) + list(check_texts or [])
    ids = run_ids(clf, texts)
    _check_light_tokenizer(run, clf, texts, ids)
    digest = weights_digest(run / WEIGHTS)
    validation = _validation_rows(run, clf) if quantize == "int8" else None
    if validation is not None:
        if check_texts:
            logger.warning("int8: checked on the run's validation rows; the given texts are unused")
        return _export_int8(clf, model, path, validation, settings, batch_size, digest)
    calibration = clf.calibration
    expected = torch_probs(
        model, ids, clf.tokenizer.pad_token_id, batch_size, calibration, reading.batch_tokens
    )
    proto = _trace(
        model, clf.tokenizer.pad_token_id, clf.config.model.encoder, calibration, reading.chunked
    )
    with replaced(path) as tmp:
        _write_graph(proto, tmp, clf, quantize, digest, settings)
        got = onnx_probabilities(
            onnx_session(tmp),
            ids,
            pad_token_id=clf.tokenizer.pad_token_id,
            batch_size=batch_size,
            batch_tokens=reading.batch_tokens,
        )
        exported = f"onnx {quantize or 'fp32'}"
        if quantize == "int8":
            parity = measure_parity(
                exported, expected, got, clf.thresholds, INT8_TOLERANCE, INT8_MIN_AGREEMENT
            )
        else:
            parity = measure_parity(exported, expected, got, clf.thresholds, FP32_TOLERANCE)
    logger.debug("wrote %s; %s", path, parity.summary())
    return ExportResult(path, "onnx", parity)


def _validation_rows(run: Path, clf) -> ValidationPredictions | None:
    """The rows an int8 graph is judged on; None (with a warning) for a run without them."""
    validation = read_validation(run, clf.labels)
    if validation is None or not validation.texts:
        logger.warning(
            "%s: no validation rows (%s): the int8 graph is checked by its largest probability "
            "difference from PyTorch instead of validation F1, and keeps the run's thresholds",
            run,
            VALIDATION,
        )
        return None
    return validation


def _export_int8(
    clf,
    model: nn.Module,
    path: Path,
    validation: ValidationPredictions,
    settings: Int8Settings,
    batch_size: int,
    digest: str | None,
) -> ExportResult:
    """The int8 graph, judged on the validation rows against the fp32 graph and written with the
    thresholds (and calibration) tuned for it; see :mod:`multihot.export.int8`.

    For a calibrated run the graph is first quantized without calibration: the logits it gives
    refit the calibration, which the final graph (the same int8 weights: quantizing is
    deterministic) computes, as the fp32 graph computes the run's. The thresholds are tuned on
    the final graph's own probabilities, so the F1 is the one its users get.
    """
    pad, reading = clf.tokenizer.pad_token_id, Reading.of(clf.config.model)
    ids = run_ids(clf, validation.texts)

    def trace(calibration: Calibration | None):
        return _trace(model, pad, clf.config.model.encoder, calibration, reading.chunked)

    def score(graph: Path) -> np.ndarray:
        session = onnx_session(graph)
        return onnx_probabilities(
            session, ids, pad_token_id=pad, batch_size=batch_size, batch_tokens=reading.batch_tokens
        )

    onnx = _import_onnx()
    with tempfile.TemporaryDirectory(prefix="multihot-int8-") as work:
        fp32, int8 = Path(work) / "fp32.onnx", Path(work) / "int8.onnx"
        onnx.save(trace(clf.calibration), str(fp32))
        fp32_probs = score(fp32)
        kept = quantize_int8(fp32 if clf.calibration is None else trace(None), int8, settings)
        int8_probs = score(int8)
        calibration = None
        if clf.calibration is not None:
            logits = logits_of(int8_probs)
            calibration = refit_calibration(clf.calibration, validation, logits, clf.config.train)
            quantize_int8(trace(calibration), int8, settings)
            int8_probs = score(int8)
        tuning = tuning_settings(clf.thresholds, clf.config.train)
        thresholds = retune_thresholds(validation, int8_probs, tuning)
        accuracy = judge_int8(
            validation,
            clf.labels.names,
            (fp32_probs, clf.thresholds),
            (int8_probs, thresholds),
            tuning,
            settings.max_f1_drop,
            calibration_refitted=calibration is not None,
        )
        if not accuracy.ok:
            raise ExportError(
                f"int8 check failed: {accuracy.summary()}; nothing written. Leave the layers "
                "that lose most in float32 (--int8-keep-float REGEX, e.g. 'output/dense'), allow "
                "a larger drop (--max-f1-drop), or use the fp32 graph"
            )
        quantization = {**settings.record(kept), "accuracy": accuracy.to_dict()}
        props = _tuned_graph_props(clf, digest, thresholds, calibration, quantization)
        _save_graph(onnx.load(str(int8)), path, props)
    logger.debug("wrote %s; %s", path, accuracy.summary())
    return ExportResult(path, "onnx", None, accuracy)


def _tuned_graph_props(
    clf,
    digest: str | None,
    thresholds: Thresholds,
    calibration: Calibration | None,
    quantization: dict,
) -> dict[str, str]:
    """The metadata of a graph tuned for itself: :func:`_graph_props` with its own thresholds
    and calibration (whole, as calibration.json holds one), the run's they replace
    (:data:`~multihot.inference.onnx_backend.GRAPH_RUN_THRESHOLDS`, ``..._CALIBRATION``: what
    loading checks the run against), and how it was quantized and judged."""
    names = clf.labels.names
    props = _graph_props(clf, "int8", digest)
    props.update(
        thresholds=_json(thresholds.to_dict(names)),
        calibration=_json(None if calibration is None else calibration.to_dict(names)),
        int8=_json(quantization),
    )
    props[GRAPH_RUN_THRESHOLDS] = _json(clf.thresholds.to_dict(names))
    props[GRAPH_RUN_CALIBRATION] = _json(graph_calibration(clf.calibration, clf.labels))
    return props


def _check_size(model: nn.Module, run: Path) -> None:
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    if size > MAX_ONNX_BYTES:
        raise ExportError(
            f"{run}: the model has {size / 1024**3:.1f} GiB of weights, more than a single-file "
            "ONNX model holds (2 GiB)"
        )


def _check_light_tokenizer(run: Path, clf, texts: list[str], ids: list[list[int]]) -> None:
    """The ONNX backend reads texts without transformers (:class:`RustTokenizer`): it must give
    the very ids the graph is checked on."""
    reading = Reading.of(clf.config.model)
    light = RustTokenizer.from_dir(run / TOKENIZER, reading.max_length)
    if tokenize(light, texts, reading) != ids or light.pad_token_id != clf.tokenizer.pad_token_id:
        raise ExportError(
            f"{run / TOKENIZER}: read with the tokenizers library alone (as ONNX prediction reads "
            "it), the tokenizer gives other ids than through transformers; nothing written"
        )


def _write_graph(
    proto, path: Path, clf, quantize: str | None, digest: str | None, settings: Int8Settings
) -> None:
    """Save the traced graph (int8-quantized with ``quantize``) with :func:`_graph_props`."""
    onnx = _import_onnx()
    props = _graph_props(clf, quantize or "fp32", digest)
    if quantize == "int8":
        kept = quantize_int8(proto, path, settings)
        proto = onnx.load(str(path))
        props["int8"] = _json(settings.record(kept))
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def _graph_props(clf, precision: str, digest: str | None) -> dict[str, str]:
    """A graph's metadata: the run's labels, thresholds, calibration and reading (``max_length``,
    ...), the digest of the weights it was traced from, the multihot version, JSON each."""
    names = clf.labels.names
    return {
        "labels": _json(names),
        "thresholds": _json(clf.thresholds.to_dict(names)),
        "max_length": _json(clf.config.model.max_length),
        "long_text": _json(clf.config.model.long_text),
        "reading": _json(graph_reading(clf.config.model)),
        WEIGHTS_DIGEST: _json(digest),
        "multihot_version": _json(__version__),
        "precision": _json(precision),
        "calibration": _json(graph_calibration(clf.calibration, clf.labels)),
    }


def _save_graph(proto, path: Path, props: dict[str, str]) -> None:
    """``proto`` with ``props`` as its metadata, written to ``path`` through a temporary file."""
    onnx = _import_onnx()
    onnx.helper.set_model_props(proto, props)
    with replaced(path) as tmp:
        onnx.save(proto, str(tmp))


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _onnx_destination(run: Path, output: str | Path | None, quantize: str | None) -> Path:
    name = ONNX_INT8_FILE if quantize == "int8" else ONNX_FILE
    if output is None:
        return run / name
    path = Path(output)
    if path.is_dir():
        return path / name
    if path.suffix.lower() != ".onnx":
        raise ExportError(f"{path}: expected an output path ending in .onnx, or a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _trace(
    model: nn.Module, pad_token_id: int, encoder: str, calibration=None, documents: bool = False
):
    """The model (its logits calibrated with ``calibration``, when given) traced to an ONNX
    ModelProto with dynamic batch and sequence axes; with ``documents``, the rows are windows and
    a ``chunk_index`` input groups them into documents (dynamic documents and windows axes)."""
    onnx = _import_onnx()
    # Trace with a padded row, so that the graph keeps the attention mask whatever the batch.
    vocab = model_vocab_size(model)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, max(vocab, 6), (2, 8), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 5:], attention_mask[1, 5:] = pad_token_id, 0
    use_eager_attention(model)  # the form onnxruntime fuses; no IsNaN guards
    # cls/pooler models: the last layer for the first token only (multihot.modeling.first_token).
    pruned = first_token_only(model)
    buffer = io.BytesIO()
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    inputs: tuple[torch.Tensor, ...] = (input_ids, attention_mask)
    names: tuple[str, ...] = ONNX_INPUTS
    rows = "batch"
    if documents:  # three windows: two of one document, one of another (and a padding slot)
        input_ids, attention_mask = input_ids.repeat(2, 1)[:3], attention_mask.repeat(2, 1)[:3]
        inputs = (input_ids, attention_mask, torch.tensor([[0, 1], [2, -1]]))
        names, rows = ONNX_DOCUMENT_INPUTS, "documents"
        axes["chunk_index"] = {0: "documents", 1: "windows"}
    try:
        with warnings.catch_warnings(), torch.no_grad(), pruned:
            # The TorchScript exporter (no onnxscript needed, seconds for BERT) warns about its own
            # deprecation and about shapes it records as constants; the parity check is the judge.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ProbabilityGraph(model, calibration).eval(),
                inputs,
                # torch annotates a path only; the TorchScript exporter writes to a file object too
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                input_names=list(names),
                output_names=[ONNX_OUTPUT],
                dynamic_axes={**axes, ONNX_OUTPUT: {0: rows}},
                opset_version=OPSET,
                do_constant_folding=True,
            )
    except Exception as err:  # the exporter raises many types for unsupported operators
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ExportError(f"cannot export encoder {encoder!r} to ONNX ({reason})") from None
    return onnx.load_from_string(buffer.getvalue())


def model_vocab_size(model: nn.Module) -> int:
    """The vocabulary size of a model's (first member's) encoder."""
    member = next(iter(getattr(model, "members", [model])))
    return int(member.encoder.config.vocab_size)


def _import_onnx():
    try:
        import onnx  # optional: onnx
    except ImportError:
        raise MultihotError(
            "onnx is not installed; install the ONNX extra: pip install 'multihot[onnx]'"
        ) from None
    return onnx
