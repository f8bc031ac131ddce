"""Long texts as documents of windows (``long_text="chunk"``): splitting, packing, what is cut."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import FILLER, long_documents
from multihot.data.batching import Collator, TokenizedDataset
from multihot.data.encoding import (
    Cut,
    Reading,
    RustTokenizer,
    content_ids,
    document_batches,
    pack_documents,
    special_affixes,
    split_windows,
    text_lengths,
    tokenize,
    tokenize_and_cut,
    tokens_read,
    truncated_ids,
)

CHUNK = Reading(max_length=16, long_text="chunk", stride=4, max_chunks=8)


@pytest.fixture(scope="module")
def tokenizer():
    from multihot.modeling.encoders import train_wordpiece

    return train_wordpiece(long_documents(20, 0, words=(50, 100))[0], vocab_size=200)


@pytest.mark.parametrize("length", [0, 1, 13, 14, 15, 24, 25, 26, 60, 200])
def test_windows_cover_the_text_in_order_with_stride_overlap(length):
    content = list(range(1000, 1000 + length))
    windows = split_windows(content, [1], [2], CHUNK)
    window, step = 16 - 2, 16 - 2 - 4
    assert all(w[0] == 1 and w[-1] == 2 and len(w) <= 16 for w in windows)
    inner = [w[1:-1] for w in windows]
    assert inner[0] == content[:window]  # the first window is the truncated text
    for k, ids in enumerate(inner):
        assert ids == content[k * step : k * step + window]
    read = max(len(content[: k * step + len(ids)]) for k, ids in enumerate(inner))
    assert read == min(length, CHUNK.capacity(specials=2))
    assert len(windows) == min(8, max(1, -(-(length - 4) // step) if length > window else 1))


def test_a_text_past_max_chunks_is_cut_and_the_cut_is_counted():
    content = list(range(200))
    windows = split_windows(content, [1], [2], CHUNK)
    assert len(windows) == 8 and windows[-1][-2] == CHUNK.capacity(2) - 1
    cut = Cut(texts=1, cut_texts=1, tokens=200, cut_tokens=200 - CHUNK.capacity(2))
    message = cut.message(CHUNK)
    assert "1 of 1 texts need more than max_chunks 8 windows" in message
    assert f"{200 - 84} of their tokens" in message and "--max-chunks" in message


def test_first_window_is_exactly_the_truncated_ids_of_the_tokenizer(tokenizer):
    texts = long_documents(6, 1, words=(5, 80))[0]
    windows = tokenize(tokenizer, texts, CHUNK)
    assert [doc[0] for doc in windows] == truncated_ids(tokenizer, texts, 16)
    assert tokenize(tokenizer, texts, Reading(max_length=16)) == truncated_ids(tokenizer, texts, 16)
    prefix, suffix = special_affixes(tokenizer)
    assert prefix == [tokenizer.cls_token_id] and suffix == [tokenizer.sep_token_id]


def test_the_light_tokenizer_makes_the_same_windows(tokenizer, tmp_path):
    """ONNX prediction reads texts with the tokenizers library alone: the same documents."""
    tokenizer.save_pretrained(tmp_path)
    light = RustTokenizer.from_dir(tmp_path, 16)
    texts = long_documents(6, 2, words=(5, 120))[0]
    assert tokenize(light, texts, CHUNK) == tokenize(tokenizer, texts, CHUNK)
    assert content_ids(light, texts) == content_ids(tokenizer, texts)
    # ... and truncation is left as it was for truncated reading
    assert tokenize(light, texts, 16) == truncated_ids(tokenizer, texts, 16)


def test_cut_of_truncated_training_texts(tokenizer):
    texts = [" ".join(FILLER[:3]), " ".join(FILLER[:40])]
    reading = Reading(max_length=16)
    ids, cut = tokenize_and_cut(tokenizer, texts, reading)
    assert ids == tokenize(tokenizer, texts, reading)
    assert tokenize_and_cut(tokenizer, texts, CHUNK)[0] == tokenize(tokenizer, texts, CHUNK)
    assert (cut.texts, cut.cut_texts, cut.cut_tokens) == (2, 1, 40 - 14)
    assert "1 of 2 texts are longer than max_length 16" in cut.message(reading)
    assert "--long-text chunk" in cut.message(reading)
    assert tokenize_and_cut(tokenizer, texts[:1], reading)[1].message(reading) is None
    assert text_lengths(tokenizer, texts) == [5, 42]
    assert tokens_read(tokenizer, reading) == 16 and tokens_read(tokenizer, CHUNK) == 86


def test_packing_documents():
    docs = [[[5, 6, 7], [8, 9]], [[4]], [[1, 2], [3, 3], [2]]]
    ids, mask, index = pack_documents(docs, pad_token_id=0)
    assert ids.shape == (6, 3) and mask.sum() == 11
    assert index.tolist() == [[0, 1, -1], [2, -1, -1], [3, 4, 5]]
    batch = Collator(0, None)([(i, d, np.zeros(2)) for i, d in enumerate(docs)])
    assert batch["chunk_index"].tolist() == index.tolist()
    assert batch["targets"].shape == (3, 2) and batch["input_ids"].shape == (6, 3)
    assert TokenizedDataset(docs).lengths.tolist() == [5, 1, 5]


def test_document_batches_keep_to_the_token_budget():
    rng = np.random.default_rng(0)
    docs = [[[1] * 16] * int(rng.integers(1, 9)) for _ in range(40)]
    batches = document_batches(docs, batch_size=64, batch_tokens=64)
    assert sorted(i for b in batches for i in b) == list(range(40))
    for batch in batches:
        windows = sum(len(docs[i]) for i in batch)
        assert windows * 16 <= 64 or len(batch) == 1
    assert len(docs[batches[0][0]]) == max(map(len, docs))  # longest first
    assert all(len(b) <= 3 for b in document_batches(docs, batch_size=3, batch_tokens=10**6))


def test_split_documents_keeps_each_documents_windows_within_the_budget():
    from multihot.data.batching import split_documents

    rng = np.random.default_rng(1)
    docs = [
        [list(range(5, 5 + int(rng.integers(3, 17)))) for _ in range(int(rng.integers(1, 5)))]
        for _ in range(7)
    ]
    batch = Collator(0, None)([(i, d, np.full(2, i)) for i, d in enumerate(docs)])
    parts = split_documents(batch, batch_tokens=48)
    assert len(parts) > 1
    assert torch_cat([p["index"] for p in parts]) == list(range(7))
    for part in parts:
        ids, mask, index = part["input_ids"], part["attention_mask"], part["chunk_index"]
        assert ids.numel() <= 48 or len(part["index"]) == 1
        for row, d in enumerate(part["index"].tolist()):
            got = [ids[w][mask[w].bool()].tolist() for w in index[row].tolist() if w >= 0]
            assert got == docs[d]
            assert part["targets"][row].tolist() == [d, d]
    assert split_documents(batch, batch_tokens=10**6) == [batch]


def torch_cat(tensors) -> list[int]:
    return [i for t in tensors for i in t.tolist()]
