"""``multihot.audit``: labels flipped on purpose are found through the whole path (data, the
baseline's cross-validation, cleanlab), the audit directory is written, and a finished ``multihot
cv`` is reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import multihot
from helpers import write_jsonl
from multihot.artifacts.auditdir import read_issues, read_summary
from multihot.core.config import BASELINE_KIND
from multihot.core.errors import MultihotError

KEYWORDS = {"sports": "goal", "music": "guitar", "food": "pasta", "travel": "airport"}
FILLER = [
    "the",
    "a",
    "of",
    "today",
    "really",
    "some",
    "quite",
    "very",
    "it",
    "was",
    "and",
    "then",
    "we",
    "saw",
]


def planted_data(path, n=600, missing=15, wrong=6, seed=0):
    """Texts whose labels their keywords give away, with ``missing`` positives dropped and
    ``wrong`` negatives added on purpose: (path, the flipped (row, label) pairs)."""
    rng = np.random.default_rng(seed)
    names = list(KEYWORDS)
    truth = rng.random((n, len(names))) < 0.3
    texts = []
    for i in range(n):
        words = list(rng.choice(FILLER, size=8))
        words += [KEYWORDS[names[j]] for j in np.flatnonzero(truth[i])]
        rng.shuffle(words)
        texts.append(f"{i} " + " ".join(words))
    given = truth.copy()
    pos, neg = np.argwhere(truth), np.argwhere(~truth)
    dropped = pos[rng.choice(len(pos), missing, replace=False)]
    added = neg[rng.choice(len(neg), wrong, replace=False)]
    given[dropped[:, 0], dropped[:, 1]] = False
    given[added[:, 0], added[:, 1]] = True
    labels = [[names[j] for j in np.flatnonzero(row)] for row in given]
    flipped = {(int(r), names[c]) for r, c in np.concatenate([dropped, added])}
    return write_jsonl(path, texts, labels), flipped


def test_flipped_labels_rank_first(tmp_path):
    data, flipped = planted_data(tmp_path / "planted.jsonl")
    result = multihot.audit(data, output=tmp_path / "audit", folds=3)
    # cleanlab flags 15 pairs here, 14 of them planted (its confident learning is cautious);
    # the ranking of every pair puts 20 of the 21 planted in its top 21
    found = {(issue.row, issue.label) for issue in result.issues}
    assert len(found & flipped) >= 0.9 * len(found) and len(found & flipped) >= 0.5 * len(flipped)
    kinds = {(i.row, i.label): i.kind for i in result.issues}
    assert {kinds[p] for p in flipped if p in kinds} == {"missing", "wrong"}
    assert result.oof["model"] == BASELINE_KIND and result.oof["folds"] == 3
    written = read_issues(tmp_path / "audit")
    assert written == [issue.to_dict() for issue in result.issues]
    summary = read_summary(tmp_path / "audit")
    assert summary["issues"]["total"] == len(result.issues)
    assert [f["check"] for f in summary["findings"]] == [f.check for f in result.findings]
    page = (tmp_path / "audit" / "audit.html").read_text()
    assert result.issues[0].text in page


def test_a_finished_cv_is_reused(tmp_path):
    data, _ = planted_data(tmp_path / "planted.jsonl", n=300)
    cv = multihot.cross_validate(data, folds=3, baseline=True, output=tmp_path / "cv")
    raw = multihot.audit(data, cv_dir=tmp_path / "cv", calibrate=False)
    assert raw.oof["macro_f1"] == pytest.approx(cv.oof_metrics["macro_f1"])
    result = multihot.audit(data, cv_dir=tmp_path / "cv")
    assert result.oof["calibrated"] and not raw.oof["calibrated"]
    again = multihot.audit(data, folds=3)
    assert [(i.row, i.label) for i in result.issues] == [(i.row, i.label) for i in again.issues]


def test_a_cv_of_other_data_is_refused(tmp_path):
    data, _ = planted_data(tmp_path / "planted.jsonl", n=300)
    other, _ = planted_data(tmp_path / "other.jsonl", n=300, seed=1)
    multihot.cross_validate(other, folds=3, baseline=True, output=tmp_path / "cv")
    with pytest.raises(MultihotError, match="other data"):
        multihot.audit(data, cv_dir=tmp_path / "cv")


def test_ids_name_the_rows(tmp_path):
    data, _ = planted_data(tmp_path / "planted.jsonl", n=300)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    with_ids = tmp_path / "ids.jsonl"
    with_ids.write_text(
        "".join(json.dumps({"id": f"c{i}", **r}) + "\n" for i, r in enumerate(rows))
    )
    result = multihot.audit(with_ids, folds=3)
    assert result.issues and all(i.id == f"c{i.row}" for i in result.issues)


def test_checks_only_runs_no_cross_validation(tmp_path):
    data, _ = planted_data(tmp_path / "planted.jsonl", n=100)
    result = multihot.audit(data, issues=False, output=tmp_path / "audit")
    assert result.issues == [] and result.oof == {} and result.findings
    assert read_issues(tmp_path / "audit") == []
