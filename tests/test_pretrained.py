"""Slow: fine-tune the packaged pretrained encoder (all-MiniLM-L6-v2, ``encoder="minilm"``) on part
of the bundled GoEmotions sample; it must beat the linear baseline fitted on the same split and the
scratch encoder's bar, and the saved run must predict what the trained one did."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import SAMPLE
from multihot import Classifier


@pytest.mark.slow
def test_minilm_fine_tunes_past_the_baseline_and_round_trips(tmp_path):
    clf = Classifier.train(
        SAMPLE / "train.jsonl",
        SAMPLE / "dev.jsonl",
        encoder="minilm",
        epochs=2,
        output=tmp_path / "run",
    )
    t = clf.config.train
    assert (t.lr, t.head_lr, t.layer_lr_decay) == (1e-4, 1e-3, 0.8)  # the pretrained defaults
    validation, baseline = clf.metrics["validation"], clf.metrics["linear_baseline"]
    assert validation["macro_f1"] > baseline["macro_f1"] + 0.05, (validation, baseline)
    assert validation["micro_f1"] > baseline["micro_f1"] + 0.05, (validation, baseline)
    test = clf.evaluate(SAMPLE / "test.jsonl")
    # The scratch encoder's slow test asks for 0.2 / 0.35 after 6 epochs on the same sample.
    assert test["macro_f1"] > 0.3 and test["micro_f1"] > 0.45, test

    texts = ["Thank you so much, this made my day!", "I'm so sorry for your loss."]
    loaded = Classifier.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)
    gratitude = clf.label_names.index("gratitude")
    assert clf.predict_proba(texts)[0, gratitude] > clf.thresholds.values[gratitude]
