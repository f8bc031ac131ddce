"""Calibration: ECE measures the gap, a temperature per label closes it without reordering texts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from multihot.core.errors import MultihotError
from multihot.scoring.calibration import (
    Calibration,
    apply_temperatures,
    calibration_summary,
    expected_calibration_error,
    fit_temperatures,
    per_label_ece,
    reliability,
)
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import tune_thresholds


def calibrated_logits(n: int = 20_000, labels: int = 3, seed: int = 0):
    """Logits whose sigmoid is the true probability of each label."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(-1.0, 2.0, size=(n, labels))
    targets = (rng.random((n, labels)) < sigmoid(logits)).astype(np.int8)
    return targets, logits


def test_ece_of_calibrated_probabilities_is_small_and_of_overconfident_ones_large():
    targets, logits = calibrated_logits()
    assert expected_calibration_error(targets, sigmoid(logits)) < 0.01
    assert expected_calibration_error(targets, sigmoid(4 * logits)) > 0.05


def test_reliability_bins_count_every_forecast_and_hold_their_means():
    probs = np.array([0.0, 0.05, 0.5, 0.51, 1.0])
    bins = reliability(np.array([0, 0, 1, 1, 1]), probs, bins=2)
    assert bins.count.tolist() == [3, 2]
    assert bins.confidence[0] == pytest.approx((0.0 + 0.05 + 0.5) / 3)
    assert bins.frequency.tolist() == pytest.approx([1 / 3, 1.0])


def test_temperatures_undo_overconfidence_and_keep_every_labels_order():
    targets, logits = calibrated_logits()
    overconfident = logits * np.array([4.0, 1.0, 0.5])  # too sure, right, too timid
    temperatures = fit_temperatures(targets, overconfident)
    assert temperatures == pytest.approx([4.0, 1.0, 0.5], rel=0.1)
    before, after = sigmoid(overconfident), sigmoid(apply_temperatures(overconfident, temperatures))
    assert (
        expected_calibration_error(targets, after) < expected_calibration_error(targets, before) / 3
    )
    assert (per_label_ece(targets, after) < 0.015).all()
    for j in range(3):
        # No pair of texts changes order (float32 rounding may only merge or split ties).
        order = np.lexsort((after[:, j], before[:, j]))
        assert (np.diff(after[order, j]) >= 0).all()
        assert (np.diff(before[order, j]) >= 0).all()
        assert roc_auc_score(targets[:, j], after[:, j]) == pytest.approx(
            roc_auc_score(targets[:, j], before[:, j])
        )


def test_platt_also_removes_a_shift_that_temperatures_cannot():
    targets, logits = calibrated_logits()
    shifted = 2.0 * logits + 1.5  # too sure, and every probability too high (as ASL leaves them)
    temperature_only = Calibration.fit(targets, shifted, method="temperature")
    platt = Calibration.fit(targets, shifted)
    assert platt.method == "platt" and (temperature_only.biases == 0).all()
    np.testing.assert_allclose(platt.temperatures, 2.0, rtol=0.1)
    np.testing.assert_allclose(platt.biases, -0.75, atol=0.1)
    assert platt.ece_after < 0.01 < temperature_only.ece_after < temperature_only.ece_before
    for j in range(3):
        calibrated = platt.apply(shifted)[:, j]
        assert (np.diff(calibrated[np.argsort(shifted[:, j])]) >= 0).all()


def test_calibration_json_round_trips_and_refuses_bad_values():
    names = ["a", "b", "c"]
    c = Calibration(
        np.array([0.5, 1.0, 2.0]), np.array([-1.0, 0.0, 0.5]), "platt", "dev", 10, 0.2, 0.05
    )
    back = Calibration.from_dict(c.to_dict(names), names)
    np.testing.assert_allclose(back.temperatures, c.temperatures)
    np.testing.assert_allclose(back.biases, c.biases)
    assert (back.method, back.fitted_on, back.num_texts, back.ece_before) == (
        "platt",
        "dev",
        10,
        0.2,
    )
    old = {"method": "temperature", "temperatures": {"a": 1, "b": 2, "c": 3}}
    assert (Calibration.from_dict(old, names).biases == 0).all()
    for bad in (
        {"temperatures": {"a": 0, "b": 1, "c": 1}},
        {"temperatures": {"a": 1, "b": 1}},
        {"temperatures": {"a": 1, "b": 1, "c": 1}, "biases": {"a": "x", "b": 0, "c": 0}},
        {"method": "isotonic", "temperatures": {"a": 1, "b": 1, "c": 1}},
    ):
        with pytest.raises(MultihotError):
            Calibration.from_dict(bad, names)


def test_a_label_without_positives_takes_the_fit_of_every_label_pooled():
    targets, logits = calibrated_logits(n=500)
    targets[:, 1] = 0
    temperatures = fit_temperatures(targets, 3 * logits)
    pooled = fit_temperatures(targets.reshape(-1, 1), (3 * logits).reshape(-1, 1))[0]
    assert temperatures[1] == pytest.approx(pooled)
    assert temperatures[1] > 1.5  # the logits were scaled by 3


def test_rare_labels_are_on_the_scale_of_the_global_threshold_they_fall_back_to():
    """A label with too few validation positives to be fitted alone once kept its raw
    probabilities while the global threshold it falls back to was tuned on calibrated ones: the
    asl loss's raw 0.3-0.4 cleared a calibrated 0.24 on nearly every text (MiniLM on the sample:
    pride fired on 500 of 500 texts)."""
    rng = np.random.default_rng(0)
    n = 1000
    targets = np.zeros((n, 3), dtype=np.float32)
    targets[:, 0] = rng.random(n) < 0.3
    targets[:, 1] = rng.random(n) < 0.2
    targets[:3, 2] = 1  # three positives: fewer than min_support
    # Raw scores far above the rates, as the asl loss leaves them (negatives around p = 0.38).
    logits = np.where(targets > 0, 0.3, -0.5) + rng.normal(0, 0.4, (n, 3))
    logits = logits.astype(np.float32)
    calibration = Calibration.fit(targets, logits, min_positives=5)
    probs = sigmoid(calibration.apply(logits))
    thresholds = tune_thresholds(
        targets, probs, strategy="per-label", fixed_value=0.5, min_support=5, top1_fallback=False
    )
    assert 2 in thresholds.fallback_labels
    assert thresholds.apply(probs)[:, 2].mean() < 0.05
    assert probs[:, 2].mean() == pytest.approx(targets[:, 2].mean(), abs=0.01)


def test_summary_names_every_label():
    targets, logits = calibrated_logits(n=2000)
    summary = calibration_summary(targets, sigmoid(3 * logits), sigmoid(logits), ["a", "b", "c"])
    assert summary["ece_after"] < summary["ece_before"]
    assert set(summary["per_label"]) == {"a", "b", "c"}
