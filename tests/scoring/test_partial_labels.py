"""Partial labels in scoring: metrics, thresholds and calibration with a ``known`` mask equal
scikit-learn (or the unmasked function) on the known pairs only, and an all-known mask changes
nothing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from multihot.core.errors import MultihotError
from multihot.scoring.calibration import (
    calibration_summary,
    expected_calibration_error,
    fit_calibration,
    per_label_ece,
)
from multihot.scoring.metrics import compute_metrics, length_buckets
from multihot.scoring.thresholds import GRID, best_f1_threshold, tune_thresholds

NAMES = ["a", "b", "c", "d", "e"]


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    n = 120
    targets = (rng.random((n, 5)) < 0.3).astype(np.int64)
    probs = np.clip(0.5 * targets + 0.6 * rng.random((n, 5)), 0, 1)
    known = rng.random((n, 5)) < 0.65
    known[:, 4] = False  # a label known in no text
    known[:3] = False  # texts known for no label
    return targets, probs, known


def _binary(y, d, fn):
    return fn(y, d, zero_division=0)


def test_per_label_metrics_equal_sklearn_on_the_labels_known_texts(data):
    targets, probs, known = data
    thresholds = np.array([0.5, 0.4, 0.6, 0.5, 0.5])
    m = compute_metrics(targets, probs, thresholds, NAMES, known=known)
    decisions = probs >= thresholds
    for j, name in enumerate(NAMES[:4]):
        rows = known[:, j]
        y, d, p = targets[rows, j], decisions[rows, j], probs[rows, j]
        got = m["per_label"][name]
        assert got["precision"] == pytest.approx(_binary(y, d, skm.precision_score))
        assert got["recall"] == pytest.approx(_binary(y, d, skm.recall_score))
        assert got["f1"] == pytest.approx(_binary(y, d, skm.f1_score))
        assert got["support"] == y.sum() and got["known"] == rows.sum()
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
        assert got["ap"] == pytest.approx(skm.average_precision_score(y, p))
    unknown = m["per_label"]["e"]
    assert unknown["known"] == 0 and unknown["support"] == 0
    assert unknown["f1"] is None and unknown["roc_auc"] is None and unknown["ap"] is None
    f1 = [m["per_label"][n]["f1"] for n in NAMES[:4]]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))  # over the labels known somewhere
    support = np.array([m["per_label"][n]["support"] for n in NAMES[:4]])
    assert m["weighted_f1"] == pytest.approx((np.array(f1) * support).sum() / support.sum())


def test_micro_and_per_text_metrics_equal_sklearn_on_the_known_pairs(data):
    targets, probs, known = data
    m = compute_metrics(targets, probs, 0.5, NAMES, known=known)
    decisions = probs >= 0.5
    y, d, p = targets[known], decisions[known], probs[known]
    assert m["micro_f1"] == pytest.approx(_binary(y, d, skm.f1_score))
    assert m["micro_precision"] == pytest.approx(_binary(y, d, skm.precision_score))
    assert m["micro_recall"] == pytest.approx(_binary(y, d, skm.recall_score))
    assert m["micro_roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["micro_ap"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["hamming_loss"] == pytest.approx(np.mean(y != d))
    # Per text, on its known labels, over the texts with at least one.
    rows = [i for i in range(len(targets)) if known[i].any()]
    per_text = [(targets[i, known[i]], decisions[i, known[i]], probs[i, known[i]]) for i in rows]
    assert m["samples_f1"] == pytest.approx(
        np.mean([_binary(t, x, skm.f1_score) for t, x, _ in per_text])
    )
    assert m["samples_recall"] == pytest.approx(
        np.mean([_binary(t, x, skm.recall_score) for t, x, _ in per_text])
    )
    assert m["jaccard_samples"] == pytest.approx(
        np.mean([_binary(t, x, skm.jaccard_score) for t, x, _ in per_text])
    )
    assert m["subset_accuracy"] == pytest.approx(np.mean([(t == x).all() for t, x, _ in per_text]))
    lrap = [skm.label_ranking_average_precision_score([t], [q]) for t, _, q in per_text]
    assert m["lrap"] == pytest.approx(np.mean(lrap))
    assert m["num_texts"] == len(targets)


def test_an_all_known_mask_changes_nothing(data):
    targets, probs, _ = data
    every = np.ones(targets.shape, dtype=bool)
    assert compute_metrics(targets, probs, 0.5, NAMES, known=every) == compute_metrics(
        targets, probs, 0.5, NAMES
    )
    tuned, plain = tune_thresholds(targets, probs, known=every), tune_thresholds(targets, probs)
    assert np.array_equal(tuned.values, plain.values)
    assert tuned.global_value == plain.global_value
    logits = np.log(probs.clip(1e-3, 1 - 1e-3) / (1 - probs.clip(1e-3, 1 - 1e-3)))
    for a, b in zip(
        fit_calibration(targets, logits, known=every), fit_calibration(targets, logits), strict=True
    ):
        assert np.array_equal(a, b)


def test_metrics_refuse_a_mask_of_another_shape_or_with_nothing_known(data):
    targets, probs, known = data
    with pytest.raises(MultihotError, match="known shape"):
        compute_metrics(targets, probs, 0.5, NAMES, known=known[:, :2])
    with pytest.raises(MultihotError, match="no \\(text, label\\) pair is known"):
        compute_metrics(targets, probs, 0.5, NAMES, known=np.zeros(targets.shape, dtype=bool))


def test_unknown_pairs_do_not_move_any_score(data):
    """Whatever the targets and probabilities say at unknown pairs, the scores stay."""
    targets, probs, known = data
    rng = np.random.default_rng(1)
    noisy_t, noisy_p = targets.copy(), probs.copy()
    noisy_t[~known] = rng.integers(0, 2, (~known).sum())
    noisy_p[~known] = rng.random((~known).sum())
    a = compute_metrics(targets * known, probs, 0.5, NAMES, known=known)
    b = compute_metrics(noisy_t, noisy_p, 0.5, NAMES, known=known)
    assert a == b
    ta, tb = (
        tune_thresholds(targets * known, probs, known=known),
        tune_thresholds(noisy_t, noisy_p, known=known),
    )
    assert np.array_equal(ta.values, tb.values) and ta.global_value == tb.global_value


# ------------------------------------------------------------------------------------ thresholds
def test_per_label_thresholds_are_tuned_on_the_labels_known_texts(data):
    targets, probs, known = data
    th = tune_thresholds(targets, probs, min_support=3, known=known)
    for j in range(4):
        rows = known[:, j]
        assert th.values[j] == best_f1_threshold(targets[rows, j], probs[rows, j])[0]
    assert 4 in th.fallback_labels  # no known positive


def test_a_row_mask_tunes_as_the_known_rows_alone(data):
    targets, probs, _ = data
    rows = np.arange(len(targets)) % 3 != 0
    known = np.repeat(rows[:, None], targets.shape[1], axis=1)
    for metric in ("macro_f1", "micro_f1"):
        masked = tune_thresholds(targets, probs, known=known, global_metric=metric)
        alone = tune_thresholds(targets[rows], probs[rows], global_metric=metric)
        assert np.array_equal(masked.values, alone.values)
        assert masked.global_value == alone.global_value


@pytest.mark.parametrize("metric", ["macro_f1", "micro_f1"])
def test_the_global_value_maximises_f1_over_the_known_pairs(data, metric):
    targets, probs, known = data
    th = tune_thresholds(targets, probs, strategy="global", known=known, global_metric=metric)
    scores = []
    for value in GRID:
        decisions = probs >= value
        if metric == "micro_f1":
            scores.append(_binary(targets[known], decisions[known], skm.f1_score))
        else:
            labels = [j for j in range(5) if known[:, j].any()]
            f1 = [
                _binary(targets[known[:, j], j], decisions[known[:, j], j], skm.f1_score)
                for j in labels
            ]
            scores.append(np.mean(f1))
    scores = np.array(scores)
    best = GRID[np.isclose(scores, scores.max(), rtol=0, atol=1e-12)]
    assert th.global_value == best[np.argmin(np.abs(best - 0.5))]


# ----------------------------------------------------------------------------------- calibration
def test_calibration_fits_each_label_on_its_known_texts(data):
    targets, probs, known = data
    logits = np.log(probs.clip(1e-3, 1 - 1e-3) / (1 - probs.clip(1e-3, 1 - 1e-3)))
    temperatures, biases = fit_calibration(targets, logits, known=known)
    for j in range(4):
        rows = known[:, j]
        t, b = fit_calibration(targets[rows][:, [j]], logits[rows][:, [j]])
        assert temperatures[j] == pytest.approx(t[0]) and biases[j] == pytest.approx(b[0])


def test_ece_counts_only_the_known_pairs(data):
    targets, probs, known = data
    assert expected_calibration_error(targets, probs, known=known) == pytest.approx(
        expected_calibration_error(targets[known], probs[known])
    )
    per_label = per_label_ece(targets, probs, known=known)
    for j in range(4):
        rows = known[:, j]
        assert per_label[j] == pytest.approx(
            expected_calibration_error(targets[rows, j], probs[rows, j])
        )
    assert np.isnan(per_label[4])
    summary = calibration_summary(targets, probs, probs, NAMES, known)
    assert summary["per_label"]["e"] == {"ece_before": None, "ece_after": None}


def test_length_buckets_score_the_known_pairs():
    targets = np.array([[1, 0], [0, 1], [1, 1]])
    decisions = np.array([[1, 1], [0, 0], [1, 1]])
    known = np.array([[True, False], [False, False], [True, True]])
    (bucket,) = length_buckets([3, 4, 5], targets, decisions, 16, known=known)
    assert bucket["micro_f1"] == 1.0  # the false positive at (0, 1) and the miss at (1, 1) unknown
    assert bucket["subset_accuracy"] == 1.0  # over the two texts with a known label
