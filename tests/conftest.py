"""Shared fixtures: everything offline, tiny encoders, files under tmp_path.

Constants and helper functions are in ``helpers.py``; this file holds only fixtures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# helpers.py is not a test module: without this its asserts (assert_clean_error) would fail
# with a bare AssertionError instead of pytest's account of the values.
pytest.register_assert_rewrite("helpers")

from helpers import (  # noqa: E402
    LONG,
    TINY,
    TOY_LABELS,
    TOY_TEXTS,
    copy_run,
    invoke,
    long_documents,
    write_jsonl,
)


@pytest.fixture(scope="session")
def toy_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", TOY_TEXTS, TOY_LABELS)


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory, toy_file):
    """A tiny classifier overfit on the toy texts, saved once for the whole session."""
    from multihot import Classifier

    out = tmp_path_factory.mktemp("runs") / "toy"
    clf = Classifier.train(
        toy_file, toy_file, output=out, epochs=30, lr=2e-3, batch_size=4, warmup_ratio=0.0, **TINY
    )
    return clf, out


@pytest.fixture(scope="session")
def onnx_run(toy_run, tmp_path_factory):
    """A copy of the toy run (so the session's run stays as it was) with model.onnx exported:
    ``(classifier, run directory, export result)``."""
    from multihot import export as exporting

    clf, src = toy_run
    run = copy_run(src, tmp_path_factory.mktemp("export") / "toy")
    return clf, run, exporting.export_onnx(run)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, toy_file) -> Path:
    """A run directory trained for one epoch: only its files matter here, not its predictions."""
    from multihot import Classifier

    out = tmp_path_factory.mktemp("runs") / "tiny"
    Classifier.train(toy_file, toy_file, output=out, epochs=1, batch_size=8, **TINY)
    return out


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory, toy_file) -> Path:
    """A TF-IDF + logistic regression run, written by ``multihot baseline``."""
    out = tmp_path_factory.mktemp("runs") / "baseline"
    result = invoke("baseline", toy_file, "--val", toy_file, "-o", out, "--min-df", 1, "--C", 100)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def local_bert(tmp_path_factory) -> Path:
    """A tiny 'pretrained' BERT saved as a Hugging Face directory (model.safetensors), as a user's
    checkpoint would be."""
    from transformers import BertConfig, BertModel

    from multihot.modeling.encoders import train_wordpiece

    path = tmp_path_factory.mktemp("bert")
    tokenizer = train_wordpiece(TOY_TEXTS * 2, vocab_size=100)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def long_runs(tmp_path_factory):
    """The trigger-phrase documents (:func:`helpers.long_documents`: 600 to 2,000 tokens, each
    label's phrase anywhere) and a tiny model trained on them twice, reading them whole in
    windows and truncated: ``{"train": path, "val": path, "test": (texts, labels), "chunk":
    (classifier, run directory), "truncate": (...)}``."""
    from multihot import Classifier

    data = tmp_path_factory.mktemp("long")
    out = {
        "train": write_jsonl(data / "train.jsonl", *long_documents(120, seed=0)),
        "val": write_jsonl(data / "val.jsonl", *long_documents(40, seed=1)),
        "test": long_documents(60, seed=2),
    }
    for mode in ("chunk", "truncate"):
        run = tmp_path_factory.mktemp("runs") / mode
        clf = Classifier.train(out["train"], out["val"], output=run, long_text=mode, **LONG)
        out[mode] = (clf, run)
    return out


@pytest.fixture
def restore_threads(monkeypatch):
    """Undo what :func:`multihot.core.threads.set_threads` (``--threads``) does to this test
    process, so later tests compute on every core again."""
    import torch

    from multihot.core import threads

    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_threads", None)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", str(before)))
    yield
    torch.set_num_threads(before)
