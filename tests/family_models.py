"""Tiny random-weight Hugging Face checkpoints of nine encoder families, built offline.

:func:`tiny_family` writes what a user's local checkpoint holds: ``config.json``,
``model.safetensors`` and a fast tokenizer (``tokenizer.json`` and its config), so that
``AutoModel.from_pretrained(dir)``, ``AutoTokenizer.from_pretrained(dir)`` and multihot's
``encoder=dir`` all read it. Each family gets the tokenizer style of its real checkpoints (WordPiece
with [CLS]/[SEP], byte-level BPE with <s></s>, SentencePiece-like Unigram), trained with the
``tokenizers`` library on a few hundred texts of the bundled sample, and the config knobs that make
its module structure what the real one is (ALBERT's and ELECTRA's embedding projection, DeBERTa-v3's
relative-position embeddings and their norm, ModernBERT's local and global layers).

Sizes are the fast tests' (hidden 32, 2 layers), with an odd intermediate size (37) so that a
mix-up of the two widths shows as a shape error.

Example:
    >>> path = tiny_family("albert", tmp_path)  # doctest: +SKIP
    >>> Classifier.train(train, val, encoder=str(path), epochs=1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from helpers import SAMPLE, TOY_TEXTS

HIDDEN = 32
LAYERS = 2
INTERMEDIATE = 37
POSITIONS = 128
VOCAB = 400
"""Target vocabulary size of each tokenizer (byte-level BPE keeps its 256 bytes besides)."""
CORPUS_SIZE = 300


@dataclass(frozen=True)
class Family:
    """How to build one family's tiny checkpoint."""

    model_type: str
    """The ``model_type`` of its config (the key of ``AutoConfig.for_model``)."""
    tokenizer: str
    """Its tokenizer style: a key of :data:`TOKENIZERS`."""
    config: dict[str, Any] = field(default_factory=dict)
    """Config fields besides the common sizes (:func:`_common`)."""


# Special-token ids follow each family's tokenizer below: RoBERTa-style <s>=0 <pad>=1 </s>=2,
# ALBERT <pad>=0 [CLS]=2 [SEP]=3, DeBERTa-v2 [PAD]=0 [CLS]=1 [SEP]=2, BERT-style [PAD]=0.
FAMILIES: dict[str, Family] = {
    "bert": Family("bert", "wordpiece"),
    "roberta": Family(
        "roberta",
        "byte-bpe",
        # RoBERTa's positions start after the padding index: 128 tokens need 130 positions.
        {"max_position_embeddings": POSITIONS + 2, "pad_token_id": 1, "bos_token_id": 0},
    ),
    "distilbert": Family(
        "distilbert",
        "wordpiece",
        {"dim": HIDDEN, "n_layers": LAYERS, "n_heads": 2, "hidden_dim": INTERMEDIATE},
    ),
    "albert": Family(
        "albert",
        "unigram-albert",
        # A narrower embedding than the hidden size, so embedding_hidden_mapping_in exists; one
        # layer group shared by both layers, as every released ALBERT has.
        {
            "embedding_size": 16,
            "num_hidden_groups": 1,
            "inner_group_num": 1,
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 3,
        },
    ),
    "electra": Family("electra", "wordpiece", {"embedding_size": 16}),  # embeddings_project
    "deberta-v2": Family(
        "deberta-v2",
        "unigram-deberta",
        # DeBERTa-v3's settings: relative attention both ways over log buckets, its relative
        # embeddings normalised by encoder.LayerNorm, no absolute positions.
        {
            "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_buckets": 32,
            "max_relative_positions": -1,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "position_biased_input": False,
            "type_vocab_size": 0,
            "pad_token_id": 0,
        },
    ),
    "xlm-roberta": Family(
        "xlm-roberta",
        "unigram-xlmr",
        {"max_position_embeddings": POSITIONS + 2, "pad_token_id": 1, "bos_token_id": 0},
    ),
    "mpnet": Family(
        "mpnet",
        "wordpiece-mpnet",
        {"relative_attention_num_buckets": 32, "pad_token_id": 1, "bos_token_id": 0},
    ),
    "modernbert": Family(
        "modernbert",
        "byte-bpe-modernbert",
        # Layer 0 global, layer 1 local (sliding window of 16 tokens) as in the released models.
        {
            "global_attn_every_n_layers": 2,
            "local_attention": 16,
            "pad_token_id": 2,
            "cls_token_id": 0,
            "bos_token_id": 0,
            "sep_token_id": 1,
            "eos_token_id": 1,
        },
    ),
}
"""The nine families of issue 31, by the name used as a test id."""

_BUILT: dict[tuple[str, Path], Path] = {}


def tiny_family(name: str, tmp_path: Path) -> Path:
    """A tiny random-weight checkpoint of family ``name`` in ``tmp_path / name``, built once per
    session for a given ``tmp_path``.

    Returns:
        The model directory (config.json, model.safetensors, tokenizer files).
    """
    key = (name, Path(tmp_path))
    if key in _BUILT:
        return _BUILT[key]
    import torch
    from transformers import AutoConfig, AutoModel

    family = FAMILIES[name]
    tokenizer = TOKENIZERS[family.tokenizer](corpus())
    settings = {**_common(len(tokenizer)), **family.config}
    if name == "distilbert":  # DistilBERT names its sizes apart
        for key_ in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ):
            settings.pop(key_)
    config = AutoConfig.for_model(family.model_type, **settings)
    torch.manual_seed(0)
    model = AutoModel.from_config(config)
    path = Path(tmp_path) / name
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    _BUILT[key] = path
    return path


