"""Hugging Face export: a ``...ForSequenceClassification`` directory with the thresholds in its config.

Each family's sequence-classification head is a fixed shape; a run is exported only when its
pooling and head are exactly that shape (:data:`HF_HEADS`), so the exported model computes the
run's logits, not an approximation of them.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file
from torch import nn

from multihot import __version__
from multihot.artifacts.rundir import HF_DIR, WEIGHTS
from multihot.artifacts.runs import load_tokenizer
from multihot.core.config import HEAD_ACTIVATIONS
from multihot.core.errors import ExportError
from multihot.core.files import write_dir_atomic
from multihot.data.encoding import tokenize
from multihot.data.preprocess import prepare_texts
from multihot.export.parity import (
    FP32_TOLERANCE,
    ExportResult,
    Parity,
    load_transformer_run,
    measure_parity,
    parity_texts,
    torch_probs,
)
from multihot.modeling.encoders import transformers_progress

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from multihot.modeling.model import MultiLabelModel

logger = logging.getLogger(__name__)

README = "README.md"
"""The export's model card, written when the run prepares texts (:func:`readme`)."""


# ------------------------------------------------------------------------------- family heads
@dataclass(frozen=True)
class HFHead:
    """One family's ``...ForSequenceClassification`` head, as multihot settings and weight names.

    In eval mode (no dropout) each is one of multihot's pooling + head pairs, exactly:

    - BERT, ALBERT: the encoder's pooler (tanh of a dense layer on [CLS]), dropout, linear =
      ``pooling="pooler"``, ``head="linear"``;
    - RoBERTa, XLM-R, MPNet: [CLS], dropout, dense (hidden -> hidden), tanh, dropout, linear =
      ``pooling="cls"``, ``head="mlp"``, ``head_activation="tanh"``, ``head_hidden`` = the
      encoder's hidden size; ELECTRA the same with GELU, DistilBERT with ReLU;
    - DeBERTa-v2: its ContextPooler (dense + ``pooler_hidden_act`` on [CLS]), dropout, linear =
      ``pooling="cls"``, ``head="mlp"`` with any activation (written to ``pooler_hidden_act``).
    """

    architecture: str
    """The transformers class, e.g. ``RobertaForSequenceClassification``."""
    prefix: str
    """The encoder's attribute in it: its weights are ``{prefix}.*``."""
    pooling: str
    """The multihot pooling that is the head's input."""
    head: str
    """The multihot head: linear or mlp (then ``head_hidden`` must be the encoder's hidden size)."""
    names: dict[str, str]
    """Our head's layers (``head.out``, ``head.hidden``) under the family's names."""
    activations: tuple[str, ...] = ()
    """With head mlp: the activations the family's head can have."""
    dropout_fields: tuple[str, ...] = ()
    """Config fields set to the run's dropout, so fine-tuning the export drops as multihot did."""
    keeps_pooler: bool = False
    """Whether the family's encoder keeps its pooler (else ``encoder.pooler.*`` is left out:
    transformers builds these encoders without one, and cls pooling never reads it)."""


_LINEAR = {"head.out": "classifier"}
_DENSE_OUT = {"head.hidden": "classifier.dense", "head.out": "classifier.out_proj"}

