"""Slow: train on the bundled GoEmotions sample and beat the trivial baselines by a clear margin."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import SAMPLE
from multihot import Classifier
from multihot.data.readers import read_dataset
from multihot.scoring.metrics import compute_metrics


@pytest.mark.slow
def test_sample_beats_majority_and_all_negative_baselines(tmp_path):
    clf = Classifier.train(
        SAMPLE / "train.jsonl",
        SAMPLE / "dev.jsonl",
        encoder="scratch-mini",
        epochs=6,
        output=tmp_path / "run",
    )
    test = read_dataset(SAMPLE / "test.jsonl")
    targets = clf.labels.encode(test.labels)
    result = clf.evaluate(test)

    # Baselines on the same test set: every label off, and every text given the most common label.
    all_negative = compute_metrics(targets, np.zeros_like(targets), 0.5, clf.label_names)[
        "macro_f1"
    ]
    majority = np.zeros_like(targets)
    majority[:, clf.labels.encode(read_dataset(SAMPLE / "train.jsonl").labels).sum(0).argmax()] = 1
    majority_f1 = compute_metrics(targets, majority, 0.5, clf.label_names)["macro_f1"]

    assert all_negative == 0.0 and majority_f1 < 0.05
    assert result["macro_f1"] > 0.2, result["macro_f1"]
    assert result["micro_f1"] > 0.35, result["micro_f1"]