def _common(vocab_size: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 2,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": POSITIONS,
    }


_CORPUS: list[str] = []


def corpus() -> list[str]:
    """The texts the tokenizers learn: the toy texts and the first few hundred of the sample."""
    if not _CORPUS:
        with open(SAMPLE / "train.jsonl", encoding="utf-8") as fh:
            sample = [json.loads(line)["text"] for line in islice(fh, CORPUS_SIZE)]
        _CORPUS.extend(TOY_TEXTS * 2 + sample)
    return _CORPUS


# ------------------------------------------------------------------------------------ tokenizers
def _wrap(tokenizer, **special_tokens):
    """A transformers fast tokenizer around a ``tokenizers`` one, with the family's special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=POSITIONS, **special_tokens
    )


def _template(cls: str, sep: str, ids: dict[str, int], roberta_pair: bool = False):
    from tokenizers import processors

    pair = f"{cls} $A {sep} {sep} $B {sep}" if roberta_pair else f"{cls} $A {sep} $B:1 {sep}:1"
    return processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=pair, special_tokens=[(cls, ids[cls]), (sep, ids[sep])]
    )


def _bert_wordpiece(texts: list[str]):
    """BERT, DistilBERT, ELECTRA: WordPiece, [PAD]=0 [UNK] [CLS] [SEP] [MASK], lowercased."""
    from multihot.modeling.encoders import train_wordpiece

    return train_wordpiece(texts, vocab_size=VOCAB)


ANGLE_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
}
"""The special tokens of MPNet, RoBERTa and XLM-R: <s>, </s>, <pad>, <unk>, <mask>."""


def _mpnet_wordpiece(texts: list[str]):
    """MPNet: BERT's WordPiece with RoBERTa's special tokens, <s>=0 <pad>=1 </s>=2 <unk>=3."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    from multihot.modeling.encoders import SPECIAL_TOKENS, train_wordpiece

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    pieces = train_wordpiece(texts, vocab_size=VOCAB).get_vocab()
    vocab = {token: i for i, token in enumerate(specials)}
    for piece, _ in sorted(pieces.items(), key=lambda item: item[1]):
        if piece not in SPECIAL_TOKENS:
            vocab.setdefault(piece, len(vocab))
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.post_processor = _template("<s>", "</s>", vocab, roberta_pair=True)
    return _wrap(tokenizer, **ANGLE_SPECIALS)


def _byte_bpe(texts: list[str], specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + VOCAB // 2,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _roberta_bpe(texts: list[str]):
    """RoBERTa: byte-level BPE, <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4, pairs as <s> A </s></s> B </s>."""
    from tokenizers import processors

    tokenizer = _byte_bpe(texts, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    return _wrap(tokenizer, **ANGLE_SPECIALS)


def _modernbert_bpe(texts: list[str]):
    """ModernBERT: byte-level BPE (OLMo's) with BERT's special tokens, [CLS]=0 [SEP]=1 [PAD]=2."""
    specials = ["[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"]
    tokenizer = _byte_bpe(texts, specials)
    tokenizer.post_processor = _template("[CLS]", "[SEP]", tokenizer.get_vocab())
    return _wrap(
        tokenizer,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        unk_token="[UNK]",
    )


def _unigram(texts: list[str], specials: list[str], unk: str, lowercase: bool):
    """A SentencePiece-like Unigram model (``\u2581`` marks a word's start), as ALBERT, XLM-R and
    DeBERTa-v2 ship."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always"
    )
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB, special_tokens=specials, unk_token=unk, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _albert_unigram(texts: list[str]):
    """ALBERT: lowercased Unigram, <pad>=0 <unk>=1 [CLS]=2 [SEP]=3 [MASK]=4."""
    tokenizer = _unigram(texts, ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>", True)
    tokenizer.post_processor = _template("[CLS]", "[SEP]", tokenizer.get_vocab())
    return _wrap(
        tokenizer,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="[MASK]",
    )


def _xlmr_unigram(texts: list[str]):
    """XLM-RoBERTa: cased Unigram, <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4."""
    tokenizer = _unigram(texts, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>", False)
    tokenizer.post_processor = _template("<s>", "</s>", tokenizer.get_vocab(), roberta_pair=True)
    return _wrap(tokenizer, **ANGLE_SPECIALS)


def _deberta_unigram(texts: list[str]):
    """DeBERTa-v2/v3: cased Unigram, [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 [MASK]=4."""
    tokenizer = _unigram(texts, ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]", False)
    tokenizer.post_processor = _template("[CLS]", "[SEP]", tokenizer.get_vocab())
    return _wrap(
        tokenizer,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )


TOKENIZERS: dict[str, Callable[[list[str]], Any]] = {
    "wordpiece": _bert_wordpiece,
    "wordpiece-mpnet": _mpnet_wordpiece,
    "byte-bpe": _roberta_bpe,
    "byte-bpe-modernbert": _modernbert_bpe,
    "unigram-albert": _albert_unigram,
    "unigram-xlmr": _xlmr_unigram,
    "unigram-deberta": _deberta_unigram,
}
"""Tokenizer builders by style: each trains on texts and returns a transformers fast tokenizer."""
