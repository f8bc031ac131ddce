"""Copies of a text: found after whitespace and case normalisation, counted, kept on one side of
the hold-out, and said where training data are prepared."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from multihot.core.config import RunConfig
from multihot.data.duplicates import (
    count_shared,
    find_duplicates,
    normalize_text,
    reported,
    same_labels,
)
from multihot.data.prepare import prepare_data
from multihot.data.readers import Dataset


@pytest.mark.parametrize(
    ("a", "b"),
    [("thank you", "  Thank\tyou \n"), ("so happy", "SO  HAPPY"), ("ß", "ss"), ("a\u00a0b", "a b")],
)
def test_texts_that_differ_in_whitespace_or_case_are_one_text(a, b):
    assert normalize_text(a) == normalize_text(b)


@pytest.mark.parametrize(("a", "b"), [("so happy", "so happy!"), ("thank you", "thankyou")])
def test_texts_that_differ_otherwise_are_two(a, b):
    assert normalize_text(a) != normalize_text(b)


def test_find_duplicates_groups_by_first_row_and_counts_repeats_with_other_labels():
    texts = ["hi", "bye", "Hi ", "hi", "BYE", "new"]
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [0, 1], [1, 1]])
    dups = find_duplicates(texts, targets)
    assert dups.groups.tolist() == [0, 1, 0, 0, 1, 2]
    assert dups.repeats == 3  # rows 2, 3, 4
    assert dups.conflicting == 1  # row 3: "hi" labelled unlike row 0
    distinct = find_duplicates(["a", "b"], np.eye(2))
    assert distinct.groups.tolist() == [0, 1] and distinct.repeats == distinct.conflicting == 0


def test_count_shared():
    assert count_shared(["so happy", "ugh"], ["So  happy", "meh", "UGH", "so happy"]) == 3
    assert count_shared(["a"], ["b"]) == 0


def repeated(texts: int = 20, times: int = 5) -> Dataset:
    names = ["joy", "anger", "calm"]
    return Dataset(
        [f"text number {i}" for i in range(texts)] * times,
        [[names[i % 3]] for i in range(texts)] * times,
        source="rep.jsonl",
    )


def test_training_data_say_how_many_texts_repeat_and_the_hold_out_keeps_copies_together(caplog):
    data = repeated()
    with caplog.at_level(logging.INFO, logger="multihot"):
        prepared = prepare_data(data, None, RunConfig())
    assert "rep.jsonl: 80 of 100 texts repeat an earlier one" in caplog.text
    assert "0 of them with other labels" in caplog.text
    assert not set(prepared.train.texts) & set(prepared.val.texts)
    assert len(prepared.val) % 5 == 0 and len(prepared.val) > 0


def test_copies_with_other_labels_and_validation_texts_in_training_are_warnings(caplog):
    train = Dataset(["so happy", "So happy", "ugh", "meh"], [["joy"], ["anger"], [], []], "t.jsonl")
    val = Dataset(["so  HAPPY", "fine", "ugh"], [["joy"], [], []], source="v.jsonl")
    with caplog.at_level(logging.INFO, logger="multihot"):
        prepare_data(train, val, RunConfig())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("t.jsonl: 1 of 4 texts repeat an earlier one" in m for m in warnings)
    assert any("1 of them with other labels" in m for m in warnings)
    assert any(
        "v.jsonl: 2 of 3 validation texts are also in the training data" in m for m in warnings
    )
    caplog.clear()
    with reported(), caplog.at_level(logging.INFO, logger="multihot"):
        prepare_data(train, val, RunConfig())
    assert "repeat" not in caplog.text and "also in the training data" not in caplog.text


def test_copies_labelled_for_other_labels_conflict_only_on_labels_known_in_both():
    texts = ["hi", "Hi", "hi", "bye", "bye"]
    targets = np.array([[1, 0], [0, 1], [0, 0], [1, 0], [0, 0]])
    known = np.array([[True, False], [False, True], [True, True], [True, True], [False, True]])
    dups = find_duplicates(texts, targets, known=known)
    # row 1: labelled for the other label than row 0, so no disagreement; row 2: fully
    # labelled, says no to row 0's known yes; row 4: agrees with row 3 on the label both know
    assert dups.repeats == 3 and dups.conflicts.tolist() == [2]
    assert find_duplicates(texts, targets).conflicts.tolist() == [1, 2, 4]  # unknown read as no
    assert same_labels(["joy"], [], ["joy"], ["anger"])
    assert not same_labels(["joy"], [], None, ["joy", "anger"])


def test_copies_with_disjoint_known_labels_are_not_a_warning(caplog):
    train = Dataset(
        ["so happy", "So happy", "ugh", "meh"],
        [["joy"], ["anger"], [], []],
        "t.jsonl",
        known=[["joy"], ["anger"], None, None],
    )
    with caplog.at_level(logging.INFO, logger="multihot"):
        prepare_data(train, None, RunConfig())
    assert "t.jsonl: 1 of 4 texts repeat an earlier one" in caplog.text
    assert "0 of them with other labels" in caplog.text
