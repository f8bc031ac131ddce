"""Exporting a run: an ONNX graph (fp32 or int8) or a Hugging Face model directory.

Every export ends with a **parity check**: the exported model and the run's PyTorch model in fp32
score the same texts (a fixed, seeded set of texts built from the tokenizer's vocabulary at lengths
from one word to past ``max_length``, plus any texts of the user's), and the largest absolute
difference in probability must be within a tolerance (int8 graphs: also the decisions after the
run's thresholds must agree on at least 99% of (text, label) pairs). The export is written to a
temporary file or directory next to its destination and renamed into place only when the check
passes: an export that drifts raises :class:`multihot.errors.ExportError` and leaves nothing behind.

- ONNX: inputs ``input_ids`` and ``attention_mask`` (int64, ``(batch, sequence)``, both axes
  dynamic), output ``probabilities`` ``(batch, num_labels)``: the sigmoid is inside the graph. The
  labels, thresholds (the content of thresholds.json), ``max_length`` and multihot version travel in
  the model's metadata_props as JSON strings. Single models and seed ensembles both export.
- Hugging Face: runs with ``pooling="pooler"``, ``head="linear"`` and a BERT encoder are exactly a
  ``BertForSequenceClassification`` (the pooler output, dropout, one linear layer), so they become a
  directory that ``AutoModelForSequenceClassification`` and ``pipeline("text-classification")`` load
  as they are, with ``problem_type="multi_label_classification"`` and the thresholds in the config.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from multihot.encoders import use_eager_attention
from multihot.errors import ExportError, MultihotError
from multihot.first_token import first_token_only
from multihot.predictor import (
    ONNX_INPUTS,
    ONNX_OUTPUT,
    import_onnxruntime,
    onnx_probabilities,
    onnx_session,
)
from multihot.run import HF_DIR, ONNX_FILE, ONNX_INT8_FILE, temp_file

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "hf")
QUANTIZATIONS = ("int8",)

FP32_TOLERANCE = 1e-4
"""Largest absolute probability difference allowed between an fp32 export and PyTorch fp32."""
INT8_TOLERANCE = 0.05
"""The same for int8 graphs. Dynamic quantization of the weights moves probabilities: 1.1e-2 at
most for a scratch-mini on 1,064 GoEmotions texts x 28 labels (decisions agreed on 99.96%)."""
INT8_MIN_AGREEMENT = 0.99
"""Fraction of (text, label) decisions an int8 graph must share with PyTorch fp32."""
NUM_CHECK_TEXTS = 64
OPSET = 17
MAX_ONNX_BYTES = 2 * 1024**3 - 64 * 1024**2
"""A single-file ONNX model is one protobuf message, limited to 2 GiB (a little kept for the graph)."""


@dataclass(frozen=True)
class Parity:
    """How closely an export reproduces the PyTorch fp32 model on the check texts.

    Attributes:
        exported: what was compared, e.g. ``onnx fp32``, ``onnx int8``, ``hf``.
        num_texts: texts scored by both.
        num_labels: labels per text.
        max_abs_diff: the largest ``|p_export - p_torch|`` over all (text, label) pairs.
        decision_agreement: fraction of (text, label) pairs with the same decision after thresholds.
        tolerance: the largest ``max_abs_diff`` allowed.
        min_agreement: the smallest ``decision_agreement`` allowed (None: not checked).
    """

    exported: str
    num_texts: int
    num_labels: int
    max_abs_diff: float
    decision_agreement: float
    tolerance: float
    min_agreement: float | None = None

    @property
    def ok(self) -> bool:
        close = self.max_abs_diff <= self.tolerance
        agree = self.min_agreement is None or self.decision_agreement >= self.min_agreement
        return bool(close and agree)

    def summary(self) -> str:
        """One line with the measured figures and the limits they were held to."""
        agreement = f"decisions agree on {self.decision_agreement:.2%}"
        if self.min_agreement is not None:
            agreement += f" (required {self.min_agreement:.0%})"
        return (
            f"{self.exported} vs torch fp32 on {self.num_texts} texts x {self.num_labels} labels: "
            f"max |prob diff| {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e}), {agreement}"
        )


@dataclass(frozen=True)
class ExportResult:
    """Where an export was written, and its parity check."""

    path: Path
    format: str
    parity: Parity


# ---------------------------------------------------------------------------------------- ONNX
class ProbabilityGraph(nn.Module):
    """What the ONNX graph computes: a model's logits through the sigmoid, in float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(input_ids, attention_mask).float())


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
    onnx = _import_onnx()
    run = Path(run)
    clf = _load_transformer_run(run, "ONNX")
    path = _onnx_destination(run, output, quantize)
    model = clf.model.to("cpu").float().eval()
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    if size > MAX_ONNX_BYTES:
        raise ExportError(
            f"{run}: the model has {size / 1024**3:.1f} GiB of weights, more than a single-file "
            "ONNX model holds (2 GiB)"
        )
    texts = parity_texts(clf.tokenizer, clf.config.model.max_length) + list(check_texts or [])
    ids = _tokenize(clf, texts)
    expected = _torch_probs(model, ids, clf.tokenizer.pad_token_id, batch_size)

    proto = _trace(model, clf.tokenizer.pad_token_id, clf.config.model.encoder)
    fd, tmp_name = temp_file(path)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if quantize == "int8":
            _quantize_int8(proto, tmp)
            proto = onnx.load(str(tmp))
        from multihot import __version__

        onnx.helper.set_model_props(
            proto,
            {
                "labels": json.dumps(clf.labels.names, ensure_ascii=False),
                "thresholds": json.dumps(
                    clf.thresholds.to_dict(clf.labels.names), ensure_ascii=False
                ),
                "max_length": json.dumps(clf.config.model.max_length),
                "multihot_version": json.dumps(__version__),
                "precision": json.dumps(quantize or "fp32"),
            },
        )
        onnx.save(proto, str(tmp))
        session = onnx_session(tmp)
        got = onnx_probabilities(
            session, ids, pad_token_id=clf.tokenizer.pad_token_id, batch_size=batch_size
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


def _trace(model: nn.Module, pad_token_id: int, encoder: str):
    """The model traced to an ONNX ModelProto with dynamic batch and sequence axes."""
    onnx = _import_onnx()
    # Trace with a padded row, so that the graph keeps the attention mask whatever the batch.
    vocab = model_vocab_size(model)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, max(vocab, 6), (2, 8), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 5:], attention_mask[1, 5:] = pad_token_id, 0
    use_eager_attention(model)  # the form onnxruntime fuses; no IsNaN guards
    # cls/pooler models: the last layer for the first token only (multihot.first_token).
    pruned = first_token_only(model)
    buffer = io.BytesIO()
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    try:
        with warnings.catch_warnings(), torch.no_grad(), pruned:
            # The TorchScript exporter (no onnxscript needed, seconds for BERT) warns about its own
            # deprecation and about shapes it records as constants; the parity check is the judge.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ProbabilityGraph(model).eval(),
                (input_ids, attention_mask),
                buffer,
                dynamo=False,
                input_names=list(ONNX_INPUTS),
                output_names=[ONNX_OUTPUT],
                dynamic_axes={**axes, ONNX_OUTPUT: {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
            )
    except Exception as err:  # the exporter raises many types for unsupported operators
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ExportError(f"cannot export encoder {encoder!r} to ONNX ({reason})") from None
    return onnx.load_from_string(buffer.getvalue())


def model_vocab_size(model: nn.Module) -> int:
    """The vocabulary size of a model's (first member's) encoder."""
    member = model.members[0] if hasattr(model, "members") else model
    return int(member.encoder.config.vocab_size)


def _quantize_int8(proto, path: Path) -> None:
    """Dynamic int8 quantization of the weights (activations quantized on the fly) into ``path``.

    Only MatMul nodes with weights are quantized, where the work is. Left in float32: the embedding
    tables (quantized, every lookup would be followed by a DequantizeLinear over the batch's token
    vectors) and small layers exported as Gemm (BERT's pooler). That ran 8% faster on int8
    scratch-mini (median of 6 on one core) and is closer to the float model.
    """
    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

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
        import onnx
    except ImportError:
        raise MultihotError(
            "onnx is not installed; install the ONNX extra: pip install 'multihot[onnx]'"
        ) from None
    return onnx


# --------------------------------------------------------------------------------- Hugging Face
class _HFLogits(nn.Module):
    """A ``*ForSequenceClassification`` model seen as ids in, logits out (as our models are)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.num_labels = model.config.num_labels

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_hf(
    run: str | Path,
    output: str | Path | None = None,
    *,
    check_texts: Sequence[str] | None = None,
    batch_size: int = 32,
) -> ExportResult:
    """Write a run as a Hugging Face ``BertForSequenceClassification`` directory and check it.

    Only a single model with ``pooling="pooler"``, ``head="linear"`` and a BERT encoder is exactly
    that architecture: encoder -> pooler (tanh of a dense layer on [CLS]) -> dropout -> linear. The
    directory holds config.json (``problem_type="multi_label_classification"``, ``id2label``,
    ``label2id``, ``multihot_thresholds`` = the content of thresholds.json, ``multihot_max_length``,
    ``multihot_version``), model.safetensors and the tokenizer (``model_max_length`` = the run's
    ``max_length``, so ``truncation=True`` cuts where multihot does).

    Args:
        run: a run directory written by ``multihot train``.
        output: the directory to write (default ``run/hf``); an existing one is replaced only if it
            is an earlier Hugging Face export of multihot.
        check_texts: texts of the user's to check parity on, besides the built-in ones.
        batch_size: texts per forward pass during the check.

    Raises:
        ExportError: another model shape, or an export that fails the parity check (nothing is
            written then).

    Example:
        >>> export_hf("runs/emotions", "hf/emotions")  # doctest: +SKIP
        >>> from transformers import pipeline  # doctest: +SKIP
        >>> clf = pipeline("text-classification", model="hf/emotions", function_to_apply="sigmoid", top_k=None)  # doctest: +SKIP
    """
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from multihot import __version__
    from multihot.predictor import load_tokenizer
    from multihot.run import write_dir_atomic

    run = Path(run)
    clf = _load_transformer_run(run, "Hugging Face")
    m = clf.config.model
    model_type = clf.encoder_config.get("model_type")
    if m.ensemble > 1 or m.pooling != "pooler" or m.head != "linear" or model_type != "bert":
        raise ExportError(
            f"{run}: a Hugging Face export needs a single model with pooling 'pooler', head "
            f"'linear' and a BERT encoder (BertForSequenceClassification); this run has "
            f"pooling {m.pooling!r}, head {m.head!r}, encoder type {model_type!r}"
            + (f", an ensemble of {m.ensemble}" if m.ensemble > 1 else "")
            + "; export it with --format onnx instead"
        )
    path = Path(output) if output is not None else run / HF_DIR
    _check_replaceable(path, run)
    model = clf.model.to("cpu").float().eval()
    texts = parity_texts(clf.tokenizer, m.max_length) + list(check_texts or [])
    ids = _tokenize(clf, texts)
    expected = _torch_probs(model, ids, clf.tokenizer.pad_token_id, batch_size)
    names = clf.labels.names

    parity: Parity | None = None

    def fill(tmp: Path) -> None:
        nonlocal parity
        raw = dict(clf.encoder_config)
        hf_config = AutoConfig.for_model(raw.pop("model_type"), **raw)
        hf_config.architectures = ["BertForSequenceClassification"]
        hf_config.problem_type = "multi_label_classification"
        hf_config.id2label = dict(enumerate(names))
        hf_config.label2id = {name: i for i, name in enumerate(names)}
        hf_config.multihot_thresholds = clf.thresholds.to_dict(names)
        hf_config.multihot_max_length = m.max_length
        hf_config.multihot_version = __version__
        hf_config.save_pretrained(str(tmp))
        save_file(hf_state_dict(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        clf.tokenizer.model_max_length = m.max_length
        clf.tokenizer.save_pretrained(str(tmp))

        with warnings.catch_warnings(), _no_progress_bars():
            warnings.simplefilter("ignore")
            hf_model, info = AutoModelForSequenceClassification.from_pretrained(
                str(tmp), output_loading_info=True
            )
        unmatched = [k for key in ("missing_keys", "unexpected_keys") for k in info.get(key, [])]
        if unmatched:
            raise ExportError(f"Hugging Face export: weights not mapped: {', '.join(unmatched)}")
        hf_tokenizer = load_tokenizer(tmp)
        from multihot.batching import tokenize

        if tokenize(hf_tokenizer, texts, m.max_length) != ids:
            raise ExportError(
                "Hugging Face export: the saved tokenizer does not reproduce the run's token ids; "
                "nothing written"
            )
        got = _torch_probs(
            _HFLogits(hf_model.float().eval()), ids, hf_tokenizer.pad_token_id, batch_size
        )
        parity = measure_parity("hf", expected, got, clf.thresholds, FP32_TOLERANCE)

    write_dir_atomic(path, fill)
    assert parity is not None
    logger.debug("wrote %s; %s", path, parity.summary())
    return ExportResult(path, "hf", parity)


@contextlib.contextmanager
def _no_progress_bars():
    """No "Loading weights" bar from transformers while the export checks its own directory."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def hf_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our pooler + linear model's weights under ``BertForSequenceClassification`` names.

    ``encoder.*`` (a ``BertModel``, pooler included) becomes ``bert.*`` and the head's last layer
    ``head.out.{weight,bias}`` becomes ``classifier.{weight,bias}``; any other key is an error.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("encoder."):
            name = "bert." + key.removeprefix("encoder.")
        elif key in ("head.out.weight", "head.out.bias"):
            name = "classifier." + key.rsplit(".", 1)[1]
        else:
            raise ExportError(
                f"Hugging Face export: no BertForSequenceClassification name for {key}"
            )
        out[name] = tensor.detach().to("cpu", torch.float32).contiguous().clone()
    return out


def _check_replaceable(path: Path, run: Path) -> None:
    """Refuse to replace a file, the run itself, or a directory that is not an earlier HF export."""
    if not path.exists():
        return
    resolved, run_resolved = path.resolve(), run.resolve()
    if path.is_file():
        raise ExportError(f"{path}: exists and is a file; expected a directory to write")
    if resolved == run_resolved or resolved in run_resolved.parents:
        raise ExportError(f"{path}: would replace the run directory {run}; choose another -o")
    config = path / "config.json"
    ours = False
    if config.is_file():
        try:
            ours = "multihot_thresholds" in json.loads(config.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            ours = False
    if any(path.iterdir()) and not ours:
        raise ExportError(
            f"{path}: exists and is not a Hugging Face export of multihot; refusing to replace it"
        )


# ------------------------------------------------------------------------------------- checking
def parity_texts(tokenizer, max_length: int, n: int = NUM_CHECK_TEXTS, seed: int = 0) -> list[str]:
    """``n`` deterministic texts of whole-word vocabulary entries, from one word to past ``max_length``.

    Random word sequences are not language, but they exercise every embedding row the texts touch,
    every length (so padding inside a batch and truncation) and the model's full output range.

    Example:
        >>> from multihot.encoders import train_wordpiece
        >>> tok = train_wordpiece(["so happy for you", "this is sad"] * 5, vocab_size=200)
        >>> texts = parity_texts(tok, max_length=16, n=4)
        >>> [len(t.split()) for t in texts]
        [1, 9, 16, 24]
    """
    special = set(tokenizer.all_special_tokens)
    words = [
        token
        for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
        if token not in special
        and not token.startswith("##")
        and not (token.startswith("[") and token.endswith("]"))
        and token.strip()
    ]
    if not words:
        raise ExportError("the tokenizer's vocabulary has no whole words to build check texts from")
    rng = np.random.default_rng(seed)
    lengths = np.linspace(1, max_length + 8, n).round().astype(int)
    return [" ".join(rng.choice(words, size=int(length)).tolist()) for length in lengths]


def read_check_texts(path: str | Path, text_col: str = "text") -> list[str]:
    """Every text of a data file (csv, tsv, jsonl, json, parquet, txt) to check parity on."""
    from multihot.data import iter_text_batches

    return [text for batch in iter_text_batches(path, text_col=text_col) for text in batch]


def measure_parity(
    exported: str,
    expected: np.ndarray,
    got: np.ndarray,
    thresholds,
    tolerance: float,
    min_agreement: float | None = None,
) -> Parity:
    """Compare an export's probabilities with PyTorch fp32's; raise if they drift.

    Raises:
        ExportError: the largest difference is over ``tolerance`` or the decisions agree on fewer
            than ``min_agreement`` of the (text, label) pairs; the message gives the figures.
    """
    if got.shape != expected.shape:
        raise ExportError(
            f"parity check failed: {exported} gives probabilities of shape {got.shape}, "
            f"PyTorch {expected.shape}; nothing written"
        )
    agreement = float((thresholds.apply(got) == thresholds.apply(expected)).mean())
    parity = Parity(
        exported=exported,
        num_texts=int(expected.shape[0]),
        num_labels=int(expected.shape[1]),
        max_abs_diff=float(np.abs(got.astype(np.float64) - expected).max()),
        decision_agreement=agreement,
        tolerance=tolerance,
        min_agreement=min_agreement,
    )
    if not parity.ok:
        raise ExportError(f"parity check failed: {parity.summary()}; nothing written")
    return parity


def _load_transformer_run(run: Path, target: str):
    """The run's :class:`multihot.Classifier`; a baseline run is an :class:`ExportError`."""
    from multihot.classifier import Classifier
    from multihot.run import check_run_dir, read_json

    check_run_dir(run, required=("config.json",))
    if read_json(run / "config.json").get("kind") == "tfidf-logreg":
        raise ExportError(
            f"{run}: a baseline (TF-IDF + logistic regression) run cannot be exported to {target}; "
            "only transformer runs of 'multihot train' can"
        )
    return Classifier.load(run)


def _tokenize(clf, texts: list[str]) -> list[list[int]]:
    from multihot.batching import tokenize

    return tokenize(clf.tokenizer, texts, clf.config.model.max_length)


def _torch_probs(
    model: nn.Module, ids: list[list[int]], pad_token_id: int, batch_size: int
) -> np.ndarray:
    """The reference: PyTorch in fp32 on the CPU, with the batching every prediction path uses,
    and the whole model (the exported graph may leave out what the output does not read)."""
    from multihot.inference import predict_logits, sigmoid

    logits = predict_logits(
        model, ids, pad_token_id=pad_token_id, batch_size=batch_size, device="cpu",
        precision="fp32", prune=False,
    )  # fmt: skip
    return sigmoid(logits)
