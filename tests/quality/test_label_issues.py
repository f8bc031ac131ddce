"""Label issues from out-of-fold probabilities: planted flips are found, ranked first, and each
label's health reflects them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from multihot.quality.label_issues import (
    RANKINGS,
    find_label_issues,
    flagged_pairs,
    label_health,
    pair_scores,
)

NAMES = ["joy", "anger", "fear", "love", "grief"]
RATES = np.array([0.3, 0.15, 0.08, 0.2, 0.04])


def planted(seed: int = 0, n: int = 2000, missing: int = 40, wrong: int = 20):
    """True labels, probabilities of a decent model of them, and the labels with ``missing``
    positives set to 0 and ``wrong`` negatives set to 1."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, len(NAMES))) < RATES).astype(np.int8)
    logits = np.where(truth == 1, 2.5, -2.5) + rng.normal(0, 1.0, truth.shape)
    probs = 1 / (1 + np.exp(-logits))
    given = truth.copy()
    pos, neg = np.argwhere(truth == 1), np.argwhere(truth == 0)
    dropped = pos[rng.choice(len(pos), missing, replace=False)]
    added = neg[rng.choice(len(neg), wrong, replace=False)]
    given[dropped[:, 0], dropped[:, 1]] = 0
    given[added[:, 0], added[:, 1]] = 1
    flipped = np.zeros_like(given)
    flipped[dropped[:, 0], dropped[:, 1]] = 1
    flipped[added[:, 0], added[:, 1]] = 1
    return given, probs, flipped


def test_planted_flips_are_found_and_ranked_first():
    given, probs, flipped = planted()
    texts = [f"text {i}" for i in range(len(given))]
    issues = find_label_issues(given, probs, np.full(len(NAMES), 0.5), NAMES, texts)
    truth = {(int(r), NAMES[c]) for r, c in np.argwhere(flipped == 1)}
    found = [(i.row, i.label) in truth for i in issues]
    k = len(truth)
    assert sum(found[:k]) / k >= 0.8  # precision at k
    assert sum(found) / k >= 0.8  # recall over everything flagged (52 of 60 here)
    assert [i.score for i in issues] == sorted((i.score for i in issues), reverse=True)
    kinds = {(i.row, i.label): i.kind for i in issues}
    for r, c in np.argwhere(flipped == 1):
        if (int(r), NAMES[c]) in kinds:
            assert kinds[(int(r), NAMES[c])] == ("missing" if given[r, c] == 0 else "wrong")


def test_issue_records_carry_the_pair():
    given, probs, _ = planted(seed=1)
    texts = [f"text {i}" for i in range(len(given))]
    ids = [f"id-{i}" for i in range(len(given))]
    thresholds = np.linspace(0.3, 0.7, len(NAMES))
    issue = find_label_issues(given, probs, thresholds, NAMES, texts, ids)[0]
    j = NAMES.index(issue.label)
    assert issue.text == texts[issue.row] and issue.id == ids[issue.row]
    assert issue.given == given[issue.row, j]
    assert issue.probability == pytest.approx(probs[issue.row, j], abs=1e-6)
    assert issue.threshold == pytest.approx(thresholds[j])
    record = issue.to_dict()
    assert list(record)[:4] == ["row", "label", "given", "kind"] and list(record)[-1] == "text"


@pytest.mark.parametrize("ranking", RANKINGS)
def test_every_ranking_separates_the_flipped_pairs(ranking):
    given, probs, flipped = planted(seed=2)
    scores = pair_scores(given, probs, ranking)
    assert scores.shape == given.shape and scores.min() >= 0 and scores.max() <= 1
    assert roc_auc_score(flipped.ravel(), scores.ravel()) > 0.95


def test_clean_labels_flag_little():
    rng = np.random.default_rng(3)
    given = (rng.random((1000, 3)) < 0.3).astype(np.int8)
    probs = np.where(given == 1, 0.97, 0.03)
    assert flagged_pairs(given, probs).sum() == 0


def test_health_names_every_label_worst_first():
    given, probs, _ = planted(seed=4)
    texts = [f"t{i}" for i in range(len(given))]
    issues = find_label_issues(given, probs, np.full(len(NAMES), 0.5), NAMES, texts)
    health, overall = label_health(given, probs, NAMES, issues)
    assert sorted(h.label for h in health) == sorted(NAMES)
    assert [h.health for h in health] == sorted(h.health for h in health)
    assert 0 <= overall <= 1
    by_label = {h.label: h for h in health}
    for name in NAMES:
        assert by_label[name].positives == int(given[:, NAMES.index(name)].sum())
        assert by_label[name].missing == sum(
            i.label == name and i.kind == "missing" for i in issues
        )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ"):
        pair_scores(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="0/1"):
        pair_scores(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        pair_scores(np.zeros((2, 2)), np.full((2, 2), 1.5))


def test_health_shares_are_per_given_label_not_per_row():
    """cleanlab divides its estimated counts by every row; the shares reported are per text given
    the label (noise) and per text without it (missing rate), so a rare label's noise is not
    shrunk by the size of the data."""
    rng = np.random.default_rng(5)
    given = np.zeros((2000, 2), dtype=np.int8)
    given[:40, 0] = 1  # a rare label: 40 positives, 10 of them contradicted by the model
    given[:1000, 1] = 1
    probs = np.where(given == 1, 0.95, 0.05) + rng.uniform(-0.02, 0.02, given.shape)
    probs[:10, 0] = 0.02
    from cleanlab.multilabel_classification.dataset import rank_classes_by_multilabel_quality

    table = rank_classes_by_multilabel_quality(
        [np.flatnonzero(r).tolist() for r in given], probs, class_names=[0, 1]
    ).set_index("Class Name")
    health = {h.label: h for h in label_health(given, probs, ["rare", "common"], [])[0]}
    rare = health["rare"]
    expected = table.loc[0, "Label Noise"] * len(given) / 40
    assert rare.noise == pytest.approx(expected, abs=1e-5) and rare.noise > 0.1
    assert rare.health == pytest.approx(1 - rare.noise, abs=1e-5)
    assert rare.missing_rate == pytest.approx(
        table.loc[0, "Inverse Label Noise"] * len(given) / 1960, abs=1e-5
    )
