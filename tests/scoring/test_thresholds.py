"""Threshold search checked against brute force with sklearn.metrics.f1_score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from multihot.core.errors import ConfigError, MultihotError
from multihot.scoring.thresholds import GRID, Thresholds, best_f1_threshold, tune_thresholds

FINE_GRID = np.linspace(0, 1, 201)


def make_data(seed=0, n=80, num_labels=6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.1, 0.5, num_labels)
    targets = (rng.random((n, num_labels)) < rates).astype(np.int64)
    probs = np.clip(0.3 * targets + 0.7 * rng.random((n, num_labels)), 0, 1).astype(dtype)
    return targets, probs


def f1_at(targets, probs, t):
    return f1_score(targets, probs >= t, zero_division=0)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_best_f1_threshold_is_exact(seed, dtype):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    targets = (rng.random(n) < 0.4).astype(int)
    targets[0] = 1
    probs = rng.random(n).astype(dtype)
    if seed % 2:  # coarse probs: many ties
        probs = np.round(probs, 1).astype(dtype)
    t, f1 = best_f1_threshold(targets, probs)
    assert 0.0 <= t <= 1.0
    assert f1_at(targets, probs, t) == pytest.approx(f1)
    assert f1 >= f1_at(targets, probs, 0.5) - 1e-12
    for g in FINE_GRID:
        assert f1 >= f1_at(targets, probs, g) - 1e-12
    for p in np.unique(probs):  # every reachable cut, including those between grid points
        assert f1 >= f1_at(targets, probs, p) - 1e-12


def test_best_f1_threshold_is_a_midpoint():
    t, f1 = best_f1_threshold(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.4, 0.2]))
    assert t == pytest.approx(0.6)
    assert f1 == 1.0


def test_best_f1_threshold_ties_stay_together():
    # The two 0.6 texts cannot be split by any threshold: including both beats excluding both.
    targets = np.array([1, 1, 0, 0])
    probs = np.array([0.9, 0.6, 0.6, 0.1])
    t, f1 = best_f1_threshold(targets, probs)
    assert 0.1 < t <= 0.6
    assert f1 == pytest.approx(f1_at(targets, probs, t)) == pytest.approx(0.8)


def test_best_f1_threshold_constant_probs():
    targets = np.array([1, 0, 1, 0, 0])
    t, f1 = best_f1_threshold(targets, np.full(5, 0.3))
    assert t <= 0.3
    assert f1 == pytest.approx(f1_at(targets, np.full(5, 0.3), t)) == pytest.approx(4 / 7)
    t, f1 = best_f1_threshold(np.array([1, 1]), np.zeros(2))
    assert (t, f1) == (0.0, 1.0)


def test_best_f1_threshold_without_positives():
    assert best_f1_threshold(np.zeros(4), np.array([0.1, 0.9, 0.5, 0.2])) == (0.5, 0.0)


def test_best_f1_threshold_adjacent_floats():
    hi = 0.5
    lo = np.nextafter(hi, 0)
    t, f1 = best_f1_threshold(np.array([1, 0]), np.array([hi, lo]))
    assert lo < t <= hi
    assert f1 == 1.0


@pytest.mark.parametrize(
    ("targets", "probs"),
    [
        (np.array([1, 0]), np.array([0.5, 1.5])),
        (np.array([1, 0]), np.array([0.5, np.nan])),
        (np.array([1, 2]), np.array([0.5, 0.4])),
        (np.array([1, 0, 1]), np.array([0.5, 0.4])),
        (np.array([[1, 0]]), np.array([[0.5, 0.4]])),
    ],
)
def test_best_f1_threshold_bad_inputs(targets, probs):
    with pytest.raises(MultihotError):
        best_f1_threshold(targets, probs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_label_never_worse_than_half(dtype):
    targets, probs = make_data(seed=1, dtype=dtype)
    th = tune_thresholds(targets, probs, min_support=5)
    assert th.strategy == "per-label"
    assert th.fallback_labels == []
    tuned = f1_score(targets, th.apply(probs), average=None, zero_division=0)
    half = f1_score(targets, probs >= 0.5, average=None, zero_division=0)
    assert (tuned >= half - 1e-12).all()
    for j in range(targets.shape[1]):
        assert tuned[j] == pytest.approx(best_f1_threshold(targets[:, j], probs[:, j])[1])
    macro = f1_score(targets, th.apply(probs), average="macro", zero_division=0)
    assert macro >= f1_score(targets, probs >= 0.5, average="macro", zero_division=0)


def test_rare_labels_fall_back_to_global():
    targets, probs = make_data(seed=2)
    targets[:, 1] = 0
    targets[:3, 1] = 1
    targets[:, 4] = 0
    th = tune_thresholds(targets, probs, min_support=5)
    assert th.fallback_labels == [1, 4]
    assert th.values[1] == th.values[4] == th.global_value
    assert th.global_value in GRID
    glob = tune_thresholds(targets, probs, strategy="global")
    assert th.global_value == glob.global_value


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["macro_f1", "micro_f1"])
def test_global_matches_brute_force(seed, metric):
    targets, probs = make_data(
        seed=seed, num_labels=4, dtype=np.float32 if seed % 2 else np.float64
    )
    if seed >= 2:  # probs sitting exactly on grid values: ">=" must include them
        probs = np.round(probs, 2)
    targets[:, 3] = 0  # a label without positives: F1 = 0 at every threshold (zero_division=0)
    average = metric.split("_")[0]
    scores = [f1_score(targets, probs >= g, average=average, zero_division=0) for g in GRID]
    th = tune_thresholds(targets, probs, strategy="global", global_metric=metric)
    assert th.strategy == "global"
    assert (th.values == th.global_value).all()
    chosen = f1_score(targets, th.apply(probs), average=average, zero_division=0)
    assert chosen == pytest.approx(max(scores))


def test_fixed():
    targets, probs = make_data(seed=3)
    th = tune_thresholds(targets, probs, strategy="fixed", fixed_value=0.3)
    assert (th.values == 0.3).all() and th.global_value == 0.3
    assert th.to_dict(list("abcdef")) == Thresholds.fixed(6, 0.3).to_dict(list("abcdef"))


def test_top1_fallback_adds_only_the_argmax():
    targets, probs = make_data(seed=4)
    th = Thresholds(np.full(probs.shape[1], 0.9), "global", 0.9, [], top1_fallback=True)
    plain = probs >= 0.9
    decisions = th.apply(probs)
    assert decisions.any(axis=1).all()
    added = decisions & ~plain
    assert (plain <= decisions).all()
    empty = ~plain.any(axis=1)
    assert (added.sum(axis=1) == empty).all()
    assert (added[empty].argmax(axis=1) == probs[empty].argmax(axis=1)).all()


def test_round_trip_through_json():
    targets, probs = make_data(seed=5)
    targets[:, 2] = 0
    th = tune_thresholds(targets, probs, top1_fallback=True)
    names = [f"label {j}" for j in range(targets.shape[1])]
    data = json.loads(json.dumps(th.to_dict(names)))
    assert data["fallback_labels"] == ["label 2"]
    loaded = Thresholds.from_dict(data, names)
    assert np.array_equal(loaded.values, th.values)
    assert loaded.to_dict(names) == th.to_dict(names)
    assert loaded.fallback_labels == [2] and loaded.top1_fallback


def test_from_dict_rejects_missing_and_bad_values():
    names = ["a", "b"]
    data = Thresholds.fixed(2).to_dict(names)
    del data["thresholds"]["b"]
    with pytest.raises(MultihotError, match="'b'"):
        Thresholds.from_dict(data, names)
    data = Thresholds.fixed(2).to_dict(names)
    data["thresholds"]["a"] = 1.5
    with pytest.raises(MultihotError, match="'a'"):
        Thresholds.from_dict(data, names)
    data = Thresholds.fixed(2).to_dict(names)
    data["thresholds"]["c"] = 0.5
    with pytest.raises(MultihotError, match="'c'"):
        Thresholds.from_dict(data, names)
    data = Thresholds.fixed(2).to_dict(names)
    data["strategy"] = "best"
    with pytest.raises(ConfigError):
        Thresholds.from_dict(data, names)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "per_label"},
        {"global_metric": "accuracy"},
        {"fixed_value": 1.5},
        {"min_support": -1},
    ],
)
def test_tune_thresholds_rejects_bad_config(kwargs):
    targets, probs = make_data(seed=6)
    with pytest.raises(MultihotError):
        tune_thresholds(targets, probs, **kwargs)


def test_tune_thresholds_rejects_bad_shapes():
    targets, probs = make_data(seed=7)
    with pytest.raises(MultihotError, match="shape"):
        tune_thresholds(targets[:, :-1], probs)
    with pytest.raises(MultihotError, match="shape"):
        Thresholds.fixed(3).apply(probs)
