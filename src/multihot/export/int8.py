"""int8 graphs: how a graph is quantized, and the check that it still labels texts as well.

A max-difference gate is the wrong judge of an int8 graph: quantizing moves every probability a
little, and the decisions are what users see. So an int8 export is judged on the run's validation
rows (validation.jsonl) by macro F1 with thresholds tuned for each graph: the int8 graph's may be
at most :data:`MAX_F1_DROP` below the fp32 graph's. The int8 graph's thresholds are re-tuned on its
own probabilities the way the run's were (strategy and settings), after refitting the run's
calibration on its logits when the run is calibrated; both travel in the graph's metadata, and the
ONNX backend applies them.

Both F1s are **out of fold**: each text's decisions come from thresholds tuned on the other folds
(:data:`CV_FOLDS`). Scored on the rows they were tuned on, thresholds also fit the noise of those
very probabilities, and int8 probabilities carry noise that changes with the batch a text is in
(activations are quantized with one scale per batch tensor): on the MiniLM run of GoEmotions,
thresholds tuned on the int8 graph at batch size 32 gave macro F1 0.571 there and 0.558 at batch
size 64, while the fp32 graph with the run's thresholds (tuned on the same rows) gave 0.566. Out
of fold neither side is scored on noise its thresholds have seen: fp32 0.541, int8 0.548. The
in-sample figures (fp32 with the run's thresholds, int8 with its saved ones) are in the record too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.validation import ValidationPredictions
from multihot.core.config import TrainConfig
from multihot.core.errors import ConfigError
from multihot.inference.onnx_backend import import_onnxruntime
from multihot.scoring.calibration import Calibration
from multihot.scoring.metrics import compute_metrics
from multihot.scoring.probabilities import logit
from multihot.scoring.thresholds import Thresholds, tune_thresholds

logger = logging.getLogger(__name__)

MAX_F1_DROP = 0.005
"""How far the int8 graph's out-of-fold validation macro F1 may fall below the fp32 graph's for
the export to be written."""
CV_FOLDS = 5
"""Folds of the out-of-fold F1s: thresholds tuned on four fifths of the rows score the fifth."""
REFIT_SOURCE = "validation, int8 graph"
"""``fitted_on`` of a calibration refitted on the int8 graph's validation logits."""
_LOGIT_CLIP = 1e-7
"""Probabilities are read back as logits within ``[clip, 1 - clip]``: float32 cannot tell a
probability above ``1 - 6e-8`` from 1, so logits beyond about 16 come back as 16."""


@dataclass(frozen=True)
class Int8Settings:
    """How ``export --quantize int8`` quantizes a graph and how much accuracy it may lose."""

    per_channel: bool = True
    """One scale per output column of each weight matrix instead of one per matrix: a column of
    small weights keeps its resolution beside a column of large ones (on the MiniLM run it cut
    the mean logit error from 0.155 to 0.060)."""
    reduce_range: bool = True
    """Weights in 7 bits: on x86 processors without VNNI, onnxruntime's u8 x s8 kernels add pairs
    of products in 16 bits, which weights outside [-64, 63] can overflow; the graph is exported
    once and served on any processor (on the MiniLM run, on a VNNI processor, its F1 was no
    lower: see the README's Export section)."""
    keep_float: str | None = None
    """A regular expression: weight MatMuls whose node names it matches (``re.search``) stay in
    float32, e.g. ``layer\\.\\d+/output/dense`` for BERT's feed-forward outputs (the graph's
    names follow the PyTorch modules). None: all are quantized."""
    max_f1_drop: float = MAX_F1_DROP
    """:data:`MAX_F1_DROP` unless given: the largest fall in validation macro F1 allowed."""

    def __post_init__(self) -> None:
        drop = self.max_f1_drop
        if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not math.isfinite(drop):
            raise ConfigError(f"max_f1_drop: expected a number in [0, 1], got {drop!r}")
        if not 0.0 <= drop <= 1.0:
            raise ConfigError(f"max_f1_drop: expected a number in [0, 1], got {drop!r}")
        if self.keep_float is not None:
            try:
                re.compile(self.keep_float)
            except re.error as err:
                raise ConfigError(
                    f"keep_float: {self.keep_float!r} is not a regular expression ({err})"
                ) from None

    def record(self, kept_float: list[str]) -> dict[str, Any]:
        """What the graph's metadata says about its quantization."""
        return {**asdict(self), "kept_float": kept_float}


