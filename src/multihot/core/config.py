"""Typed configuration: what to build (:class:`ModelConfig`), how to train it (:class:`TrainConfig`)
and how to read the data (:class:`DataConfig`).

A ``--config`` file (YAML or JSON) holds the same keys as the command-line flags, flat, with dashes
or underscores; each key belongs to exactly one of the three dataclasses, and an unknown key is an
error, never a silent attribute.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import json
import math
import numbers
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from multihot.core.errors import ConfigError
from multihot.core.metric_names import PRIMARY_METRICS

POOLINGS = ("cls", "pooler", "mean", "max", "attention", "label-attention")
HEADS = ("linear", "mlp")
HEAD_ACTIVATIONS = ("gelu", "relu", "tanh")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOSSES = ("bce", "focal", "asl")
TRACKERS = ("tensorboard", "mlflow")
THRESHOLD_STRATEGIES = ("fixed", "global", "per-label")
LONG_TEXT = ("truncate", "chunk")
CHUNK_POOLINGS = ("max", "mean", "attention")
PREPROCESS_STEPS = (
    "unicode", "html", "urls", "emails", "users", "numbers", "emoji", "whitespace", "lowercase"
)  # fmt: skip
"""The text preparation steps, in the order they run (:mod:`multihot.data.preprocess`)."""
DEFAULT_PREPROCESS = ("unicode", "html", "whitespace")
"""The steps a new run takes when ``preprocess`` is not given: each helped or was neutral on both
GoEmotions dev and a Reuters hold-out with all-MiniLM-L6-v2 (``benchmarks/preprocess.py``)."""

TRANSFORMER_KIND = "transformer"
"""The run kind (``kind`` in a run's config.json) of a model trained by ``multihot train``."""
BASELINE_KIND = "tfidf-logreg"
"""The run kind of the linear baseline (TF-IDF + logistic regression), also its ``encoder`` setting:
the one place that names it; ask :func:`is_baseline` rather than comparing strings."""
RUN_KINDS = (TRANSFORMER_KIND, BASELINE_KIND)


def is_baseline(what: RunConfig | ModelConfig | str | None) -> bool:
    """Whether ``what`` (a config, its model section, an encoder name or a run kind) is the linear
    baseline rather than a transformer.

    Example:
        >>> is_baseline(BASELINE_KIND), is_baseline(TRANSFORMER_KIND), is_baseline(RunConfig())
        (True, False, False)
    """
    if isinstance(what, RunConfig):
        what = what.model
    if isinstance(what, ModelConfig):
        what = what.encoder
    return what == BASELINE_KIND


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


def _preprocess_steps(given: list[str]) -> list[str]:
    """``preprocess`` checked and in the order the steps run; ``none`` (or nothing) is no step."""
    steps = [step.strip().lower() for step in given]
    if steps in ([], ["none"]):
        return []
    unknown = [step for step in steps if step not in PREPROCESS_STEPS]
    if unknown:
        raise ConfigError(
            f"preprocess: unknown step {unknown[0]!r}; expected a comma-separated list of "
            f"{', '.join(PREPROCESS_STEPS)}, or none"
        )
    return [step for step in PREPROCESS_STEPS if step in steps]


def _check_below_one(name: str, value: float) -> None:
    """A rate or fraction in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name}: expected a value in [0, 1), got {value}")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(
            f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {value}"
        )


@functools.cache
def field_types(cls: type) -> dict[str, tuple[Any, bool]]:
    """Each field of dataclass ``cls`` and its type, ``X | None`` unwrapped: ``(type, optional)``.

    Example:
        >>> field_types(DataConfig)["label_cols"]
        (list[str], True)
    """
    kinds = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        args = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
        kinds[f.name] = (args[0], union)
    return kinds


TYPE_NAMES: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list[str]: "a list of names (or one comma-separated string)",
}


def typed_value(name: str, value: Any, kind: Any, optional: bool = False) -> Any:
    """``value`` as a field of type ``kind`` holds it, or a :class:`ConfigError` naming ``name``.

    A number is taken as written: an int is a float too, a float with no fraction (``1e4``) an int
    (NumPy's numbers too, made Python's); a string is never read as a number or a flag (``"1e-4"``
    is refused, not guessed at). A list field takes a list of strings or one comma-separated
    string, as its flag does.

    Example:
        >>> typed_value("epochs", 3.0, int), typed_value("lr", 1, float)
        (3, 1.0)
    """
    if value is None and optional:
        return None
    if kind is float and _is_number(value):
        with contextlib.suppress(OverflowError):  # an int past the floats is no number here
            return float(value)
    if kind is int and _is_whole(value):
        return int(value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind == list[str]:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
    raise ConfigError(f"{name}: expected {TYPE_NAMES.get(kind, kind)}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """``value`` for a message: its repr, cut to 60 characters (a 5,000-digit int has none)."""
    if value is None:
        return "null"
    try:
        text = repr(value)
    except ValueError:
        return "an integer too long to print"
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    """A finite real number that is not a bool (NumPy's bool is no ``numbers.Real`` either)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or math.isfinite(value)


def _is_whole(value: Any) -> bool:
    """A number with no fraction (``3``, ``1e4``) that a 64-bit int (a tensor's, an array's) holds."""
    if not _is_number(value):
        return False
    whole = isinstance(value, numbers.Integral) or float(value).is_integer()
    return whole and -(2**63) <= value < 2**63


def check_types(config: Any) -> None:
    """Every field of dataclass ``config`` made its declared type, before any check compares it
    (a string ``lr`` would otherwise fail as ``'<' not supported``, naming no field)."""
    cls: type = type(config)
    for name, (kind, optional) in field_types(cls).items():
        setattr(config, name, typed_value(name, getattr(config, name), kind, optional))


@dataclass
class ModelConfig:
    """The network: encoder, pooling and head."""

    encoder: str | None = None
    """A Hugging Face checkpoint (hub name or local directory), minilm (all-MiniLM-L6-v2, installed
    as a package) or scratch-tiny|mini|small|base (random weights); default: minilm when it is
    installed, scratch-mini otherwise."""
    pooling: str | None = None
    """How token states become one vector: cls, pooler, mean, max, attention, label-attention
    (default: mean for scratch encoders, label-attention for pretrained ones)."""
    head: str = "linear"
    """linear (dropout + one layer) or mlp (dropout, layer, head_activation, dropout, layer)."""
    head_hidden: int = 256
    """Hidden size of the mlp head."""
    head_activation: str = "gelu"
    """Activation of the mlp head's hidden layer: gelu, relu or tanh (tanh, with cls pooling and
    head_hidden = the encoder's hidden size, is RoBERTa's classification head)."""
    dropout: float = 0.1
    """Dropout before the head's layers."""
    max_length: int = 128
    """Tokens the encoder reads at once, special tokens included: a text is truncated to this
    (long_text truncate), or read in windows of this size (chunk)."""
    long_text: str = "truncate"
    """What to do with a text longer than max_length: truncate (read its first max_length tokens)
    or chunk (read all of it in overlapping windows of max_length tokens, pooled into one vector
    per document before the head, so the loss and the thresholds see whole documents)."""
    stride: int | None = None
    """With chunk: tokens consecutive windows share (default: a quarter of a window)."""
    chunk_pooling: str = "max"
    """With chunk: how a document's windows become one vector: max, mean, or attention (a learned
    weight per window over that document's windows)."""
    max_chunks: int = 32
    """With chunk: windows per document at most (bounds memory); the rest of a longer document
    is not read, and training says how many documents and tokens that cut."""
    batch_tokens: int = 16384
    """With chunk: ids per encoder pass at most. Evaluation and prediction pack the windows of
    several documents into one pass up to it; a training batch over it takes one forward and
    backward pass per group of its documents (the same gradient, the memory of one group)."""
    preprocess: list[str] | None = None
    """Text preparation before the tokenizer, steps run in this order: unicode (repair mojibake,
    NFC), html (drop tags, unescape entities), urls, emails, users, numbers (each replaced by one
    word: URL, EMAIL, @USER, NUMBER), emoji (replaced by their names), whitespace (collapse runs),
    lowercase (refused where the tokenizer lower-cases already, as uncased and scratch ones do,
    or the encoder is cased, unless force_lowercase); or none. Saved with the run and
    applied wherever it reads a text (default: unicode,html,whitespace; a run saved before this
    setting existed reads texts as they are)."""
    force_lowercase: bool = False
    """Allow the lowercase step with a pretrained encoder (refused otherwise: a cased one learned
    from capitals, an uncased one lower-cases already)."""
    vocab_size: int = 8000
    """WordPiece vocabulary size for scratch encoders (capped by what the data supports)."""
    ensemble: int = 1
    """Members of a seed ensemble: models trained with seeds seed, seed+1, ... whose probabilities
    are averaged (training takes this many times as long)."""
    ensemble_pooling: list[str] | None = None
    """Pooling of each ensemble member in turn, e.g. ["mean", "cls"] (default: pooling for all).
    Members that read the text differently disagree more, so their average gains more."""

    @property
    def encoder_name(self) -> str:
        """``encoder``, resolved: a run's config always has one (see ``resolve_config``)."""
        if self.encoder is None:
            raise ConfigError("encoder: not resolved (a run's config always has one)")
        return self.encoder

    @property
    def window_stride(self) -> int:
        """``stride``, or its default: a quarter of a window."""
        return self.stride if self.stride is not None else self.max_length // 4

    @property
    def chunked(self) -> bool:
        """Whether texts are read whole, in windows (``long_text="chunk"``)."""
        return self.long_text == "chunk"

    def member_pooling(self, member: int) -> str:
        """The pooling of ensemble member ``member`` (0-based)."""
        if self.pooling is None:
            raise ConfigError("pooling: not resolved (a run's config always has one)")
        poolings = self.ensemble_pooling or [self.pooling]
        return poolings[member % len(poolings)]

    def __post_init__(self) -> None:
        check_types(self)  # also splits a comma-separated ensemble_pooling and preprocess
        if self.preprocess is not None:
            self.preprocess = _preprocess_steps(self.preprocess)
        if self.pooling is not None:
            _check_choice("pooling", self.pooling, POOLINGS)
        for pooling in self.ensemble_pooling or []:
            _check_choice("ensemble_pooling", pooling, POOLINGS)
        _check_choice("head", self.head, HEADS)
        _check_choice("head_activation", self.head_activation, HEAD_ACTIVATIONS)
        _check_positive("head_hidden", self.head_hidden)
        _check_below_one("dropout", self.dropout)
        if self.max_length < 8:
            raise ConfigError(f"max_length: expected at least 8, got {self.max_length}")
        _check_choice("long_text", self.long_text, LONG_TEXT)
        _check_choice("chunk_pooling", self.chunk_pooling, CHUNK_POOLINGS)
        if self.stride is not None and not 0 <= self.stride <= self.max_length // 2:
            raise ConfigError(
                f"stride: expected 0 to half of max_length ({self.max_length // 2}), got {self.stride}"
            )
        if self.max_chunks < 1:
            raise ConfigError(f"max_chunks: expected at least 1, got {self.max_chunks}")
        if self.batch_tokens < self.max_length:
            raise ConfigError(
                f"batch_tokens: expected at least max_length ({self.max_length}), "
                f"got {self.batch_tokens}"
            )
        if self.ensemble < 1:
            raise ConfigError(f"ensemble: expected at least 1, got {self.ensemble}")
        if self.vocab_size < 100:
            raise ConfigError(f"vocab_size: expected at least 100, got {self.vocab_size}")


@dataclass
class TrainConfig:
    """Optimisation, loss, evaluation and threshold tuning."""

    epochs: int | None = None
    """Passes over the training data (default: enough for about 2,000 optimiser steps, at least 3
    and at most 40; early stopping ends the run sooner when validation stops improving)."""
    batch_size: int = 64
    """Texts per optimisation step over all processes (the global batch; each process takes an
    equal slice, so it must be a multiple of their number), before gradient accumulation."""
    lr: float | None = None
    """Peak learning rate of the encoder (default: 4e-4 for scratch encoders, 1e-4 for pretrained)."""
    head_lr: float | None = None
    """Peak learning rate of pooling and head (default: lr for scratch encoders, 10 x lr for
    pretrained ones, whose head starts from random weights on top of trained ones)."""
    layer_lr_decay: float | None = None
    """Each encoder block below the top one trains at this fraction of the rate of the block above
    it, the embeddings lowest (default: 1, one rate, for scratch encoders; 0.8 for pretrained)."""
    freeze_encoder_epochs: float = 0.0
    """Train only pooling and head for this many epochs (fractions allowed) before the encoder;
    the encoder's warmup starts when it is unfrozen."""
    freeze_embeddings: bool = False
    """Keep the encoder's embeddings as they are for the whole run."""
    gradient_checkpointing: bool = False
    """Recompute the encoder's activations in the backward pass instead of keeping them: far less
    memory for big encoders and long texts, about a third more time per step."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: float = 0.1
    """Fraction of steps with a linear warmup; then linear decay to zero."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this value (0 disables)."""
    grad_accum: int = 1
    """Accumulate gradients over this many batches per optimiser step."""
    precision: str = "auto"
    """auto (bf16 where the CPU or GPU supports it, else fp32), fp32, bf16 or fp16 (GPU only)."""
    eval_every: int = 0
    """Evaluate every N optimiser steps; 0 means once per epoch."""
    metric: str = "macro_f1"
    """Validation metric that selects the best weights and drives early stopping."""
    mask_prob: float = 0.0
    """Corrupt this fraction of training tokens BERT-style ([MASK] 80%, random 10%, kept 10%)."""
    mlm_weight: float = 0.0
    """Weight of a masked-token prediction loss on the corrupted tokens (needs mask_prob > 0)."""
    ema_decay: float = 0.0
    """Evaluate and keep an exponential moving average of the weights with this decay (0: off)."""
    patience: int = 3
    """Stop after this many evaluations without improvement; 0 disables early stopping."""
    seed: int = 42
    """Seeds python, numpy and torch, the split and the batch order."""
    loss: str = "asl"
    """Loss function: bce, focal or asl (asymmetric)."""
    pos_weight: str = "sqrt"
    """Per-label positive weight: none, auto (negatives/positives), sqrt (its root), or a JSON file."""
    label_smoothing: float = 0.0
    """Targets y become y * (1 - e) + e / 2."""
    focal_gamma: float = 2.0
    """Focusing exponent of the focal loss (0 is BCE)."""
    asl_gamma_neg: float = 4.0
    """Focusing exponent of negatives in the asymmetric loss."""
    asl_gamma_pos: float = 0.0
    """Focusing exponent of positives in the asymmetric loss."""
    asl_clip: float = 0.05
    """Probability margin below which negatives cost nothing in the asymmetric loss."""
    calibrate: bool = True
    """Fit a temperature and a bias per label on the validation rows after training (Platt
    scaling), so a probability of 0.3 means about 3 in 10, then tune the thresholds on the
    calibrated probabilities; every probability the run gives is calibrated (no-calibrate: the
    loss's raw probabilities, which sit far above the real rates with the asl loss)."""
    thresholds: str = "per-label"
    """fixed, global or per-label (labels with few validation positives fall back to global)."""
    fixed_threshold: float = 0.5
    """The threshold of the fixed strategy."""
    min_support: int = 5
    """Labels with fewer validation positives than this use the global threshold."""
    top1_fallback: bool = False
    """A text where no label clears its threshold gets its most probable label."""
    val_fraction: float = 0.1
    """Without --val, this fraction of train is held out (multi-label stratified)."""
    compare_baseline: bool = True
    """Also fit the linear baseline (TF-IDF + logistic regression) on the same split, in seconds,
    and report its validation scores beside the model's."""
    report_to: str | None = None
    """Also log every evaluation live to these trackers, comma-separated: ``tensorboard``,
    ``mlflow`` (through Accelerate; each needs its package installed)."""
    tracking_dir: str = "tracking"
    """Where the trackers write (tensorboard's event files, a local mlflow store), one
    subdirectory per run."""
    num_workers: int | None = None
    """DataLoader worker processes (default: 2 on a GPU, where batching in the main process would
    leave the device waiting; none on a CPU, where the workers would take cores from the model)."""

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: expected at least 1, got {getattr(self, name)}")
        if self.lr is not None:
            _check_positive("lr", self.lr)
        if self.head_lr is not None:
            _check_positive("head_lr", self.head_lr)
        if self.layer_lr_decay is not None and not 0.0 < self.layer_lr_decay <= 1.0:
            raise ConfigError(
                f"layer_lr_decay: expected a value in (0, 1], got {self.layer_lr_decay}"
            )
        _check_positive("freeze_encoder_epochs", self.freeze_encoder_epochs, allow_zero=True)
        _check_positive("weight_decay", self.weight_decay, allow_zero=True)
        _check_positive("grad_clip", self.grad_clip, allow_zero=True)
        _check_below_one("warmup_ratio", self.warmup_ratio)
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction: expected a value in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.fixed_threshold <= 1.0:
            raise ConfigError(
                f"fixed_threshold: expected a value in [0, 1], got {self.fixed_threshold}"
            )
        if self.num_workers is not None:
            _check_positive("num_workers", self.num_workers, allow_zero=True)
        _check_positive("eval_every", self.eval_every, allow_zero=True)
        _check_positive("patience", self.patience, allow_zero=True)
        _check_below_one("ema_decay", self.ema_decay)
        _check_below_one("mask_prob", self.mask_prob)
        _check_positive("mlm_weight", self.mlm_weight, allow_zero=True)
        if self.mlm_weight and not self.mask_prob:
            raise ConfigError("mlm_weight: needs mask_prob > 0 (there is nothing to predict)")
        _check_positive("min_support", self.min_support, allow_zero=True)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("loss", self.loss, LOSSES)
        _check_below_one("label_smoothing", self.label_smoothing)
        for name in ("focal_gamma", "asl_gamma_neg", "asl_gamma_pos"):
            _check_positive(name, getattr(self, name), allow_zero=True)
        _check_below_one("asl_clip", self.asl_clip)
        _check_choice("thresholds", self.thresholds, THRESHOLD_STRATEGIES)
        _check_choice("metric", self.metric, tuple(PRIMARY_METRICS))
        for tracker in self.trackers:
            _check_choice("report_to", tracker, TRACKERS)

    @property
    def trackers(self) -> list[str]:
        """The trackers of ``report_to``, in order."""
        return [t.strip() for t in (self.report_to or "").split(",") if t.strip()]

    def threshold_settings(self) -> dict[str, Any]:
        """The threshold settings as the keywords of
        :func:`multihot.scoring.thresholds.tune_thresholds` (which knows no configs)."""
        return {
            "strategy": self.thresholds,
            "fixed_value": self.fixed_threshold,
            "min_support": self.min_support,
            "top1_fallback": self.top1_fallback,
        }


AUTO_STEPS = 2000
"""Optimiser steps that ``epochs=None`` aims at: 3 epochs of GoEmotions' 43k texts in batches of
64, where the defaults were chosen; a set of 5k texts gets 26 epochs."""
AUTO_EPOCHS = (3, 40)
"""The fewest and the most epochs ``epochs=None`` gives."""


def auto_epochs(num_texts: int, batch_size: int, grad_accum: int = 1) -> int:
    """The epochs ``epochs=None`` means for ``num_texts`` training texts: about
    :data:`AUTO_STEPS` optimiser steps, within :data:`AUTO_EPOCHS`.

    Example:
        >>> auto_epochs(43410, 64), auto_epochs(5000, 64), auto_epochs(100, 64)
        (3, 26, 40)
    """
    steps_per_epoch = max(1, -(-num_texts // (batch_size * grad_accum)))
    low, high = AUTO_EPOCHS
    return min(high, max(low, -(-AUTO_STEPS // steps_per_epoch)))


@dataclass
class DataConfig:
    """Where texts and labels are in the data files."""

    text_col: str = "text"
    """Column holding the text."""
    labels_col: str = "labels"
    """Column holding a list of label names (JSON list or delimited string)."""
    label_cols: list[str] | None = None
    """One 0/1 column per label, instead of labels_col."""
    label_sep: str | None = None
    """Delimiter of label names in labels_col strings (default: comma, or ; or | when no comma)."""

    def __post_init__(self) -> None:
        check_types(self)


SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}


@dataclass
class RunConfig:
    """The three sections together: what ``config.json`` of a run directory stores."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> RunConfig:
        """Nested ({"model": {...}, ...}) or flat keys; unknown keys raise :class:`ConfigError`."""
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key in SECTIONS and isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        return cls.from_flat(flat, source)

    @classmethod
    def from_flat(cls, flat: dict[str, Any], source: str | None = None) -> RunConfig:
        """The config of flat keys (dashes or underscores), each value checked against its field.

        Raises:
            ConfigError: an unknown key, or a value of the wrong type or out of range; the message
                names ``source`` (the file the keys came from, when given) and the key.
        """
        prefix = f"{source}: " if source else ""
        owners = {f.name: section for section, kind in SECTIONS.items() for f in fields(kind)}
        grouped: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in flat.items():
            name = str(key).replace("-", "_")
            if name not in owners:
                raise ConfigError(
                    f"{prefix}unknown key {key!r}; known keys: {', '.join(sorted(owners))}"
                )
            grouped[owners[name]][name] = value
        try:
            return cls(**{s: SECTIONS[s](**grouped[s]) for s in SECTIONS})
        except ConfigError as err:
            raise ConfigError(f"{prefix}{err}") from None

    def with_default_preprocess(self) -> RunConfig:
        """This config, or for a new run that gives no ``preprocess``, one with
        :data:`DEFAULT_PREPROCESS`."""
        if self.model.preprocess is not None:
            return self
        return self.override(preprocess=list(DEFAULT_PREPROCESS))

    @classmethod
    def from_saved(cls, data: dict[str, Any], source: str | None = None) -> RunConfig:
        """The config a run (or an interrupted one) saved: :meth:`from_dict`, with each setting
        added since then read as the run was trained (``preprocess``: no steps)."""
        config = cls.from_dict(data, source)
        if config.model.preprocess is None:
            config.model.preprocess = []
        return config

    def override(self, **flat: Any) -> RunConfig:
        """A copy with the given flat keys replaced (``None`` values are ignored)."""
        merged = {k: v for section in self.to_dict().values() for k, v in section.items()}
        merged.update({k: v for k, v in flat.items() if v is not None})
        return RunConfig.from_flat(merged)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a dict (parsed, never executed)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
        if kind == "JSON":
            data = json.loads(text)
        else:
            import yaml  # startup: only a YAML config file needs it

            # A safe loader: a !!python/... tag is refused, never constructed.
            data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506
    except Exception as err:  # UnicodeDecodeError, json.JSONDecodeError or yaml.YAMLError
        raise ConfigError(f"{path}: not valid {kind}: {_parse_problem(err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys to values, got {type(data).__name__}"
        )
    return data


_YAML_FLOAT = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
"""A float as YAML 1.2 writes one (``1e-5``, ``1E5``, ``1.0e5``, ``-.5``), besides YAML 1.1's forms
(which need a dot and a signed exponent, so read ``1e-5`` as a string)."""


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's safe loader with :data:`_YAML_FLOAT` for floats; everything else as YAML 1.1
    (``1_000`` is an int, ``yes`` is true)."""
    import yaml  # startup: only a YAML config file needs it

    float_tag = "tag:yaml.org,2002:float"

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regex) for tag, regex in resolvers if tag != float_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    # Never matches an int (it needs a dot or an exponent), so the int resolver is not shadowed.
    Loader.add_implicit_resolver(float_tag, _YAML_FLOAT, list("-+0123456789."))
    return Loader


def _parse_problem(err: Exception) -> str:
    """A parser's complaint on one line (PyYAML's spans several, with a quote of the text)."""
    problem = getattr(err, "problem", None) or (str(err).strip().splitlines() or [""])[0]
    mark = getattr(err, "problem_mark", None)
    return problem + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls``, whitespace collapsed: the one place an
    option is described (the CLI's help comes from it).

    Example:
        >>> field_docs(DataConfig)["text_col"]
        'Column holding the text.'
    """
    tree = ast.parse(inspect.getsource(cls))
    assert isinstance(tree.body[0], ast.ClassDef)  # the source of a class is its definition
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs
