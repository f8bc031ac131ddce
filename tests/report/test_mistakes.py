"""Each label's worst mistakes: the most confident false positives, the least confident false
negatives, worst first, ties in row order."""

from __future__ import annotations

import numpy as np

from multihot.report.mistakes import worst_mistakes


def test_the_worst_of_each_kind_come_first_and_at_most_k():
    targets = np.array([[0, 1], [0, 1], [0, 0], [1, 1], [0, 0], [1, 0]])
    probs = np.array([[0.9, 0.1], [0.7, 0.4], [0.95, 0.6], [0.2, 0.3], [0.6, 0.2], [0.5, 0.1]])
    decisions = probs >= 0.5
    label_0, label_1 = worst_mistakes(targets, probs, decisions, k=2)
    assert label_0.false_positives.tolist() == [2, 0]  # 0.95, 0.9 (0.7 and 0.6 cut by k)
    assert label_0.num_false_positives == 4
    assert label_0.false_negatives.tolist() == [3]  # 0.2; row 5 (0.5) fired
    assert label_0.num_false_negatives == 1
    assert label_1.false_positives.tolist() == [2]
    assert label_1.false_negatives.tolist() == [0, 3]  # 0.1, 0.3 (0.4 cut by k)
    assert label_1.num_false_negatives == 3


def test_the_decisions_given_count_not_the_probabilities():
    """A top-1 fallback fires a label below its threshold: that is a mistake if it is wrong."""
    targets = np.array([[1, 0], [0, 1]])
    probs = np.array([[0.2, 0.3], [0.1, 0.05]])
    decisions = np.array([[False, True], [True, False]])  # each text's most probable label
    label_0, label_1 = worst_mistakes(targets, probs, decisions)
    assert label_0.false_positives.tolist() == [1] and label_0.false_negatives.tolist() == [0]
    assert label_1.false_positives.tolist() == [0] and label_1.false_negatives.tolist() == [1]


def test_ties_keep_the_rows_order_and_no_mistakes_give_empty_lists():
    targets = np.zeros((4, 2), dtype=int)
    targets[:, 1] = 1
    probs = np.full((4, 2), 0.7)
    label_0, label_1 = worst_mistakes(targets, probs, probs >= 0.5, k=3)
    assert label_0.false_positives.tolist() == [0, 1, 2]
    assert label_0.false_negatives.tolist() == []
    assert label_1.false_positives.tolist() == [] and label_1.false_negatives.tolist() == []


def test_random_data_matches_a_plain_sort():
    rng = np.random.default_rng(3)
    targets = rng.random((300, 4)) < 0.3
    probs = np.clip(0.4 * targets + rng.random((300, 4)) * 0.7, 0, 1)
    decisions = probs >= 0.45
    for j, found in enumerate(worst_mistakes(targets, probs, decisions, k=5)):
        fp = [i for i in range(300) if decisions[i, j] and not targets[i, j]]
        fn = [i for i in range(300) if targets[i, j] and not decisions[i, j]]
        assert found.false_positives.tolist() == sorted(fp, key=lambda i: -probs[i, j])[:5]
        assert found.false_negatives.tolist() == sorted(fn, key=lambda i: probs[i, j])[:5]
