"""Shared fixtures: everything offline, tiny encoders, files under tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "goemotions"

# A handful of texts that a tiny encoder can learn exactly (the overfit test).
TOY_TEXTS = [
    "i love this so much",
    "this is terrible and sad",
    "what a great day",
    "i hate waiting in line",
    "happy happy joy joy",
    "so angry right now",
    "lovely weather today",
    "awful service and rude staff",
]
TOY_LABELS = [
    ["joy", "love"],
    ["sadness"],
    ["joy"],
    ["anger"],
    ["joy"],
    ["anger"],
    ["joy"],
    ["anger", "sadness"],
]

# Small and fast: 2 layers of hidden 128, tiny vocabulary; fp32 so results are exact.
TINY = {
    "encoder": "scratch-tiny",
    "vocab_size": 120,
    "max_length": 32,
    "precision": "fp32",
    "seed": 0,
}


def write_jsonl(path: Path, texts, labels) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for text, names in zip(texts, labels, strict=True):
            fh.write(json.dumps({"text": text, "labels": names}) + "\n")
    return path


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
