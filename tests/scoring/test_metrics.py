"""compute_metrics against direct scikit-learn calls."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from multihot.core.errors import ConfigError, MultihotError
from multihot.scoring.metrics import PRIMARY_METRICS, compute_metrics, metric_is_better


def make_data(seed=0, n=60, num_labels=5):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, num_labels)) < 0.3).astype(np.float32)
    # Probs correlated with the targets so the metrics are not all near chance.
    probs = np.clip(0.35 * targets + 0.65 * rng.random((n, num_labels)), 0, 1)
    targets[:, 0] = 0  # a label with no positives
    return targets, probs, [f"l{j}" for j in range(num_labels)]


def test_matches_sklearn():
    targets, probs, names = make_data()
    targets[:, 0] = (probs[:, 0] > 0.6).astype(np.float32)  # all labels defined here
    thresholds = np.linspace(0.3, 0.7, targets.shape[1])
    m = compute_metrics(targets, probs, thresholds, names)
    pred = probs >= thresholds
    for average in ("micro", "macro", "weighted", "samples"):
        kw = {"average": average, "zero_division": 0}
        assert m[f"{average}_f1"] == pytest.approx(skm.f1_score(targets, pred, **kw))
        assert m[f"{average}_precision"] == pytest.approx(skm.precision_score(targets, pred, **kw))
        assert m[f"{average}_recall"] == pytest.approx(skm.recall_score(targets, pred, **kw))
    for average in ("micro", "macro"):
        auc = skm.roc_auc_score(targets, probs, average=average)
        ap = skm.average_precision_score(targets, probs, average=average)
        assert m[f"{average}_roc_auc"] == pytest.approx(auc)
        assert m[f"{average}_ap"] == pytest.approx(ap)
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(targets, pred))
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(targets, pred))
    jac = skm.jaccard_score(targets, pred, average="samples", zero_division=0)
    assert m["jaccard_samples"] == pytest.approx(jac)
    lrap = skm.label_ranking_average_precision_score(targets, probs)
    assert m["lrap"] == pytest.approx(lrap)
    assert (m["num_texts"], m["num_labels"]) == targets.shape
    assert set(PRIMARY_METRICS) <= set(m)

    f1 = skm.f1_score(targets, pred, average=None, zero_division=0)
    precision = skm.precision_score(targets, pred, average=None, zero_division=0)
    recall = skm.recall_score(targets, pred, average=None, zero_division=0)
    for j, name in enumerate(names):
        row = m["per_label"][name]
        assert row["f1"] == pytest.approx(f1[j])
        assert row["precision"] == pytest.approx(precision[j])
        assert row["recall"] == pytest.approx(recall[j])
        assert row["support"] == int(targets[:, j].sum())
        assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(targets[:, j], probs[:, j]))
        ap = skm.average_precision_score(targets[:, j], probs[:, j])
        assert row["ap"] == pytest.approx(ap)
        assert row["threshold"] == pytest.approx(thresholds[j])


def test_label_without_positives_is_skipped_in_macro_ranking_metrics():
    targets, probs, names = make_data(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compute_metrics must not leak sklearn warnings
        m = compute_metrics(targets, probs, 0.5, names)
    assert m["per_label"]["l0"]["roc_auc"] is None
    assert m["per_label"]["l0"]["ap"] is None
    assert m["per_label"]["l0"]["support"] == 0
    auc = [skm.roc_auc_score(targets[:, j], probs[:, j]) for j in range(1, len(names))]
    ap = [skm.average_precision_score(targets[:, j], probs[:, j]) for j in range(1, len(names))]
    assert m["macro_roc_auc"] == pytest.approx(np.mean(auc))
    assert m["macro_ap"] == pytest.approx(np.mean(ap))
    assert m["micro_roc_auc"] == pytest.approx(skm.roc_auc_score(targets, probs, average="micro"))
    json.dumps(m, allow_nan=False)


def test_all_negative_targets_give_none_not_nan():
    targets = np.zeros((4, 2))
    probs = np.full((4, 2), 0.3)
    m = compute_metrics(targets, probs, 0.5, ["a", "b"])
    for key in ("micro_roc_auc", "macro_roc_auc", "micro_ap", "macro_ap", "lrap"):
        assert m[key] is None
    assert m["hamming_loss"] == 0.0
    assert m["subset_accuracy"] == 1.0
    json.dumps(m, allow_nan=False)


def test_decisions_override_thresholds():
    targets, probs, names = make_data(seed=2)
    decisions = np.zeros(targets.shape, dtype=bool)
    decisions[:, 1] = True
    m = compute_metrics(targets, probs, 0.5, names, decisions=decisions)
    expected = skm.f1_score(targets, decisions, average="micro", zero_division=0)
    assert m["micro_f1"] == pytest.approx(expected)
    assert m["per_label"]["l1"]["recall"] == 1.0


def leaves(value, path=""):
    """``(path, value)`` of every value in nested dicts: ``per_label.l0.roc_auc``."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(inner, f"{path}.{key}" if path else key)
    else:
        yield path, value