HF_HEADS: dict[str, HFHead] = {
    "bert": HFHead(
        architecture="BertForSequenceClassification",
        prefix="bert",
        pooling="pooler",
        head="linear",
        names=_LINEAR,
        dropout_fields=("classifier_dropout",),
        keeps_pooler=True,
    ),
    "albert": HFHead(
        architecture="AlbertForSequenceClassification",
        prefix="albert",
        pooling="pooler",
        head="linear",
        names=_LINEAR,
        dropout_fields=("classifier_dropout_prob",),
        keeps_pooler=True,
    ),
    "roberta": HFHead(
        architecture="RobertaForSequenceClassification",
        prefix="roberta",
        pooling="cls",
        head="mlp",
        names=_DENSE_OUT,
        activations=("tanh",),
        dropout_fields=("classifier_dropout",),
    ),
    "xlm-roberta": HFHead(
        architecture="XLMRobertaForSequenceClassification",
        prefix="roberta",
        pooling="cls",
        head="mlp",
        names=_DENSE_OUT,
        activations=("tanh",),
        dropout_fields=("classifier_dropout",),
    ),
    "mpnet": HFHead(
        architecture="MPNetForSequenceClassification",
        prefix="mpnet",
        pooling="cls",
        head="mlp",
        names=_DENSE_OUT,
        activations=("tanh",),
    ),
    "electra": HFHead(
        architecture="ElectraForSequenceClassification",
        prefix="electra",
        pooling="cls",
        head="mlp",
        names=_DENSE_OUT,
        activations=("gelu",),
        dropout_fields=("classifier_dropout",),
    ),
    "distilbert": HFHead(
        architecture="DistilBertForSequenceClassification",
        prefix="distilbert",
        pooling="cls",
        head="mlp",
        names={"head.hidden": "pre_classifier", "head.out": "classifier"},
        activations=("relu",),
        dropout_fields=("seq_classif_dropout",),
    ),
    "deberta-v2": HFHead(
        architecture="DebertaV2ForSequenceClassification",
        prefix="deberta",
        pooling="cls",
        head="mlp",
        names={"head.hidden": "pooler.dense", "head.out": "classifier"},
        activations=HEAD_ACTIVATIONS,
        dropout_fields=("pooler_dropout", "cls_dropout"),
    ),
}
"""Encoder ``model_type`` -> its ``...ForSequenceClassification`` head. Not here: ModernBERT,
whose head ends in a LayerNorm that no multihot head has; other types are untested."""


def _settings(spec: HFHead, hidden: int) -> str:
    """The train flags that are ``spec``'s head, e.g. ``--pooling cls --head mlp ...``."""
    flags = f"--pooling {spec.pooling} --head {spec.head}"
    if spec.head == "mlp":
        flags += f" --head-hidden {hidden}"
        if spec.activations != HEAD_ACTIVATIONS:
            flags += f" --head-activation {'|'.join(spec.activations)}"
    return flags


# --------------------------------------------------------------------------------- Hugging Face
class _HFLogits(nn.Module):
    """A ``*ForSequenceClassification`` model seen as ids in, logits out (as our models are)."""

    def __init__(self, model: PreTrainedModel):
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
    """Write a run as a Hugging Face ``...ForSequenceClassification`` directory and check it.

    Only a single model whose pooling and head are exactly its encoder family's classification
    head exports (:data:`HF_HEADS`): BERT and ALBERT with ``pooling="pooler"``, ``head="linear"``;
    RoBERTa, XLM-R and MPNet with ``pooling="cls"``, ``head="mlp"``, ``head_activation="tanh"``
    and ``head_hidden`` = the encoder's hidden size (ELECTRA: gelu, DistilBERT: relu, DeBERTa-v2:
    any). The directory holds config.json (``problem_type="multi_label_classification"``,
    ``id2label``, ``label2id``, ``multihot_thresholds`` = the content of thresholds.json,
    ``multihot_max_length``, ``multihot_preprocess`` = the run's text preparation steps,
    ``multihot_version``), model.safetensors and the tokenizer (``model_max_length`` = the run's
    ``max_length``, so ``truncation=True`` cuts where multihot does). The tokenizer cannot apply
    the steps: with any, a README.md names them and says to apply them first
    (:func:`multihot.data.preprocess.prepare_texts`), and a warning is logged. The parity check
    tokenizes the same prepared texts with the run's tokenizer and the exported one.

    Args:
        run: a run directory written by ``multihot train``.
        output: the directory to write (default ``run/hf``); an existing one is replaced only if it
            is an earlier Hugging Face export of multihot.
        check_texts: texts of the user's to check parity on, besides the built-in ones.
        batch_size: texts per forward pass during the check.

    Raises:
        ExportError: another model shape (before anything is written), or an export that fails
            the parity check (nothing is written then).

    Example:
        >>> export_hf("runs/emotions", "hf/emotions")  # doctest: +SKIP
        >>> from transformers import pipeline  # doctest: +SKIP
        >>> clf = pipeline("text-classification", model="hf/emotions", function_to_apply="sigmoid", top_k=None)  # doctest: +SKIP
    """
    run = Path(run)
    clf = load_transformer_run(run, "Hugging Face")
    m = clf.config.model
    spec = _check_shape(clf, run)
    path = Path(output) if output is not None else run / HF_DIR
    _check_replaceable(path, run)
    model = clf.model.to("cpu").float().eval()
    steps = list(m.preprocess or [])
    if steps:
        logger.warning(
            "%s: the run prepares each text (%s) before its tokenizer, which a Hugging Face model "
            "cannot do: users of %s must apply the steps first "
            "(multihot.data.preprocess.prepare_texts; listed as multihot_preprocess in its "
            "config.json and in its README.md)",
            run,
            ", ".join(steps),
            path,
        )
    # The texts as the run reads them, prepared once: the run's ids and the exported tokenizer's
    # are compared on the same prepared texts (the export's tokenizer prepares nothing).
    texts = prepare_texts(
        parity_texts(clf.tokenizer, m.max_length) + list(check_texts or []), steps
    )
    ids = tokenize(clf.tokenizer, texts, m.max_length)
    expected = torch_probs(model, ids, clf.tokenizer.pad_token_id, batch_size, clf.calibration)
    parity: Parity | None = None

    def fill(tmp: Path) -> None:
        nonlocal parity
        _write_hf(tmp, clf, model, spec)
        hf_model, hf_tokenizer = _reload(tmp)
        if tokenize(hf_tokenizer, texts, m.max_length) != ids:
            raise ExportError(
                "Hugging Face export: the saved tokenizer does not reproduce the run's token ids; "
                "nothing written"
            )
        got = torch_probs(
            _HFLogits(hf_model.float().eval()), ids, hf_tokenizer.pad_token_id, batch_size
        )
        parity = measure_parity("hf", expected, got, clf.thresholds, FP32_TOLERANCE)

    write_dir_atomic(path, fill)
    assert parity is not None
    logger.debug("wrote %s; %s", path, parity.summary())
    return ExportResult(path, "hf", parity)


