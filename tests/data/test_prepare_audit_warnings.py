"""The data checks that cost seconds, said where training data are prepared: a label with training
examples and none in validation, copies of a text with other labels, validation texts also in
training. One warning line each, with the count and the first case, pointing to
``multihot audit``."""

from __future__ import annotations

import logging

import numpy as np

from multihot.core.config import RunConfig
from multihot.data.duplicates import AUDIT_POINTER, find_shared, reported
from multihot.data.prepare import absent_labels, prepare_data
from multihot.data.readers import Dataset


def warnings_of(caplog, train: Dataset, val: Dataset | None) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="multihot"):
        prepare_data(train, val, RunConfig())
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def about(warnings: list[str], phrase: str) -> str:
    (line,) = [w for w in warnings if phrase in w]
    assert "\n" not in line and line.endswith(AUDIT_POINTER)
    assert "multihot audit" in line
    return line


def distinct(n: int = 40, source: str = "t.jsonl", offset: int = 0) -> Dataset:
    names = ["joy", "anger", "calm"]
    texts = [f"text number {i + offset}" for i in range(n)]
    return Dataset(texts, [[names[i % 3]] for i in range(n)], source)


def test_absent_labels_most_examples_first():
    targets = np.array([[1, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 0]])
    other = np.array([[1, 0, 0, 0]])
    assert absent_labels(["joy", "anger", "calm", "fear"], targets, other) == [
        ("anger", 3),
        ("fear", 2),
    ]
    assert absent_labels(["joy", "anger"], np.ones((2, 2)), np.ones((1, 2))) == []


def test_labels_missing_from_the_validation_file_are_one_line(caplog):
    train = distinct()
    train.labels[4] = ["grief"]
    train.labels[9] = ["grief", "joy"]
    train.labels[10] = ["fear"]
    val = Dataset(["a", "b"], [["joy"], ["anger", "calm"]], "v.jsonl")
    line = about(warnings_of(caplog, train, val), "none in validation")
    assert line.startswith("v.jsonl: 2 of 5 labels have training examples but none in validation")
    assert "(first: 'grief', 2 in training)" in line
    assert "validation F1 is 0" in line


def test_labels_missing_from_the_hold_out_are_one_line(caplog):
    train = distinct()
    train.labels[5] = ["joy", "grief"]
    train.labels[7] = ["anger", "grief"]
    line = about(warnings_of(caplog, train, None), "none in validation")
    assert line.startswith("t.jsonl (held out for validation): 1 of 4 labels")
    assert "'grief', 2 in training" in line


def test_copies_with_other_labels_name_the_first_pair(caplog):
    train = Dataset(
        ["so happy", "ugh", "meh", "So  happy", "UGH", "ugh"],
        [["joy"], ["anger"], [], ["anger", "joy"], ["anger"], []],
        "t.jsonl",
    )
    line = about(warnings_of(caplog, train, train), "repeat an earlier one")
    assert line.startswith("t.jsonl: 3 of 6 texts repeat an earlier one")
    assert "2 of them with other labels" in line
    # Rows from 1, as the readers' errors count them; row 5 copies row 2 with its labels.
    assert "(first: row 4 'So  happy' has [anger, joy], row 1 has [joy])" in line
    assert "every split keeps the copies of a text together" in line


def test_copies_with_their_labels_are_no_warning(caplog):
    train = Dataset(["so happy", "So happy", "ugh"], [["joy"], ["joy"], []], "t.jsonl")
    val = Dataset(["fine"], [["joy"]], "v.jsonl")
    assert warnings_of(caplog, train, val) == []
    assert "1 of 3 texts repeat an earlier one" in caplog.text  # said, as info
    assert "0 of them with other labels" in caplog.text and AUDIT_POINTER not in caplog.text


def test_validation_texts_in_training_name_the_first(caplog):
    train = distinct(10)
    val = Dataset(
        ["new one", "Text  number 3", "text number 7"], [["joy"], ["joy"], ["anger"]], "v.jsonl"
    )
    line = about(warnings_of(caplog, train, val), "also in the training data")
    assert line.startswith("v.jsonl: 2 of 3 validation texts are also in the training data")
    assert "first: row 2 'Text  number 3', training row 4" in line
    assert "the validation scores flatter the model" in line
    assert find_shared(train.texts, val.texts) == [(1, 3), (2, 7)]


def test_clean_data_say_nothing(caplog):
    assert warnings_of(caplog, distinct(), distinct(9, "v.jsonl", offset=40)) == []


def test_within_reported_the_warnings_are_left_to_the_caller(caplog):
    train = Dataset(["so happy", "So happy", "ugh", "x"], [["joy"], ["anger"], [], ["calm"]], "t")
    val = Dataset(["so happy"], [["joy"]], "v.jsonl")
    assert len(warnings_of(caplog, train, val)) == 3
    with reported():
        assert warnings_of(caplog, train, val) == []
