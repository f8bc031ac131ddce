"""``multihot audit`` on partially labelled data: an unknown pair is never an issue, the label
health and the data checks count the known examples, the out-of-fold file keeps the mask, and
the cleaned copy keeps ``labels_known``.

The crafted data: texts whose labels their keywords give away; the first half labelled for
sports and music only, the second for food and travel only, with a few known pairs flipped on
purpose. Read as "no", the unknown pairs whose keyword is there would be "missing labels"."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import multihot
from helpers import invoke, read_jsonl
from multihot.artifacts import cvdir
from multihot.core.errors import DataError, MultihotError
from multihot.data.labels import KNOWN_COL, LabelSet
from multihot.data.readers import Dataset, read_dataset
from multihot.quality.checks import (
    cardinality,
    conflicting_duplicates,
    label_pairs,
    leakage,
    rare_labels,
    split_labels,
)
from multihot.quality.cleaning import write_cleaned
from multihot.quality.findings import LabelIssue
from multihot.quality.label_issues import RANKINGS, flagged_pairs, label_health, pair_scores
from multihot.report.audit import save_audit
from multihot.tuning.cv import read_out_of_fold

KEYWORDS = {"sports": "goal", "music": "guitar", "food": "pasta", "travel": "airport"}
NAMES = list(KEYWORDS)
FILLER = ["the", "a", "of", "today", "really", "some", "quite", "very", "it", "was", "and"]


def partial_data(path, n=400, missing=8, wrong=4, seed=0, partial=True):
    """Write the crafted data (with ``labels_known`` unless ``partial`` is False, which reads
    every unknown pair as "no"): (path, known mask, the flipped (row, label) pairs)."""
    rng = np.random.default_rng(seed)
    truth = rng.random((n, len(NAMES))) < 0.3
    texts = []
    for i in range(n):
        words = list(rng.choice(FILLER, size=8))
        words += [KEYWORDS[NAMES[j]] for j in np.flatnonzero(truth[i])]
        rng.shuffle(words)
        texts.append(f"{i} " + " ".join(words))
    known = np.zeros(truth.shape, dtype=bool)
    known[: n // 2, :2] = True
    known[n // 2 :, 2:] = True
    given = truth & known
    pos, neg = np.argwhere(given), np.argwhere(known & ~given)
    dropped = pos[rng.choice(len(pos), missing, replace=False)]
    added = neg[rng.choice(len(neg), wrong, replace=False)]
    given[dropped[:, 0], dropped[:, 1]] = False
    given[added[:, 0], added[:, 1]] = True
    with open(path, "w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            record = {"text": text, "labels": [NAMES[j] for j in np.flatnonzero(given[i])]}
            if partial:
                record[KNOWN_COL] = [NAMES[j] for j in np.flatnonzero(known[i])]
            fh.write(json.dumps(record) + "\n")
    flipped = {(int(r), NAMES[c]) for r, c in np.concatenate([dropped, added])}
    return path, known, flipped


def unknown_issues(issues, known) -> list[tuple[int, str]]:
    return [(i.row, i.label) for i in issues if not known[i.row, NAMES.index(i.label)]]


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The crafted data, its known mask and flipped pairs, and its audit (baseline, 3 folds)."""
    path, known, flipped = partial_data(tmp_path_factory.mktemp("partial") / "data.jsonl")
    return path, known, flipped, multihot.audit(path, folds=3)


# ------------------------------------------------------------------------------ label issues
def test_no_issue_on_an_unknown_pair(audited, tmp_path):
    path, known, flipped, result = audited
    assert result.issues and unknown_issues(result.issues, known) == []
    found = {(i.row, i.label) for i in result.issues}
    assert len(found & flipped) >= 0.5 * len(flipped)  # the planted flips are still found
    # The same data with the unknown pairs read as "no": many of them become "missing" issues.
    naive, _, _ = partial_data(tmp_path / "naive.jsonl", partial=False)
    naive_result = multihot.audit(naive, folds=3)
    assert len(unknown_issues(naive_result.issues, known)) >= 20


def test_health_counts_the_known_texts(audited, tmp_path):
    path, known, _, result = audited
    by_label = {h.label: h for h in result.health}
    for j, name in enumerate(NAMES):
        assert by_label[name].known == int(known[:, j].sum())
        assert by_label[name].to_dict()["known"] == by_label[name].known
        assert by_label[name].positives <= by_label[name].known
        assert 0 <= by_label[name].health <= 1
    summary = result.summary()
    assert summary["partial"] == {"texts": len(known), "unknown_pairs": int((~known).sum())}
    assert all("known" in h for h in summary["health"])
    save_audit(result, tmp_path / "audit")
    tasks = json.loads((tmp_path / "audit" / "label-studio.json").read_text())
    assert tasks and all(t["data"]["labelled_for"] for t in tasks)
    assert "labelled_for" in (tmp_path / "audit" / "label-studio.xml").read_text()
    assert ">known<" in (tmp_path / "audit" / "audit.html").read_text()
    assert json.loads((tmp_path / "audit" / "summary.json").read_text())["partial"]


def test_pair_functions_leave_unknown_pairs_out():
    rng = np.random.default_rng(0)
    targets = (rng.random((60, 4)) < 0.3).astype(np.int8)
    probs = np.clip(0.8 * targets + 0.2 * rng.random(targets.shape), 0, 1)
    probs[5, 1] = 0.99  # a confident "yes" on a pair nobody labelled
    targets[5, 1] = 0
    known = np.ones(targets.shape, dtype=bool)
    known[5, 1] = False
    known[:, 2] = False
    known[:3, 2] = True  # known on three texts, all of them have it: nothing to estimate
    targets[:3, 2], targets[3:, 2] = 1, 0
    for ranking in RANKINGS:
        scores = pair_scores(targets, probs, ranking, known)
        assert scores.shape == targets.shape and (scores[~known] == 0).all()
    assert not flagged_pairs(targets, probs, known)[~known].any()
    health, overall = label_health(targets, probs, NAMES, [], known)
    assert {h.label: h.known for h in health} == dict(zip(NAMES, [60, 59, 3, 60], strict=True))
    assert 0 <= overall <= 1
    # An all-known mask is the same as none.
    every = np.ones(targets.shape, dtype=bool)
    assert np.array_equal(flagged_pairs(targets, probs, every), flagged_pairs(targets, probs))
    assert np.array_equal(pair_scores(targets, probs, known=every), pair_scores(targets, probs))


# -------------------------------------------------------------------------------- data checks
def test_checks_count_known_examples():
    # "a" is labelled on the first ten texts only, "b" on the last ten: read as "no", a and b
    # would never come together against the odds, and "c", with "a" on every text labelled
    # for both, would not always come with it.
    a_rows = [["a", "c"]] * 6 + [[]] * 4
    b_rows = [["b", "c"]] * 6 + [["c"]] * 4
    data = Dataset(
        [f"text {i}" for i in range(20)],
        a_rows + b_rows,
        "d.jsonl",
        known=[["a", "c"]] * 10 + [["b", "c"]] * 10,
    )
    pairs = label_pairs(data, min_expected=1.5)
    assert [(e["kind"], e["labels"], e["known"]) for e in pairs.examples] == [
        ("always", ["a", "c"], 10)
    ]
    assert "labelled for both" in pairs.message
    full = Dataset(data.texts, data.labels, "d.jsonl")  # the unknown pairs read as "no"
    assert {e["kind"] for e in label_pairs(full, min_expected=1.5).examples} == {"never"}

    rare = rare_labels(data, min_support=8, val_fraction=0.5)
    support = rare.details["support"]
    assert support["a"] == {"data": 6, "val": 3.0, "data_known": 10}
    assert support["c"]["data_known"] == 20
    assert "of 10 known" in rare.message

    counted = cardinality(data)
    assert counted.details["partial"] == 20 and counted.details["labelled_for_none"] == 0
    assert counted.count == 4 and "labelled for some labels only" in counted.message
    assert counted.examples[0][KNOWN_COL] == ["a", "c"]
    nothing = Dataset(["x", "y"], [[], ["a"]], "n.jsonl", known=[[], None])
    assert cardinality(nothing).details["labelled_for_none"] == 1
    assert cardinality(nothing).count == 0  # "x" is labelled for no label: it teaches nothing

    val = Dataset(["v1", "v2"], [["a"], []], "v.jsonl", known=[["a"], ["a"]])
    split = split_labels(data, val)
    assert {e["label"]: (e["data_known"], e["val_known"]) for e in split.examples} == {
        "b": (10, 0),
        "c": (20, 0),
    }


def test_copies_labelled_for_other_labels_do_not_conflict():
    texts = ["so happy", "So happy!", "so happy", "ugh", "ugh"]
    labels = [["joy"], ["anger"], [], ["anger"], []]
    known = [["joy"], ["anger"], None, ["anger"], ["anger"]]
    data = Dataset(texts, labels, "d.jsonl", known=known)
    found = conflicting_duplicates(data)
    # rows 1 (near) and 2 (exact) share no known label with row 0 that they disagree on, but
    # row 2 (fully labelled, no joy) disagrees with row 0 on joy; row 4 disagrees on anger
    assert sorted((e["kind"], e["row"]) for e in found.examples) == [("exact", 2), ("exact", 4)]
    assert found.examples[0]["other_labels_known"] == ["joy"]
    val = Dataset(["So happy", "UGH"], [["anger"], []], "v.jsonl", known=[["anger"], None])
    assert leakage(data, val).details["with_other_labels"] == 1  # "ugh": anger known in both