def _check_shape(clf, run: Path) -> HFHead:
    """The run's family head, if the run's pooling and head are exactly it; else an ExportError."""
    m = clf.config.model
    if m.chunked:
        raise ExportError(
            f"{run}: the run reads long texts in windows (long_text chunk), which a "
            "...ForSequenceClassification cannot (it would read the first window only); "
            "export it with --format onnx instead"
        )
    if m.ensemble > 1:
        raise ExportError(
            f"{run}: a Hugging Face export needs a single model; this run is an ensemble of "
            f"{m.ensemble}; export it with --format onnx instead"
        )
    model_type = clf.encoder_config.get("model_type")
    spec = HF_HEADS.get(model_type)
    if spec is None:
        known = ", ".join(HF_HEADS)
        raise ExportError(
            f"{run}: no multihot pooling and head is exactly the classification head of a "
            f"{model_type!r} encoder, so it has no Hugging Face export (encoder types that "
            f"have: {known}); export it with --format onnx instead"
        )
    hidden = clf.model.encoder.config.hidden_size
    exact = m.pooling == spec.pooling and m.head == spec.head
    if spec.head == "mlp":
        exact = exact and m.head_hidden == hidden and m.head_activation in spec.activations
    if not exact:
        has = f"pooling {m.pooling!r}, head {m.head!r}"
        if m.head == "mlp":
            has += f", head_hidden {m.head_hidden}, head_activation {m.head_activation!r}"
        wants = f"pooling {spec.pooling!r} and head {spec.head!r}"
        if spec.head == "mlp":
            wants += f" with head_hidden {hidden} (the encoder's hidden size)"
            if spec.activations != HEAD_ACTIVATIONS:
                wants += f" and head_activation {' or '.join(map(repr, spec.activations))}"
        raise ExportError(
            f"{run}: a Hugging Face export of a {model_type!r} encoder ({spec.architecture}) "
            f"needs {wants}; this run has {has}; train with {_settings(spec, hidden)} for it, or "
            "export this run with --format onnx instead"
        )
    return spec


def _write_hf(directory: Path, clf, model: MultiLabelModel, spec: HFHead) -> None:
    """The config (labels, thresholds, max_length in it), the weights and the tokenizer."""
    from transformers import AutoConfig  # heavy: transformers, imported by no module at its top

    m = clf.config.model
    names, max_length = clf.labels.names, m.max_length
    raw = dict(clf.encoder_config)
    hf_config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    hf_config.architectures = [spec.architecture]
    for name in spec.dropout_fields:
        setattr(hf_config, name, m.dropout)
    if spec.architecture == "DebertaV2ForSequenceClassification":
        # Its ContextPooler is our mlp head's hidden layer: size and activation from the run.
        hf_config.pooler_hidden_size = m.head_hidden
        hf_config.pooler_hidden_act = m.head_activation
    hf_config.problem_type = "multi_label_classification"
    hf_config.id2label = dict(enumerate(names))
    hf_config.label2id = {name: i for i, name in enumerate(names)}
    hf_config.multihot_thresholds = clf.thresholds.to_dict(names)
    hf_config.multihot_max_length = max_length
    hf_config.multihot_preprocess = list(m.preprocess or [])
    hf_config.multihot_version = __version__
    hf_config.save_pretrained(str(directory))
    if m.preprocess:
        (directory / README).write_text(readme(m.preprocess, names), encoding="utf-8")
    save_file(
        hf_state_dict(model, clf.calibration), str(directory / WEIGHTS), metadata={"format": "pt"}
    )
    clf.tokenizer.model_max_length = max_length
    clf.tokenizer.save_pretrained(str(directory))


