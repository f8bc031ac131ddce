from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import TOY_TEXTS
from multihot.data.batching import Collator, LengthGroupedBatchSampler
from multihot.data.encoding import sorted_batches


def test_length_grouped_batches_cover_every_index_once_and_are_deterministic():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    sampler = LengthGroupedBatchSampler(lengths, batch_size=16, seed=1, group=10)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == list(LengthGroupedBatchSampler(lengths, batch_size=16, seed=1, group=10))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    # Grouping keeps padding small: far less than in random batches.
    waste = sum(lengths[b].max() - lengths[b].mean() for b in batches)
    rng = np.random.default_rng(0).permutation(1000)
    random_waste = sum(
        lengths[rng[i : i + 16]].max() - lengths[rng[i : i + 16]].mean() for i in range(0, 1000, 16)
    )
    assert waste < random_waste / 3


def test_sorted_batches_longest_first():
    batches = sorted_batches(np.array([3, 9, 1, 7]), 2)
    assert batches == [[1, 3], [0, 2]]


ITEMS = [(0, [2, 5, 3], np.ones(2)), (1, [2, 3], np.zeros(2))]


def test_collator_pads_to_the_batch_not_max_length():
    batch = Collator(pad_token_id=0, pad_to_multiple_of=None)(ITEMS)
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert batch["attention_mask"].sum().item() == 5
    assert batch["targets"].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert batch["index"].tolist() == [0, 1]
    rounded = Collator(pad_token_id=0, pad_to_multiple_of=8)(ITEMS)
    assert rounded["input_ids"].shape == (2, 8)  # longest 3, rounded up to a multiple of 8
    assert rounded["attention_mask"].sum().item() == 5


def test_collator_rounds_up_to_8_only_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Collator(pad_token_id=0)(ITEMS)["input_ids"].shape == (2, 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Collator(pad_token_id=0)(ITEMS)["input_ids"].shape == (2, 8)


@pytest.mark.parametrize("rows", [1000, 1001, 1015, 16 * 10 * 3 + 5])
def test_only_the_last_batch_is_short(rows):
    """Accelerate splits each batch over processes and skips a short batch that is not the last;
    the sampler used to shuffle its short batch anywhere into the epoch."""
    lengths = np.random.default_rng(0).integers(1, 50, rows)
    for epoch in range(4):
        sampler = LengthGroupedBatchSampler(lengths, batch_size=16, seed=2, group=10)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert all(len(b) == 16 for b in batches[:-1])
        assert sorted(i for b in batches for i in b) == list(range(rows))


def _byte_level_bpe(texts):
    """A RoBERTa-style tokenizer (byte-level BPE, <s> ... </s>, truncation from the left)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<pad>"])
    )
    bpe.post_processor = processors.RobertaProcessing(("</s>", 1), ("<s>", 0))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tok.truncation_side = "left"
    return tok


@pytest.mark.parametrize("kind", ["wordpiece", "byte-level-bpe"])
def test_tokenize_gives_the_ids_of_a_tokenizer_call(kind):
    """The fast path (Rust encode_batch_fast after one call through transformers) returns exactly
    what the transformers call returns, truncation side and special-token text included, even
    after a call that left other truncation settings on the tokenizer."""
    from multihot.data.encoding import tokenize
    from multihot.modeling.encoders import train_wordpiece

    corpus = TOY_TEXTS * 5 + ["Ünïcode àccents and emoji 😂🔥", "<s> [CLS] special-looking text"]
    tok = train_wordpiece(corpus, 200) if kind == "wordpiece" else _byte_level_bpe(corpus)
    texts = [*corpus, "a much longer text " * 30, "x", " ", "[SEP] </s> [MASK]"]
    tok(texts, truncation=True, max_length=5)  # a call with other settings first
    for max_length in (12, 64):
        expected = tok(texts, truncation=True, max_length=max_length)["input_ids"]
        assert tokenize(tok, texts, max_length) == expected
        assert tokenize(tok, texts[:1], max_length) == expected[:1]
    assert tokenize(tok, [], 12) == []


@pytest.mark.parametrize("kind", ["wordpiece", "byte-level-bpe"])
def test_the_rust_tokenizer_gives_the_ids_of_transformers(kind, tmp_path):
    """ONNX prediction reads the saved tokenizer with the tokenizers library alone (no
    transformers, no torch): the same ids and padding id as transformers reading the same files,
    as the torch backend does."""
    from transformers import AutoTokenizer

    from multihot.data.encoding import RustTokenizer, tokenize
    from multihot.modeling.encoders import train_wordpiece

    corpus = TOY_TEXTS * 5 + ["Ünïcode àccents and emoji 😂🔥", "<s> [CLS] special-looking text"]
    tok = train_wordpiece(corpus, 200) if kind == "wordpiece" else _byte_level_bpe(corpus)
    tok.save_pretrained(str(tmp_path))
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    texts = [*corpus, "a much longer text " * 30, "x", " ", "[SEP] </s> [MASK]"]
    for max_length in (12, 64):
        light = RustTokenizer.from_dir(tmp_path, max_length)
        assert tokenize(light, texts, max_length) == tokenize(tok, texts, max_length)
        assert light.pad_token_id == tok.pad_token_id
