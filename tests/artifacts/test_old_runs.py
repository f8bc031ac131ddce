"""Run directories written by earlier versions load and predict the same probabilities.

``tests/fixtures/runs-1d441df/`` was written by the code at commit 1d441df (before the package
was cut into layers and before weights recorded their labels): a tiny transformer (cls pooling,
mlp head) and a linear baseline, both trained on the toy texts, with the fp32 probabilities and
labels that code gave for ten texts. Never regenerate it with newer code: it stands for the users'
old runs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import FIXTURES, copy_run
from multihot import Classifier, Predictor

FIXTURE = FIXTURES / "runs-1d441df"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.mark.parametrize("kind", ["transformer", "baseline"])
def test_a_run_written_by_old_code_predicts_the_same(kind, tmp_path):
    run = copy_run(FIXTURE / kind, tmp_path / kind)  # loading may tidy beside a run
    texts, expected = EXPECTED["texts"], EXPECTED["expected"][kind]
    clf = Classifier.load(run)
    probs = clf.predict_proba(texts, precision="fp32")
    np.testing.assert_allclose(probs, np.array(expected["probs"]), rtol=0, atol=1e-6)
    assert clf.predict(texts, precision="fp32") == expected["labels"]
    predictor = Predictor.load(run, precision="fp32")
    np.testing.assert_allclose(predictor.predict_proba(texts), probs, rtol=0, atol=0)