def test_values_are_plain_python():
    """Plain floats and ints (no numpy scalars), and None only where a metric is undefined: on
    these data, label l0's ranking metrics (it has no positive text), nowhere else. Accepting
    None for every metric would let a metric that stopped being computed pass."""
    targets, probs, names = make_data(seed=3)
    m = compute_metrics(targets, probs, 0.5, names)
    assert PRIMARY_METRICS
    for key in PRIMARY_METRICS:
        assert type(m[key]) is float, (key, m[key])  # all of them defined on these data
    values = dict(leaves(m))
    assert sorted(p for p, v in values.items() if v is None) == [
        "per_label.l0.ap",
        "per_label.l0.roc_auc",
    ]
    for path, value in values.items():
        assert value is None or type(value) in (float, int, str), (path, type(value))
    assert type(m["per_label"]["l1"]["support"]) is int


@pytest.mark.parametrize(
    "change",
    [
        lambda t, p, th, n: (t, p[:, :-1], th, n),
        lambda t, p, th, n: (t[:-1], p, th, n),
        lambda t, p, th, n: (t, p, np.full(3, 0.5), n),
        lambda t, p, th, n: (t, p, th, n[:-1]),
        lambda t, p, th, n: (t.ravel(), p.ravel(), th, n),
        lambda t, p, th, n: (t * 2, p, th, n),
        lambda t, p, th, n: (t[:0], p[:0], th, n),
    ],
)
def test_bad_inputs_raise(change):
    targets, probs, names = make_data(seed=4)
    with pytest.raises(MultihotError):
        compute_metrics(*change(targets, probs, 0.5, names))


def test_decisions_shape_mismatch_raises():
    targets, probs, names = make_data(seed=5)
    with pytest.raises(MultihotError, match="decisions shape"):
        compute_metrics(targets, probs, 0.5, names, decisions=np.zeros((2, 2), dtype=bool))


def test_metric_is_better():
    assert metric_is_better("macro_f1", 0.8, 0.7)
    assert not metric_is_better("macro_f1", 0.7, 0.7)
    assert metric_is_better("hamming_loss", 0.1, 0.2)
    assert not metric_is_better("hamming_loss", 0.3, 0.2)
    assert metric_is_better("macro_roc_auc", 0.5, None)
    assert metric_is_better("hamming_loss", 0.5, None)
    assert not metric_is_better("macro_roc_auc", None, 0.5)
    assert not metric_is_better("macro_roc_auc", None, None)
    with pytest.raises(ConfigError):
        metric_is_better("num_texts", 1, 0)


def test_length_buckets_without_positives_have_no_macro_f1():
    """Regression: a length bucket where no label had a positive crashed (float(None)) instead
    of giving macro F1 None; a 2-fold ``multihot cv --long-text chunk`` met one."""
    from multihot.scoring.metrics import length_buckets

    targets = np.array([[1, 0], [0, 0], [0, 0]])
    decisions = np.array([[1, 0], [1, 0], [0, 0]])
    buckets = length_buckets([10, 40, 50], targets, decisions, window=16, read=32)
    assert [b["tokens"] for b in buckets] == ["1-16", "33-64"]
    assert buckets[0]["macro_f1"] == 1.0 and buckets[1]["macro_f1"] is None
    assert buckets[1]["micro_f1"] == 0.0 and buckets[1]["cut_texts"] == 2
    assert buckets[1]["subset_accuracy"] == 0.5
