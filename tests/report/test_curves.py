"""One label's precision, recall and F1 as its threshold moves, against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from multihot.report.curves import scores_at, threshold_grid


def test_scores_match_sklearn_at_every_threshold_ties_included():
    rng = np.random.default_rng(0)
    targets = rng.random(400) < 0.3
    probs = np.round(np.clip(0.35 * targets + 0.8 * rng.random(400), 0, 1), 2)  # many ties
    thresholds = np.array([0.0, 0.1, 0.25, 0.5, probs[7], 0.77, 1.0])
    scores = scores_at(targets, probs, thresholds)
    for k, t in enumerate(thresholds):
        fired = probs >= t
        if fired.any():
            assert scores.precision[k] == pytest.approx(precision_score(targets, fired))
        else:
            assert np.isnan(scores.precision[k])
        assert scores.recall[k] == pytest.approx(recall_score(targets, fired))
        assert scores.f1[k] == pytest.approx(f1_score(targets, fired, zero_division=0))


def test_a_threshold_above_every_probability_fires_nothing():
    scores = scores_at(np.array([1, 0]), np.array([0.3, 0.2]), np.array([0.5]))
    assert np.isnan(scores.precision[0]) and scores.recall[0] == 0.0 and scores.f1[0] == 0.0


def test_a_label_without_positives_has_no_recall():
    scores = scores_at(np.zeros(3), np.array([0.3, 0.6, 0.9]), np.array([0.5]))
    assert np.isnan(scores.recall[0]) and scores.precision[0] == 0.0 and scores.f1[0] == 0.0


def test_the_grid_covers_zero_to_one_and_where_the_probabilities_crowd():
    probs = np.random.default_rng(1).random(1000) * 0.02  # all below 0.02
    grid = threshold_grid(probs)
    assert grid[0] == 0.0 and grid[-1] == 1.0
    assert np.all(np.diff(grid) > 0)
    assert (grid < 0.02).sum() > 50  # the quantiles, not only the even steps 0.0 and 0.01