# ------------------------------------------------------------------------------ out-of-fold
def test_oof_file_round_trip_keeps_the_mask(tmp_path):
    labels = LabelSet(["joy", "anger"])
    targets = np.array([[1, 0], [0, 0], [0, 1]], dtype=np.int8)
    probs = np.array([[0.9, 0.2], [0.1, 0.3], [0.4, 0.8]], dtype=np.float32)
    known = np.array([[True, False], [True, True], [False, True]])
    fold = np.array([0, 1, 0])
    cvdir.write_oof(tmp_path, ["a", "b", "c"], targets, fold, probs, labels, known)
    records = read_jsonl(tmp_path / cvdir.OOF)
    assert [r.get(KNOWN_COL) for r in records] == [["joy"], None, ["anger"]]
    read_probs, read_known = cvdir.read_oof_probs(tmp_path, labels)
    assert np.array_equal(read_probs, probs) and np.array_equal(read_known, known)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(cvdir.read_oof(tmp_path, labels), (fold, targets, probs), strict=True)
    )
    cvdir.write_oof(tmp_path, ["a", "b", "c"], targets, fold, probs, labels)  # fully labelled
    assert all(KNOWN_COL not in r for r in read_jsonl(tmp_path / cvdir.OOF))
    assert cvdir.read_oof_probs(tmp_path, labels)[1] is None


def test_an_audit_of_a_finished_cv_gets_the_mask_back(audited, tmp_path):
    path, known, _, result = audited
    multihot.cross_validate(path, folds=3, baseline=True, output=tmp_path / "cv")
    data = read_dataset(path)
    oof = read_out_of_fold(tmp_path / "cv", data)
    assert np.array_equal(oof.known, known[:, [NAMES.index(n) for n in oof.labels.names]])
    again = multihot.audit(path, cv_dir=tmp_path / "cv")
    assert [(i.row, i.label) for i in again.issues] == [(i.row, i.label) for i in result.issues]
    assert unknown_issues(again.issues, known) == []
    # An oof.jsonl whose mask is not the data's is refused.
    lines = (tmp_path / "cv" / cvdir.OOF).read_text().splitlines()
    record = json.loads(lines[0])
    record[KNOWN_COL] = NAMES
    lines[0] = json.dumps(record)
    (tmp_path / "cv" / cvdir.OOF).write_text("\n".join(lines) + "\n")
    with pytest.raises(MultihotError, match="other known labels"):
        read_out_of_fold(tmp_path / "cv", data)


# ---------------------------------------------------------------------------- cleaned copy
def test_the_cleaned_copy_keeps_labels_known(audited, tmp_path):
    path, known, _, result = audited
    original = read_dataset(path)
    flipped = write_cleaned(path, tmp_path / "flipped.jsonl", result.issues, fix="flip")
    assert flipped["labels_flipped"] == len(result.issues)
    cleaned = read_dataset(tmp_path / "flipped.jsonl")
    assert cleaned.known == original.known  # every flipped pair was known and stays known
    changed = {
        (row, name)
        for row, (a, b) in enumerate(zip(original.labels, cleaned.labels, strict=True))
        for name in set(a) ^ set(b)
    }
    assert changed == {(i.row, i.label) for i in result.issues}
    write_cleaned(path, tmp_path / "dropped.csv", result.issues, fix="drop")
    dropped = read_dataset(tmp_path / "dropped.csv")
    kept = sorted(set(range(len(original))) - {i.row for i in result.issues})
    assert dropped.known == original.subset(kept).known


def test_zero_one_columns_keep_their_empty_cells(tmp_path):
    path = tmp_path / "data.csv"
    rows = [["text", "joy", "anger"], ["so happy", "1", ""], ["ugh", "", "1"], ["meh", "0", "0"]]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    data = read_dataset(path, label_cols=["joy", "anger"])
    assert data.known == [["joy"], ["anger"], None]
    issue = LabelIssue(2, "joy", 0, 0.9, 0.95, 0.5, "meh")
    write_cleaned(path, tmp_path / "out.csv", [issue], fix="flip", label_cols=["joy", "anger"])
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == rows[:3] + [["meh", "1", "0"]]
    on_unknown = LabelIssue(0, "anger", 0, 0.9, 0.95, 0.5, "so happy")
    with pytest.raises(DataError, match="not labelled for that label"):
        write_cleaned(
            path, tmp_path / "bad.csv", [on_unknown], fix="flip", label_cols=["joy", "anger"]
        )


def test_cli_audit_writes_a_cleaned_copy_with_labels_known(audited, tmp_path):
    path, known, _, _ = audited
    cleaned = tmp_path / "cleaned.jsonl"
    result = invoke(
        "audit", path, "--folds", 3, "-o", tmp_path / "audit", "--write-cleaned", cleaned
    )
    assert result.exit_code == 0, result.output
    assert "known" in result.stdout  # the worst labels' positives "of N known"
    before, after = read_jsonl(path), read_jsonl(cleaned)
    assert [r[KNOWN_COL] for r in after] == [r[KNOWN_COL] for r in before]
    for row_before, row_after in zip(before, after, strict=True):
        assert set(row_after["labels"]) <= set(row_after[KNOWN_COL])
        assert set(row_before["labels"]) ^ set(row_after["labels"]) <= set(row_after[KNOWN_COL])
