"""ONNX export: the graph, int8 quantization, metadata; checked against PyTorch before it is written."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from multihot import __version__
from multihot.artifacts.rundir import ONNX_FILE, ONNX_INT8_FILE, TOKENIZER, WEIGHTS
from multihot.artifacts.runs import WEIGHTS_DIGEST, weights_digest
from multihot.core.errors import ExportError, MultihotError
from multihot.core.files import temp_file
from multihot.data.encoding import Reading, RustTokenizer, tokenize
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
    ONNX_DOCUMENT_INPUTS,
    ONNX_INPUTS,
    ONNX_OUTPUT,
    graph_calibration,
    graph_reading,
    import_onnxruntime,
    onnx_probabilities,
    onnx_session,
)
from multihot.modeling.encoders import use_eager_attention
from multihot.modeling.first_token import first_token_only
from multihot.scoring.calibration import Calibration

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
) -> ExportResult:
    """Export a run's model (single or seed ensemble) to ONNX and check it against PyTorch.

    Args:
        run: a run directory written by ``multihot train``.
        output: the ``.onnx`` file (or a directory to put it in); default ``run/model.onnx``, or
            ``run/model.int8.onnx`` with ``quantize="int8"``.
        quantize: ``None`` (fp32) or ``"int8"`` (dynamic quantization with onnxruntime).
        check_texts: texts of the user's to check parity on, besides the built-in ones.
        batch_size: texts per forward pass during the check.

    Returns:
        The path written and the measured parity.

    Raises:
        ExportError: a baseline run, a model over 2 GiB, or an export that fails the parity check
            (nothing is written then).

    Example:
        >>> result = export_onnx("runs/emotions", quantize="int8")  # doctest: +SKIP
        >>> print(result.parity.summary())  # doctest: +SKIP
        onnx int8 vs torch fp32 on 64 texts x 28 labels: max |prob diff| 8.1e-03 ...
    """
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
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
    calibration = clf.calibration
    expected = torch_probs(
        model, ids, clf.tokenizer.pad_token_id, batch_size, calibration, reading.batch_tokens
    )
    proto = _trace(
        model, clf.tokenizer.pad_token_id, clf.config.model.encoder, calibration, reading.chunked
    )
    fd, tmp_name = temp_file(path)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write_graph(proto, tmp, clf, quantize, weights_digest(run / WEIGHTS))
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
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("wrote %s; %s", path, parity.summary())
    return ExportResult(path, "onnx", parity)


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


def _write_graph(proto, path: Path, clf, quantize: str | None, digest: str | None) -> None:
    """Save the traced graph (int8-quantized with ``quantize``) with the run's labels, thresholds,
    reading (``max_length``, ...), the digest of the weights it was traced from and the multihot
    version in its metadata."""
    onnx = _import_onnx()
    if quantize == "int8":
        _quantize_int8(proto, path)
        proto = onnx.load(str(path))
    names = clf.labels.names
    onnx.helper.set_model_props(
        proto,
        {
            "labels": json.dumps(names, ensure_ascii=False),
            "thresholds": json.dumps(clf.thresholds.to_dict(names), ensure_ascii=False),
            "max_length": json.dumps(clf.config.model.max_length),
            "long_text": json.dumps(clf.config.model.long_text),
            "reading": json.dumps(graph_reading(clf.config.model)),
            WEIGHTS_DIGEST: json.dumps(digest),
            "multihot_version": json.dumps(__version__),
            "precision": json.dumps(quantize or "fp32"),
            "calibration": json.dumps(
                graph_calibration(clf.calibration, clf.labels), ensure_ascii=False
            ),
        },
    )
    onnx.save(proto, str(path))


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


def _quantize_int8(proto, path: Path) -> None:
    """Dynamic int8 quantization of the weights (activations quantized on the fly) into ``path``.

    Only MatMul nodes with weights are quantized, where the work is. Left in float32: the embedding
    tables (quantized, every lookup would be followed by a DequantizeLinear over the batch's token
    vectors) and small layers exported as Gemm (BERT's pooler). That ran 8% faster on int8
    scratch-mini (median of 6 on one core) and is closer to the float model.
    """
    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic  # optional: onnxruntime

    with _quiet_root_logger():
        quantize_dynamic(
            proto, str(path), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )


@contextlib.contextmanager
def _quiet_root_logger():
    """Keep onnxruntime.quantization's advice (logged on the root logger) out of the user's terminal.

    It suggests a shape-inference pre-pass that matters for static quantization; the parity check
    tells whether this graph quantized well. Logging on a root logger without handlers would also
    install a default handler there (``logging.basicConfig``), which a NullHandler forestalls.
    """
    root = logging.getLogger()
    null = logging.NullHandler() if not root.handlers else None
    if null is not None:
        root.addHandler(null)
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        if null is not None:
            root.removeHandler(null)


def _import_onnx():
    try:
        import onnx  # optional: onnx
    except ImportError:
        raise MultihotError(
            "onnx is not installed; install the ONNX extra: pip install 'multihot[onnx]'"
        ) from None
    return onnx