@dataclass(frozen=True)
class Int8Accuracy:
    """The int8 graph against the fp32 graph on the run's validation rows.

    Attributes:
        num_texts: validation texts scored by both graphs.
        num_labels: labels per text.
        fp32_macro_f1: the fp32 graph's out-of-fold macro F1 (thresholds tuned the run's way on
            the other folds).
        int8_macro_f1: the same for the int8 graph.
        decision_agreement: fraction of (text, label) decisions the fp32 graph with the run's
            thresholds and the int8 graph with its own make alike (what a user switching graphs
            sees change).
        max_f1_drop: the largest ``fp32_macro_f1 - int8_macro_f1`` allowed.
        calibration_refitted: the run is calibrated and its calibration was refitted on the
            int8 graph's logits.
        fp32_in_sample_f1: the fp32 graph's macro F1 with the run's thresholds.
        int8_in_sample_f1: the int8 graph's macro F1 with the thresholds saved with it.
        folds: the folds of the out-of-fold figures.
    """

    num_texts: int
    num_labels: int
    fp32_macro_f1: float
    int8_macro_f1: float
    decision_agreement: float
    max_f1_drop: float
    calibration_refitted: bool
    fp32_in_sample_f1: float
    int8_in_sample_f1: float
    folds: int = CV_FOLDS

    @property
    def ok(self) -> bool:
        return bool(self.int8_macro_f1 >= self.fp32_macro_f1 - self.max_f1_drop)

    def summary(self) -> str:
        """One line with both F1s, the allowed drop and the agreement."""
        refit = "; calibration refitted on the int8 logits" if self.calibration_refitted else ""
        return (
            f"onnx int8 vs fp32 on {self.num_texts} validation texts x {self.num_labels} labels, "
            f"macro F1 with thresholds tuned out of fold ({self.folds} folds): fp32 "
            f"{self.fp32_macro_f1:.4f}, int8 {self.int8_macro_f1:.4f}, drop "
            f"{self.fp32_macro_f1 - self.int8_macro_f1:+.4f} (allowed {self.max_f1_drop:.4f}); "
            f"decisions agree on {self.decision_agreement:.2%} (fp32 with the run's thresholds, "
            f"int8 with its own){refit}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- quantizing
def weight_matmuls(proto) -> list[str]:
    """Names of the graph's MatMul nodes with a weight (an initializer) as second input: the
    nodes onnxruntime's dynamic quantization turns into int8."""
    weights = {tensor.name for tensor in proto.graph.initializer}
    return [n.name for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def quantize_int8(source, path: Path, settings: Int8Settings) -> list[str]:
    """Dynamic int8 quantization of the weights (activations quantized on the fly) of ``source``
    (a ModelProto or an .onnx file) into ``path``; returns the MatMuls left in float32.

    Only MatMul nodes with weights are quantized, where the work is. Left in float32: the embedding
    tables (quantized, every lookup would be followed by a DequantizeLinear over the batch's token
    vectors) and small layers exported as Gemm (BERT's pooler). That ran 8% faster on int8
    scratch-mini (median of 6 on one core) and is closer to the float model.
    """
    import onnx  # optional: onnx

    import_onnxruntime()  # a clear error when it is missing
    from onnxruntime.quantization import QuantType, quantize_dynamic  # optional: onnxruntime

    proto = source if isinstance(source, onnx.ModelProto) else onnx.load(str(source))
    keep = [] if settings.keep_float is None else _matching(proto, settings.keep_float)
    with quiet_root_logger():
        quantize_dynamic(
            proto,
            str(path),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            nodes_to_exclude=keep,
        )
    return keep


def _matching(proto, pattern: str) -> list[str]:
    names = [name for name in weight_matmuls(proto) if re.search(pattern, name)]
    if not names:
        raise ConfigError(
            f"keep_float {pattern!r} matches none of the graph's weight MatMuls "
            f"(such as {', '.join(weight_matmuls(proto)[:3]) or 'none'})"
        )
    return names


@contextlib.contextmanager
def quiet_root_logger():
    """Keep onnxruntime.quantization's advice (logged on the root logger) out of the user's terminal.

    It suggests a shape-inference pre-pass that matters for static quantization; the export's
    check tells whether this graph quantized well. Logging on a root logger without handlers would
    also install a default handler there (``logging.basicConfig``), which a NullHandler forestalls.
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


# ------------------------------------------------------------------------------------- judging
def logits_of(probs: np.ndarray) -> np.ndarray:
    """The logits behind a graph's probabilities (the graph ends in its sigmoid), float64.

    Example:
        >>> logits_of(np.array([[0.5, 0.8807971]])).round(4).tolist()
        [[0.0, 2.0]]
    """
    return logit(probs, _LOGIT_CLIP, dtype=np.float64)


def refit_calibration(
    run_calibration: Calibration,
    validation: ValidationPredictions,
    logits: np.ndarray,
    t: TrainConfig,
) -> Calibration:
    """The run's calibration fitted again, the same way (method; labels with fewer than
    ``min_support`` positives pooled, as training pools them), on the int8 graph's uncalibrated
    ``logits`` of the validation rows (their known pairs, with partial labels)."""
    return Calibration.fit(
        validation.targets,
        logits,
        REFIT_SOURCE,
        run_calibration.method,
        max(1, t.min_support),
        validation.known,
    )


def tuning_settings(run_thresholds: Thresholds, t: TrainConfig) -> dict[str, Any]:
    """The keywords of :func:`~multihot.scoring.thresholds.tune_thresholds` that tuned the run's
    thresholds: strategy, global value (``fixed``) and top-1 fallback as thresholds.json records
    them (``tune-thresholds`` may have changed them), the rest (``min_support``) from config.json."""
    settings = t.threshold_settings()
    settings.update(strategy=run_thresholds.strategy, top1_fallback=run_thresholds.top1_fallback)
    if run_thresholds.strategy == "fixed":
        settings["fixed_value"] = run_thresholds.global_value
    return settings


def retune_thresholds(
    validation: ValidationPredictions, probs: np.ndarray, settings: dict[str, Any]
) -> Thresholds:
    """Thresholds tuned with ``settings`` on the validation ``probs`` (known pairs only)."""
    return tune_thresholds(validation.targets, probs, known=validation.known, **settings)


def out_of_fold_macro_f1(
    validation: ValidationPredictions,
    probs: np.ndarray,
    settings: dict[str, Any],
    label_names: list[str],
    folds: int = CV_FOLDS,
) -> float:
    """Macro F1 of decisions each made by thresholds tuned (with ``settings``) on the other folds.

    The folds are a seeded shuffle of the rows, the same for every ``probs`` of these rows, so two
    graphs are compared on the same splits.
    """
    targets, known = validation.targets, validation.known
    order = np.random.default_rng(0).permutation(len(targets))
    parts = np.array_split(order, min(folds, len(targets)))
    decisions = np.zeros(targets.shape, dtype=bool)
    for k, held_out in enumerate(parts):
        rows = np.concatenate([part for j, part in enumerate(parts) if j != k] or [held_out])
        mask = None if known is None else known[rows]
        tuned = tune_thresholds(targets[rows], probs[rows], known=mask, **settings)
        decisions[held_out] = tuned.apply(probs[held_out])
    scores = compute_metrics(targets, probs, 0.5, label_names, decisions=decisions, known=known)
    return float(scores["macro_f1"])


def judge_int8(
    validation: ValidationPredictions,
    label_names: list[str],
    fp32: tuple[np.ndarray, Thresholds],
    int8: tuple[np.ndarray, Thresholds],
    settings: dict[str, Any],
    max_f1_drop: float,
    calibration_refitted: bool = False,
) -> Int8Accuracy:
    """Both graphs on the validation rows (``(probs, thresholds)`` each: the run's for fp32, the
    re-tuned ones for int8): out-of-fold macro F1 with thresholds tuned with ``settings``, macro F1
    with the given thresholds, and how many decisions the two share (known pairs only for the
    F1s, with partial labels)."""
    (fp32_probs, fp32_thresholds), (int8_probs, int8_thresholds) = fp32, int8
    targets = validation.targets
    agreement = (fp32_thresholds.apply(fp32_probs) == int8_thresholds.apply(int8_probs)).mean()
    return Int8Accuracy(
        num_texts=int(targets.shape[0]),
        num_labels=int(targets.shape[1]),
        fp32_macro_f1=out_of_fold_macro_f1(validation, fp32_probs, settings, label_names),
        int8_macro_f1=out_of_fold_macro_f1(validation, int8_probs, settings, label_names),
        decision_agreement=float(agreement),
        max_f1_drop=float(max_f1_drop),
        calibration_refitted=calibration_refitted,
        fp32_in_sample_f1=_macro_f1(fp32_thresholds, validation, fp32_probs, label_names),
        int8_in_sample_f1=_macro_f1(int8_thresholds, validation, int8_probs, label_names),
    )


def _macro_f1(
    thresholds: Thresholds, validation: ValidationPredictions, probs: np.ndarray, names: list[str]
) -> float:
    scores = thresholds.metrics(validation.targets, probs, names, validation.known)
    return float(scores["macro_f1"])
