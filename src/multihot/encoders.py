"""Encoders and their tokenizers: Hugging Face checkpoints, or BERTs built from scratch.

``scratch-*`` names build a randomly initialised BERT of a standard small size and train a WordPiece
vocabulary on the training texts with the ``tokenizers`` library, so everything works offline.
Any other name is a Hugging Face checkpoint (hub name or local directory) loaded with ``AutoModel``
and ``AutoTokenizer``; weights are read only from safetensors files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from multihot.errors import EncoderError

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

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
    from transformers import BertConfig

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


def encoder_from_config(config: dict[str, Any]) -> nn.Module:
    """A randomly initialised encoder from a stored config dict (no network, no weights read)."""
    from transformers import AutoConfig, AutoModel

    config = dict(config)
    model_type = config.pop("model_type", None)
    if model_type is None:
        raise EncoderError("encoder config has no 'model_type'")
    try:
        hf_config = AutoConfig.for_model(model_type, **config)
    except (ValueError, KeyError) as err:
        raise EncoderError(f"cannot build encoder of type {model_type!r}: {err}") from None
    return AutoModel.from_config(hf_config)


def load_pretrained(name: str):
    """Load a Hugging Face encoder and its tokenizer by hub name or local directory.

    Raises:
        EncoderError: the name cannot be resolved (no network, no such directory, no safetensors).
    """
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        encoder = AutoModel.from_pretrained(name, use_safetensors=True)
    except (OSError, ValueError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        local = os.path.isdir(name)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if local:
            hint = "expected a Hugging Face model directory with config.json, tokenizer files and model.safetensors"
        else:
            hint = (
                "the hub could not be reached"
                + (" (HF_HUB_OFFLINE is set)" if offline else "")
                + "; pass a local model directory or a scratch encoder "
                f"({', '.join(SCRATCH_SIZES)})"
            )
        raise EncoderError(f"cannot load encoder {name!r}: {hint} ({reason})") from None
    return encoder, tokenizer


def build_encoder(name: str, texts: list[str], vocab_size: int, max_length: int, dropout: float):
    """The encoder and tokenizer for training: scratch-built on ``texts``, or loaded by name.

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
        logger.info("built %s from scratch: vocabulary of %d word pieces", name, len(tokenizer))
    else:
        encoder, tokenizer = load_pretrained(name)
        config = encoder.config.to_dict()
    return encoder, tokenizer, config
