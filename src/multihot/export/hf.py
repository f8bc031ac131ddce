"""Hugging Face export: a ``BertForSequenceClassification`` directory with the thresholds in its config."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file
from torch import nn

from multihot import __version__
from multihot.artifacts.rundir import HF_DIR, WEIGHTS
from multihot.artifacts.runs import load_tokenizer
from multihot.core.errors import ExportError
from multihot.core.files import write_dir_atomic
from multihot.data.encoding import tokenize
from multihot.export.parity import (
    FP32_TOLERANCE,
    ExportResult,
    Parity,
    load_transformer_run,
    measure_parity,
    parity_texts,
    run_ids,
    torch_probs,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


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
    run = Path(run)
    clf = load_transformer_run(run, "Hugging Face")
    m = clf.config.model
    _check_shape(clf, run)
    path = Path(output) if output is not None else run / HF_DIR
    _check_replaceable(path, run)
    model = clf.model.to("cpu").float().eval()
    texts = parity_texts(clf.tokenizer, m.max_length) + list(check_texts or [])
    ids = run_ids(clf, texts)
    expected = torch_probs(model, ids, clf.tokenizer.pad_token_id, batch_size, clf.calibration)
    parity: Parity | None = None

    def fill(tmp: Path) -> None:
        nonlocal parity
        _write_hf(tmp, clf, model)
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


def _check_shape(clf, run: Path) -> None:
    """Only a single pooler + linear BERT is a ``BertForSequenceClassification``."""
    m = clf.config.model
    if m.chunked:
        raise ExportError(
            f"{run}: the run reads long texts in windows (long_text chunk), which a "
            "BertForSequenceClassification cannot (it would read the first window only); "
            "export it with --format onnx instead"
        )
    model_type = clf.encoder_config.get("model_type")
    if m.ensemble > 1 or m.pooling != "pooler" or m.head != "linear" or model_type != "bert":
        raise ExportError(
            f"{run}: a Hugging Face export needs a single model with pooling 'pooler', head "
            f"'linear' and a BERT encoder (BertForSequenceClassification); this run has "
            f"pooling {m.pooling!r}, head {m.head!r}, encoder type {model_type!r}"
            + (f", an ensemble of {m.ensemble}" if m.ensemble > 1 else "")
            + "; export it with --format onnx instead"
        )


def _write_hf(directory: Path, clf, model: nn.Module) -> None:
    """The config (labels, thresholds, max_length in it), the weights and the tokenizer."""
    from transformers import AutoConfig  # heavy: transformers, imported by no module at its top

    names, max_length = clf.labels.names, clf.config.model.max_length
    raw = dict(clf.encoder_config)
    hf_config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    hf_config.architectures = ["BertForSequenceClassification"]
    hf_config.problem_type = "multi_label_classification"
    hf_config.id2label = dict(enumerate(names))
    hf_config.label2id = {name: i for i, name in enumerate(names)}
    hf_config.multihot_thresholds = clf.thresholds.to_dict(names)
    hf_config.multihot_max_length = max_length
    hf_config.multihot_version = __version__
    hf_config.save_pretrained(str(directory))
    save_file(
        hf_state_dict(model, clf.calibration), str(directory / WEIGHTS), metadata={"format": "pt"}
    )
    clf.tokenizer.model_max_length = max_length
    clf.tokenizer.save_pretrained(str(directory))


def _reload(directory: Path):
    """The export as transformers loads it: ``(model, tokenizer)``; every weight must map."""
    from transformers import AutoModelForSequenceClassification  # heavy: transformers

    with warnings.catch_warnings(), _no_progress_bars():
        warnings.simplefilter("ignore")
        hf_model, info = AutoModelForSequenceClassification.from_pretrained(
            str(directory), output_loading_info=True
        )
    unmatched = [k for key in ("missing_keys", "unexpected_keys") for k in info.get(key, [])]
    if unmatched:
        raise ExportError(f"Hugging Face export: weights not mapped: {', '.join(unmatched)}")
    return hf_model, load_tokenizer(directory)


@contextlib.contextmanager
def _no_progress_bars():
    """No "Loading weights" bar from transformers while the export checks its own directory."""
    from transformers.utils import logging as hf_logging  # heavy: transformers

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def hf_state_dict(model: nn.Module, calibration=None) -> dict[str, torch.Tensor]:
    """Our pooler + linear model's weights under ``BertForSequenceClassification`` names.

    ``encoder.*`` (a ``BertModel``, pooler included) becomes ``bert.*`` and the head's last layer
    ``head.out.{weight,bias}`` becomes ``classifier.{weight,bias}``; any other key is an error.
    With ``calibration`` (a calibrated run's), row ``j`` of the classifier is divided by ``T_j``
    and ``b_j`` added to its bias: the logits come out calibrated, exactly, for any tool that
    applies the sigmoid.
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
    if calibration is not None:
        t = torch.as_tensor(calibration.temperatures, dtype=torch.float32)
        b = torch.as_tensor(calibration.biases, dtype=torch.float32)
        out["classifier.weight"] = out["classifier.weight"] / t[:, None]
        out["classifier.bias"] = out["classifier.bias"] / t + b
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
