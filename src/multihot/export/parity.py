"""The parity check every export ends with: the exported model and the run's PyTorch model in fp32
score the same texts, a fixed, seeded set built from the tokenizer's vocabulary (one word to past
``max_length``) plus any of the user's, and the largest probability difference must be within
:data:`FP32_TOLERANCE` (int8: :data:`INT8_TOLERANCE`, and :data:`INT8_MIN_AGREEMENT` of the
decisions the same). See :mod:`multihot.export`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from multihot.artifacts.rundir import read_config
from multihot.classifier import Classifier
from multihot.core.config import is_baseline
from multihot.core.errors import ExportError
from multihot.data.encoding import Reading, tokenize
from multihot.data.readers import iter_text_batches
from multihot.export.int8 import Int8Accuracy
from multihot.inference.torch_backend import predict_logits
from multihot.scoring.calibration import Calibration, calibrated
from multihot.scoring.probabilities import sigmoid

logger = logging.getLogger(__name__)


FORMATS = ("onnx", "hf")

FP32_TOLERANCE = 1e-4
"""Largest absolute probability difference allowed between an fp32 export and PyTorch fp32."""
INT8_TOLERANCE = 0.05
"""The same for int8 graphs. Dynamic quantization of the weights moves probabilities: 1.1e-2 at
most for a scratch-mini on 1,064 GoEmotions texts x 28 labels (decisions agreed on 99.96%)."""
INT8_MIN_AGREEMENT = 0.99
"""Fraction of (text, label) decisions an int8 graph must share with PyTorch fp32."""
NUM_CHECK_TEXTS = 64


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
    """Where an export was written, and the check it passed: ``parity`` (against PyTorch), or
    for an int8 graph judged on the run's validation rows, ``accuracy`` (and no parity)."""

    path: Path
    format: str
    parity: Parity | None
    accuracy: Int8Accuracy | None = None


# ------------------------------------------------------------------------------------- checking
def parity_texts(
    tokenizer, reading: Reading | int, n: int = NUM_CHECK_TEXTS, seed: int = 0
) -> list[str]:
    """``n`` deterministic texts of whole-word vocabulary entries, from one word to past
    ``max_length`` (for a run reading documents in windows, to past three windows).

    Random word sequences are not language, but they exercise every embedding row the texts touch,
    every length (so padding inside a batch and truncation, or several windows) and the model's
    full output range.

    Example:
        >>> from multihot.modeling.encoders import train_wordpiece
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
    reading = Reading.coerce(reading)
    rng = np.random.default_rng(seed)
    longest = reading.max_length * (3 if reading.chunked else 1) + 8
    lengths = np.linspace(1, longest, n).round().astype(int)
    return [" ".join(rng.choice(words, size=int(length)).tolist()) for length in lengths]


def read_check_texts(path: str | Path, text_col: str = "text") -> list[str]:
    """Every text of a data file (csv, tsv, jsonl, json, parquet, txt) to check parity on."""
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


def load_transformer_run(run: Path, target: str):
    """The run's :class:`multihot.Classifier`; a baseline run is an :class:`ExportError`."""
    if is_baseline(read_config(run).get("kind")):
        raise ExportError(
            f"{run}: a baseline (TF-IDF + logistic regression) run cannot be exported to {target}; "
            "only transformer runs of 'multihot train' can"
        )
    return Classifier.load(run)


def run_ids(clf, texts: list[str]) -> list:
    return tokenize(clf.tokenizer, texts, Reading.of(clf.config.model))


def torch_probs(
    model: nn.Module,
    ids: list,
    pad_token_id: int,
    batch_size: int,
    calibration: Calibration | None = None,
    batch_tokens: int = 16384,
) -> np.ndarray:
    """The reference: PyTorch in fp32 on the CPU, with the batching every prediction path uses,
    and the whole model (the exported graph may leave out what the output does not read);
    calibrated with ``calibration``."""
    logits = predict_logits(
        model,
        ids,
        pad_token_id=pad_token_id,
        batch_size=batch_size,
        device="cpu",
        precision="fp32",
        prune=False,
        batch_tokens=batch_tokens,
    )
    return sigmoid(calibrated(logits, calibration))
