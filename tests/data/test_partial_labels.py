"""Partial labels in the data layer: a ``labels_known`` column or empty 0/1 cells read into
``Dataset.known``, the mask over a label set, prepared data that carry it only when some pair is
unknown, and batches that carry it only then."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from multihot.core.config import RunConfig
from multihot.core.errors import DataError
from multihot.data.batching import Collator, TokenizedDataset, split_documents
from multihot.data.labels import LabelSet
from multihot.data.prepare import label_set, prepare_data
from multihot.data.readers import Dataset, read_dataset


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------ reading
def test_jsonl_labels_known_column(tmp_path):
    path = jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "a", "labels": ["joy"], "labels_known": ["joy", "anger"]},
            {"text": "b", "labels": [], "labels_known": None},  # null: every label known
            {"text": "c", "labels": []},  # absent: every label known
            {"text": "d", "labels": [], "labels_known": []},  # known for no label
            {"text": "e", "labels": ["anger"], "labels_known": "anger;fear"},  # delimited string
        ],
    )
    data = read_dataset(path)
    assert data.labels == [["joy"], [], [], [], ["anger"]]
    assert data.known == [["joy", "anger"], None, None, [], ["anger", "fear"]]
    assert data.subset([4, 1]).known == [["anger", "fear"], None]
    assert data.subset([1, 2]).known is None  # every row of the subset is fully known
    assert label_set(data).names == ["anger", "fear", "joy"]  # known names are labels too


def test_without_the_column_or_with_only_nulls_known_is_none(tmp_path):
    plain = jsonl(tmp_path / "a.jsonl", [{"text": "a", "labels": ["joy"]}])
    nulls = jsonl(tmp_path / "b.jsonl", [{"text": "a", "labels": ["joy"], "labels_known": None}])
    assert read_dataset(plain).known is None
    assert read_dataset(nulls).known is None


def test_csv_labels_known_column_empty_cell_is_all_known(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'text,labels,labels_known\na,joy,"joy,anger"\nb,anger,\nc,,[]\n', encoding="utf-8"
    )
    data = read_dataset(path)
    assert data.labels == [["joy"], ["anger"], []]
    assert data.known == [["joy", "anger"], None, []]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_empty_zero_one_cells_are_unknown(tmp_path, fmt):
    sep = "\t" if fmt == "tsv" else ","
    path = tmp_path / f"d.{fmt}"
    rows = [["text", "joy", "anger"], ["a", "1", ""], ["b", "0", "1"], ["c", " ", ""]]
    path.write_text("".join(sep.join(r) + "\n" for r in rows), encoding="utf-8")
    data = read_dataset(path, label_cols=["joy", "anger"])
    assert data.labels == [["joy"], ["anger"], []]
    assert data.known == [["joy"], None, []]
    assert data.label_names == ["joy", "anger"]


def test_null_zero_one_cells_in_parquet_and_jsonl_are_unknown(tmp_path):
    parquet = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", "b"], "joy": [1.0, float("nan")], "anger": [None, 0]}).to_parquet(
        parquet
    )
    data = read_dataset(parquet, label_cols=["joy", "anger"])
    assert data.labels == [["joy"], []]
    assert data.known == [["joy"], ["anger"]]
    path = jsonl(
        tmp_path / "d.jsonl",
        [{"text": "a", "joy": 1, "anger": None}, {"text": "b", "joy": 0}],  # absent: unknown
    )
    data = read_dataset(path, label_cols=["joy", "anger"])
    assert data.labels == [["joy"], []]
    assert data.known == [["joy"], ["joy"]]


def test_detected_zero_one_columns_may_have_empty_cells_but_not_be_empty(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,joy,anger\na,1,\nb,,0\n", encoding="utf-8")
    data = read_dataset(path)
    assert data.known == [["joy"], ["anger"]]
    blank = tmp_path / "blank.csv"
    blank.write_text("text,notes\na,\nb,\n", encoding="utf-8")
    assert "no label column" in error_of(read_dataset, blank)


def test_a_label_outside_the_rows_known_labels_is_an_error(tmp_path):
    path = jsonl(
        tmp_path / "d.jsonl",
        [
            {"text": "a", "labels": ["joy"]},
            {"text": "b", "labels": ["joy", "anger"], "labels_known": ["anger"]},
        ],
    )
    message = error_of(read_dataset, path)
    assert message.startswith(f"{path}: row 2: label 'joy' is in its labels but not in")
    assert "'labels_known'" in message


def test_a_bad_labels_known_cell_names_file_row_and_column(tmp_path):
    path = jsonl(
        tmp_path / "d.jsonl",
        [{"text": "a", "labels": []}, {"text": "b", "labels": [], "labels_known": {"x": 1}}],
    )
    message = error_of(read_dataset, path)
    assert message == (
        f"{path}: row 2: column 'labels_known': expected a list of label names, got {{'x': 1}}"
    )


def test_a_bad_zero_one_cell_is_still_an_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,joy\na,\nb,maybe\n", encoding="utf-8")
    message = error_of(read_dataset, path, label_cols=["joy"])
    assert message == f"{path}: row 2: column 'joy': expected 0 or 1, got 'maybe'"


def test_dataset_in_memory_checks_known():
    with pytest.raises(DataError, match="row 1: label 'joy' is in its labels but not in"):
        Dataset(["a"], [["joy"]], "mem", known=[["anger"]])
    with pytest.raises(ValueError, match="1 texts but 2 known lists"):
        Dataset(["a"], [["joy"]], "mem", known=[None, None])
    assert Dataset(["a"], [["joy"]], "mem", known=[None]).known is None


# ------------------------------------------------------------------------------- label masks
def test_encode_known():
    labels = LabelSet(["anger", "joy", "love"])
    mask = labels.encode_known([None, ["joy"], [], ["love", "anger"]])
    assert mask.tolist() == [
        [True, True, True],
        [False, True, False],
        [False, False, False],
        [True, False, True],
    ]
    assert labels.encode_known(None) is None
    assert labels.encode_known([["anger", "joy", "love"], None]) is None  # all known: no mask
    with pytest.raises(DataError, match=r"^v\.jsonl: row 2: labelled for unknown label 'fear'"):
        labels.encode_known([None, ["fear"]], "v.jsonl")


# -------------------------------------------------------------------------------- preparation
TEXTS = [f"text number {i}" for i in range(12)]
LABELS = [["joy"], ["anger"], ["joy", "anger"], []] * 3


def test_fully_known_data_prepare_as_without_the_column():
    config = RunConfig()
    every = [["anger", "joy"]] * len(TEXTS)
    plain = prepare_data(Dataset(TEXTS, LABELS, "t"), Dataset(TEXTS[:4], LABELS[:4], "v"), config)
    explicit = prepare_data(
        Dataset(TEXTS, LABELS, "t", known=every),
        Dataset(TEXTS[:4], LABELS[:4], "v", known=every[:4]),
        config,
    )
    assert explicit.train_known is None and explicit.val_known is None
    assert not explicit.partial
    assert explicit.fingerprint() == plain.fingerprint()


def test_partial_data_carry_masks_and_their_fingerprint(caplog):
    known = [["joy"], ["anger"], None, ["joy"]] * 3
    labels = [["joy"], ["anger"], ["joy", "anger"], []] * 3
    train = Dataset(TEXTS, labels, "t", known=known)
    with caplog.at_level(logging.WARNING, logger="multihot"):
        held = prepare_data(train, None, RunConfig().override(val_fraction=0.25))
    names = held.labels.names
    assert names == ["anger", "joy"]
    # The held-out masks are the subsets' own.
    for part, mask in ((held.train, held.train_known), (held.val, held.val_known)):
        expected = held.labels.encode_known(part.known)
        assert mask is None and expected is None or np.array_equal(mask, expected)
    with_val = prepare_data(train, Dataset(TEXTS[:4], labels[:4], "v"), RunConfig())
    assert with_val.val_known is None and with_val.train_known.shape == (12, 2)
    assert with_val.train_known[:, 0].tolist() == [False, True, True, False] * 3
    plain = prepare_data(
        Dataset(TEXTS, labels, "t"), Dataset(TEXTS[:4], labels[:4], "v"), RunConfig()
    )
    assert with_val.fingerprint() != plain.fingerprint()
    assert np.array_equal(with_val.train_targets, plain.train_targets)


def test_no_positive_warning_counts_the_known_texts(caplog):
    # "anger" is a label only through a known list: labelled for it, and never positive.
    train = Dataset(["a", "b", "c"], [["joy"], [], []], "t", known=[None, ["joy"], ["anger"]])
    with caplog.at_level(logging.WARNING, logger="multihot"):
        prepare_data(train, Dataset(["d"], [["joy"]], "v"), RunConfig())
    (line,) = [r.getMessage() for r in caplog.records if "no positive example" in r.getMessage()]
    assert line == (
        "t: label 'anger' has no positive example in training (2 of 3 texts are labelled for it)"
    )


# ------------------------------------------------------------------------------------ batches
def test_batches_carry_known_only_with_partial_labels():
    ids = [[1, 2, 3], [4, 5]]
    targets = np.array([[1, 0], [0, 1]], dtype=np.float32)
    plain = TokenizedDataset(ids, targets)
    assert len(plain[0]) == 3
    batch = Collator(0, None)([plain[0], plain[1]])
    assert "known" not in batch
    known = np.array([[True, False], [True, True]])
    partial = TokenizedDataset(ids, targets, known)
    batch = Collator(0, None)([partial[0], partial[1]])
    assert batch["known"].dtype == torch.bool
    assert batch["known"].tolist() == known.tolist()
    assert torch.equal(batch["targets"], torch.from_numpy(targets))


def test_split_documents_carries_known():
    docs = [[[1, 2, 3, 4], [5, 6]], [[7, 8, 9, 10]], [[11, 12, 13]]]
    targets = np.eye(3, dtype=np.float32)
    known = np.array([[True, False, True], [False, True, True], [True, True, False]])
    data = TokenizedDataset(docs, targets, known)
    batch = Collator(0, None)([data[i] for i in range(3)])
    parts = split_documents(batch, batch_tokens=8)
    assert len(parts) > 1
    assert torch.cat([p["known"] for p in parts]).tolist() == known.tolist()
    assert torch.cat([p["targets"] for p in parts]).tolist() == targets.tolist()