def readme(steps: Sequence[str], labels: Sequence[str]) -> str:
    """The README.md of an export whose run prepares texts: what the model is, and the paragraph
    that names the steps a user must apply before its tokenizer."""
    return (
        "# multihot multi-label classifier\n\n"
        f"A `...ForSequenceClassification` model exported by multihot {__version__}: "
        f"{len(labels)} labels, each scored on its own (`problem_type` "
        "`multi_label_classification`: apply a sigmoid to each logit, not a softmax); the "
        "run's thresholds are `multihot_thresholds` in config.json.\n\n"
        "## Text preparation\n\n"
        f"The model was trained on texts prepared by these steps, in this order: "
        f"{', '.join(f'`{step}`' for step in steps)} (`multihot_preprocess` in config.json). "
        "Its tokenizer does not apply them: prepare every text the same way before tokenizing "
        "it, or the model reads text unlike what it learned from, e.g. with "
        "`multihot.data.preprocess.prepare_texts(texts, config.multihot_preprocess)`.\n"
    )


def _reload(directory: Path):
    """The export as transformers loads it: ``(model, tokenizer)``; every weight must map."""
    from transformers import AutoModelForSequenceClassification  # heavy: transformers

    with warnings.catch_warnings(), transformers_progress(False):
        warnings.simplefilter("ignore")
        hf_model, info = AutoModelForSequenceClassification.from_pretrained(
            str(directory), output_loading_info=True
        )
    unmatched = [k for key in ("missing_keys", "unexpected_keys") for k in info.get(key, [])]
    if unmatched:
        raise ExportError(f"Hugging Face export: weights not mapped: {', '.join(unmatched)}")
    return hf_model, load_tokenizer(directory)


def hf_state_dict(model: MultiLabelModel, calibration=None) -> dict[str, torch.Tensor]:
    """Our model's weights under its family's ``...ForSequenceClassification`` names.

    ``encoder.*`` becomes ``{prefix}.*`` (``bert.*``, ``roberta.*``, ...; the encoder's pooler is
    left out where the family's head does not read it) and the head's layers take the family's
    names (:data:`HF_HEADS`): for BERT ``head.out.{weight,bias}`` becomes
    ``classifier.{weight,bias}``; for RoBERTa ``head.hidden`` becomes ``classifier.dense`` and
    ``head.out`` ``classifier.out_proj``. Any other key is an error. With ``calibration`` (a
    calibrated run's), row ``j`` of the output layer is divided by ``T_j`` and ``b_j`` added to
    its bias: the logits come out calibrated, exactly, for any tool that applies the sigmoid.
    """
    model_type = model.encoder.config.model_type
    spec = HF_HEADS.get(model_type)
    if spec is None:
        raise ExportError(
            f"Hugging Face export: no ...ForSequenceClassification for {model_type!r}"
        )
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        layer, _, param = key.rpartition(".")
        if key.startswith("encoder."):
            if key.startswith("encoder.pooler.") and not spec.keeps_pooler:
                continue
            name = f"{spec.prefix}." + key.removeprefix("encoder.")
        elif layer in spec.names and param in ("weight", "bias"):
            name = f"{spec.names[layer]}.{param}"
        else:
            raise ExportError(f"Hugging Face export: no {spec.architecture} name for {key}")
        out[name] = tensor.detach().to("cpu", torch.float32).contiguous().clone()
    if calibration is not None:
        t = torch.as_tensor(calibration.temperatures, dtype=torch.float32)
        b = torch.as_tensor(calibration.biases, dtype=torch.float32)
        last = spec.names["head.out"]
        out[f"{last}.weight"] = out[f"{last}.weight"] / t[:, None]
        out[f"{last}.bias"] = out[f"{last}.bias"] / t + b
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
