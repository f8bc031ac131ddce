"""Long documents read whole: a label whose evidence is past the first window is learnt with
``long_text="chunk"`` and cannot be with truncation (the issue's synthetic check)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import f1_score

from helpers import LONG, TINY, TRIGGERS, long_documents, write_jsonl
from multihot import Classifier


def test_the_triggers_are_mostly_past_the_first_window(long_runs):
    clf, _ = long_runs["chunk"]
    tokenizer = clf.tokenizer
    first_word = tokenizer.convert_tokens_to_ids([t.split()[0] for t in TRIGGERS.values()])
    texts, labels = long_runs["test"]
    positions = [
        i
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]
        for i, token in enumerate(ids)
        if token in first_word
    ]
    assert len(positions) == sum(map(len, labels))  # one token per word, one phrase per label
    assert np.mean(np.array(positions) >= LONG["max_length"] - 2) > 0.9
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    assert min(lengths) >= 600 and max(lengths) <= 2010


def test_chunk_learns_what_truncate_cannot(long_runs):
    texts, labels = long_runs["test"]
    scores = {}
    for mode in ("chunk", "truncate"):
        clf, _ = long_runs[mode]
        targets = clf.labels.encode(labels)
        decisions = clf.thresholds.apply(clf.predict_proba(texts, precision="fp32"))
        scores[mode] = f1_score(targets, decisions, average="macro", zero_division=0)
    print(f"held-out macro F1: chunk {scores['chunk']:.3f}, truncate {scores['truncate']:.3f}")
    assert scores["chunk"] >= 0.9
    assert scores["truncate"] <= 0.7
    assert scores["chunk"] - scores["truncate"] >= 0.3


def test_evaluate_reports_metrics_by_length(long_runs, tmp_path):
    texts, labels = long_runs["test"]
    data = write_jsonl(tmp_path / "test.jsonl", texts, labels)
    chunk = long_runs["chunk"][0].evaluate(data, precision="fp32")["by_length"]
    truncate = long_runs["truncate"][0].evaluate(data, precision="fp32")["by_length"]
    assert chunk["unit"] == "tokens" and truncate["read_up_to"] == 64
    assert [b["tokens"] for b in chunk["buckets"]] == ["513-1024", "1025-2048"]
    assert sum(b["texts"] for b in chunk["buckets"]) == len(texts)
    assert all(b["cut_texts"] == 0 for b in chunk["buckets"])  # 48 windows read 2,600 tokens
    assert all(b["cut_texts"] == b["texts"] for b in truncate["buckets"])
    assert all(b["micro_f1"] > 0.85 for b in chunk["buckets"])
    assert chunk["read_up_to"] == 62 + 47 * 54 + 2


def test_training_says_what_truncation_cuts(long_runs, tmp_path, caplog):
    """Truncating long training texts warns once, with how many and how much, and suggests
    chunk; reading them whole in too few windows says so too."""
    texts, labels = long_documents(8, seed=5, words=(100, 200))
    data = write_jsonl(tmp_path / "few.jsonl", texts, labels)
    with caplog.at_level(logging.WARNING, logger="multihot"):
        Classifier.train(data, data, epochs=1, batch_size=4, compare_baseline=False, **TINY)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training data")]
    assert len(said) == 1
    assert "8 of 8 texts are longer than max_length 32" in said[0]
    assert "--long-text chunk" in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="multihot"):
        Classifier.train(
            data,
            data,
            epochs=1,
            batch_size=4,
            compare_baseline=False,
            long_text="chunk",
            max_chunks=2,
            **TINY,
        )
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training data")]
    assert len(said) == 1 and "need more than max_chunks 2 windows" in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="multihot"):
        Classifier.train(
            data,
            data,
            epochs=1,
            batch_size=4,
            compare_baseline=False,
            long_text="chunk",
            max_chunks=16,
            **TINY,
        )
    assert not [r for r in caplog.records if r.getMessage().startswith("training data")]


def test_a_batch_over_the_token_budget_trains_as_if_whole(tmp_path):
    """Computed in groups of its documents (each loss weighted by its share), a batch gives the
    whole batch's gradient: the same model after an epoch, without dropout."""
    texts, labels = long_documents(8, seed=6, words=(100, 200))
    data = write_jsonl(tmp_path / "docs.jsonl", texts, labels)
    settings = {
        **TINY,
        "long_text": "chunk",
        "dropout": 0.0,
        "epochs": 1,
        "batch_size": 4,
        "compare_baseline": False,
    }
    whole = Classifier.train(data, data, **settings)
    grouped = Classifier.train(data, data, batch_tokens=64, **settings)
    np.testing.assert_allclose(
        grouped.predict_proba(texts, precision="fp32"),
        whole.predict_proba(texts, precision="fp32"),
        atol=1e-4,
    )
    assert [r["train_loss"] for r in grouped.history] == pytest.approx(
        [r["train_loss"] for r in whole.history], rel=1e-4
    )
