"""Partial labels end to end, with the tiny scratch encoder: fully labelled data train exactly as
they always did (an explicit all-known ``labels_known`` changes nothing, bit for bit), and two
datasets labelled for different labels train together, the unknown pairs counting nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from helpers import TINY, TOY_LABELS, TOY_TEXTS, write_jsonl
from multihot import Classifier
from multihot.artifacts.validation import read_validation
from multihot.baseline.linear import BaselineConfig
from multihot.tuning.cv import cross_validate

SETTINGS = {**TINY, "epochs": 3, "batch_size": 4, "lr": 2e-3, "warmup_ratio": 0.0}
ALL = sorted({name for names in TOY_LABELS for name in names})
FIRST, SECOND = ["joy", "love"], ["anger", "sadness"]


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def merged(path: Path) -> Path:
    """The toy texts twice: once labelled for joy and love only, once (reworded) for anger and
    sadness only, as two datasets labelled for different label sets."""
    records = [
        {"text": text, "labels": [n for n in names if n in FIRST], "labels_known": FIRST}
        for text, names in zip(TOY_TEXTS, TOY_LABELS, strict=True)
    ]
    records += [
        {
            "text": text + " again",
            "labels": [n for n in names if n in SECOND],
            "labels_known": SECOND,
        }
        for text, names in zip(TOY_TEXTS, TOY_LABELS, strict=True)
    ]
    return write_records(path, records)


def without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def test_fully_known_data_train_bit_for_bit_as_without_the_column(tmp_path):
    plain = write_jsonl(tmp_path / "plain.jsonl", TOY_TEXTS, TOY_LABELS)
    explicit = write_records(
        tmp_path / "explicit.jsonl",
        [
            {"text": text, "labels": names, "labels_known": ALL}
            for text, names in zip(TOY_TEXTS, TOY_LABELS, strict=True)
        ],
    )
    a = Classifier.train(plain, plain, **SETTINGS)
    b = Classifier.train(explicit, explicit, **SETTINGS)
    weights_a, weights_b = a.model.state_dict(), b.model.state_dict()
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert a.metrics["validation"] == b.metrics["validation"]
    assert "known" not in a.metrics["validation"]["per_label"]["joy"]
    assert without_timings(a.history) == without_timings(b.history)
    assert np.array_equal(a.thresholds.values, b.thresholds.values)
    assert a.validation.known is None and b.validation.known is None


def test_two_datasets_labelled_for_different_labels_train_together(tmp_path):
    data = merged(tmp_path / "merged.jsonl")
    out = tmp_path / "run"
    clf = Classifier.train(data, data, output=out, **SETTINGS)
    per_label = clf.metrics["validation"]["per_label"]
    # Each label is scored on the 8 texts labelled for it; its support counts their positives.
    for name in ALL:
        positives = sum(name in names for names in TOY_LABELS)
        assert per_label[name]["known"] == len(TOY_TEXTS), name
        assert per_label[name]["support"] == positives, name
    assert np.isfinite(clf.history[-1]["val_loss"]) and np.isfinite(clf.history[-1]["train_loss"])
    # The validation rows keep their known labels, and a loaded run scores them the same way.
    lines = (out / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["labels_known"] == FIRST
    assert json.loads(lines[-1])["labels_known"] == SECOND
    loaded = Classifier.load(out)
    saved = read_validation(out, loaded.labels)
    assert saved.known is not None and saved.known.sum() == 4 * len(TOY_TEXTS)
    evaluated = loaded.evaluate(data)["per_label"]
    assert {name: evaluated[name]["known"] for name in ALL} == {name: 8 for name in ALL}


def test_the_baseline_and_cross_validation_take_partial_labels(tmp_path):
    data = merged(tmp_path / "merged.jsonl")
    baseline = Classifier.train_baseline(
        data, data, baseline=BaselineConfig(min_df=1), min_support=1
    )
    assert baseline.metrics["validation"]["per_label"]["love"]["known"] == len(TOY_TEXTS)
    result = cross_validate(data, folds=2, baseline=True, min_support=1)
    assert result.known is not None and result.known.sum() == 4 * len(TOY_TEXTS)
    oof = result.oof_metrics["per_label"]
    assert {name: oof[name]["known"] for name in ALL} == {name: 8 for name in ALL}
