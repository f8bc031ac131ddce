"""Co-occurrence and the confusion between labels, against counting text by text."""

from __future__ import annotations

import numpy as np

from multihot.report.pairs import cooccurrence, false_fires


def random_labels(seed=0, n=150, labels=4):
    rng = np.random.default_rng(seed)
    targets = rng.random((n, labels)) < [0.5, 0.3, 0.2, 0.1]
    decisions = (rng.random((n, labels)) < 0.25) | targets & (rng.random((n, labels)) < 0.8)
    return targets.astype(int), decisions


def test_cooccurrence_is_the_share_of_texts_with_i_that_also_have_j():
    targets, _ = random_labels()
    matrix = cooccurrence(targets)
    for i in range(4):
        with_i = targets[:, i] == 1
        for j in range(4):
            assert np.isclose(matrix[i, j], targets[with_i, j].mean())
    assert np.allclose(np.diag(matrix), 1.0)


def test_a_label_that_never_occurs_has_an_undefined_row():
    targets = np.array([[1, 0], [1, 0]])
    matrix = cooccurrence(targets)
    assert matrix[0].tolist() == [1.0, 0.0] and np.isnan(matrix[1]).all()


def test_false_fires_count_j_firing_wrongly_on_texts_of_i():
    targets, decisions = random_labels(1)
    matrix = false_fires(targets, decisions)
    for i in range(4):
        for j in range(4):
            texts = [k for k in range(len(targets)) if targets[k, i] and not targets[k, j]]
            if not texts:
                assert np.isnan(matrix[i, j])
            else:
                assert np.isclose(matrix[i, j], np.mean([decisions[k, j] for k in texts]))
    assert np.isnan(np.diag(matrix)).all()
