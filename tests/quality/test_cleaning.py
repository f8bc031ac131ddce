"""--write-cleaned: drop or flip the top issues in a copy of DATA, never touching DATA."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multihot.core.errors import ConfigError, DataError, MultihotError
from multihot.data.readers import read_dataset
from multihot.quality.cleaning import select_issues, write_cleaned
from multihot.quality.findings import LabelIssue

RECORDS = [
    {"id": "a1", "text": "so happy today", "labels": ["joy"], "meta": {"src": "x"}},
    {"id": "a2", "text": "this is awful", "labels": ["anger", "sadness"], "meta": None},
    {"id": "a3", "text": 'he said "hi",\nthen left', "labels": [], "meta": {"n": 3}},
    {"id": "a4", "text": "love it", "labels": ["love"], "extra": 1.5},
]


def labels_of(rows):
    return [r["labels"] for r in rows]


def issue(row, label, given, score, texts):
    return LabelIssue(row, label, given, score, 0.5, 0.4, texts[row])


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture
def jsonl(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", RECORDS)


def jsonl_issues():
    texts = [r["text"] for r in RECORDS]
    return [
        issue(1, "sadness", 1, 0.95, texts),  # wrong
        issue(2, "joy", 0, 0.9, texts),  # missing
        issue(1, "joy", 0, 0.7, texts),  # missing, same row
        issue(3, "love", 1, 0.2, texts),  # below the cut
    ]


def test_flip_on_a_list_column_keeps_everything_else(jsonl, tmp_path):
    before = jsonl.read_bytes()
    out = tmp_path / "clean.jsonl"
    report = write_cleaned(jsonl, out, jsonl_issues(), fix="flip", min_score=0.5)
    assert jsonl.read_bytes() == before
    assert report["labels_flipped"] == 3 and report["rows_changed"] == 2
    assert report["rows_in"] == report["rows_out"] == 4 and report["issues"] == 3
    rows = read_jsonl(out)
    assert labels_of(rows) == [["joy"], ["anger", "joy"], ["joy"], ["love"]]
    for got, was in zip(rows, RECORDS, strict=True):
        assert {k: v for k, v in got.items() if k != "labels"} == {
            k: v for k, v in was.items() if k != "labels"
        }  # ids, metadata, absent keys: as they were
    data = read_dataset(out)
    assert data.texts == [r["text"] for r in RECORDS]


def test_drop_on_a_list_column(jsonl, tmp_path):
    before = jsonl.read_bytes()
    out = tmp_path / "clean.jsonl"
    report = write_cleaned(jsonl, out, jsonl_issues(), fix="drop", top=2)
    assert jsonl.read_bytes() == before
    assert report["rows_dropped"] == 2 and report["rows_out"] == 2
    assert read_jsonl(out) == [RECORDS[0], RECORDS[3]]
    assert len(read_dataset(out)) == 2


def test_top_and_min_score_choose_the_highest_scored():
    texts = [r["text"] for r in RECORDS]
    issues = [issue(0, "x", 0, s, texts) for s in (0.3, 0.9, 0.6, 0.8)]
    assert [i.score for i in select_issues(issues, top=2)] == [0.9, 0.8]
    assert [i.score for i in select_issues(issues, min_score=0.6)] == [0.9, 0.8, 0.6]
    assert [i.score for i in select_issues(issues, min_score=0.7, top=1)] == [0.9]
    assert len(select_issues(issues)) == 4


BINARY_CSV = (
    "id,text,joy,anger,note\n"
    "1,so happy,1,0,first\n"
    '2,"angry, and ""loud""",0,1,\n'
    '3,"two\nlines",0,0,x;y\n'
)


@pytest.fixture
def binary_csv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(BINARY_CSV.encode())
    return path


def csv_rows(path, delimiter=","):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def binary_issues():
    texts = ["so happy", 'angry, and "loud"', "two\nlines"]
    return [issue(1, "anger", 1, 0.9, texts), issue(2, "joy", 0, 0.8, texts)]


def test_flip_on_0_1_columns(binary_csv, tmp_path):
    out = tmp_path / "clean.csv"
    write_cleaned(binary_csv, out, binary_issues(), fix="flip", label_cols=["joy", "anger"])
    assert binary_csv.read_bytes() == BINARY_CSV.encode()
    rows = csv_rows(out)
    assert [(r["joy"], r["anger"]) for r in rows] == [("1", "0"), ("0", "0"), ("1", "0")]
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert [r["note"] for r in rows] == ["first", "", "x;y"]
    data = read_dataset(out, label_cols=["joy", "anger"])
    assert data.texts == ["so happy", 'angry, and "loud"', "two\nlines"]
    assert data.labels == [["joy"], [], ["joy"]]


def test_drop_on_0_1_columns_found_without_label_cols(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("text\tjoy\tanger\nso happy\t1\t0\nangry\t0\tTRUE\nmeh\t0.0\t0\n", "utf-8")
    texts = ["so happy", "angry", "meh"]
    out = tmp_path / "clean.tsv"
    write_cleaned(path, out, [issue(1, "anger", 1, 0.9, texts)], fix="drop")
    assert [r["text"] for r in csv_rows(out, "\t")] == ["so happy", "meh"]
    flipped = tmp_path / "flipped.tsv"
    issues = [issue(1, "anger", 1, 0.9, texts), issue(2, "joy", 0, 0.9, texts)]
    write_cleaned(path, flipped, issues, fix="flip")
    rows = csv_rows(flipped, "\t")
    assert (rows[1]["anger"], rows[2]["joy"]) == ("FALSE", "1.0")  # the cell's own spelling
    assert read_dataset(flipped).labels == [["joy"], [], ["joy"]]


def test_delimited_and_json_string_labels_keep_their_form(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        'text,labels\nfirst,joy;love\nsecond,anger\nthird,"[""joy""]"\nfourth,\n', "utf-8"
    )
    texts = ["first", "second", "third", "fourth"]
    issues = [
        issue(0, "love", 1, 0.9, texts),
        issue(1, "joy", 0, 0.9, texts),
        issue(2, "anger", 0, 0.9, texts),
        issue(3, "love", 0, 0.9, texts),
        issue(1, "a;b", 0, 0.9, texts),  # holds the separator: written as JSON
    ]
    out = tmp_path / "clean.csv"
    write_cleaned(path, out, issues, fix="flip")
    cells = [r["labels"] for r in csv_rows(out)]
    assert cells == ["joy", '["anger", "joy", "a;b"]', '["joy", "anger"]', "love"]
    assert read_dataset(out).labels == [
        ["joy"],
        ["anger", "joy", "a;b"],
        ["joy", "anger"],
        ["love"],
    ]


def test_list_labels_written_to_csv_and_parquet_read_back(jsonl, tmp_path):
    for name in ("clean.csv", "clean.parquet", "clean.json"):
        out = tmp_path / name
        write_cleaned(jsonl, out, jsonl_issues(), fix="flip", min_score=0.5)
        data = read_dataset(out)
        assert data.labels == [["joy"], ["anger", "joy"], ["joy"], ["love"]], name


def test_parquet_keeps_its_schema(tmp_path):
    path = tmp_path / "train.parquet"
    table = pa.table(
        {
            "text": ["a text", "b text"],
            "joy": pa.array([1, 0], pa.int8()),
            "anger": [False, True],
            "score": [0.5, None],
        }
    )
    pq.write_table(table, path)
    before = path.read_bytes()
    out = tmp_path / "clean.parquet"
    issues = [LabelIssue(0, "joy", 1, 0.9, 0.1, 0.5, "a text")]
    issues.append(LabelIssue(1, "anger", 1, 0.9, 0.1, 0.5, "b text"))
    write_cleaned(path, out, issues, fix="flip", label_cols=["joy", "anger"])
    assert path.read_bytes() == before
    cleaned = pq.read_table(out)
    assert cleaned.schema.types == table.schema.types
    assert cleaned.to_pydict() == {
        "text": ["a text", "b text"],
        "joy": [0, 0],
        "anger": [False, False],
        "score": [0.5, None],
    }


def test_an_existing_out_needs_force(jsonl, tmp_path):
    out = tmp_path / "clean.jsonl"
    out.write_text("mine\n", "utf-8")
    with pytest.raises(MultihotError, match="exists; replace it with --force"):
        write_cleaned(jsonl, out, jsonl_issues(), fix="drop")
    assert out.read_text("utf-8") == "mine\n"
    write_cleaned(jsonl, out, jsonl_issues(), fix="drop", force=True)
    assert len(read_dataset(out)) == 4 - 3


def test_out_is_never_data(jsonl, tmp_path):
    before = jsonl.read_bytes()
    same = [jsonl, tmp_path / "." / "train.jsonl"]
    link = tmp_path / "link.jsonl"
    link.symlink_to(jsonl)
    hard = tmp_path / "hard.jsonl"
    hard.hardlink_to(jsonl)
    for out in [*same, link, hard]:
        with pytest.raises(MultihotError, match="is DATA"):
            write_cleaned(jsonl, out, jsonl_issues(), fix="drop", force=True)
    assert jsonl.read_bytes() == before


def test_bad_requests_are_clean_errors(jsonl, tmp_path):
    with pytest.raises(ConfigError, match="fix must be"):
        write_cleaned(jsonl, tmp_path / "o.jsonl", [], fix="fix")  # type: ignore[arg-type]
    with pytest.raises(MultihotError, match="unsupported format"):
        write_cleaned(jsonl, tmp_path / "o.jsonl.gz", [], fix="drop")
    with pytest.raises(MultihotError, match="does not exist"):
        write_cleaned(jsonl, tmp_path / "no" / "o.jsonl", [], fix="drop")
    texts = [r["text"] for r in RECORDS]
    wrong_given = [issue(0, "joy", 0, 0.9, texts)]
    with pytest.raises(DataError, match="given 0, the data says 1"):
        write_cleaned(jsonl, tmp_path / "o.jsonl", wrong_given, fix="flip")
    other_text = [LabelIssue(0, "joy", 1, 0.9, 0.1, 0.5, "another text")]
    with pytest.raises(DataError, match="another text"):
        write_cleaned(jsonl, tmp_path / "o.jsonl", other_text, fix="drop")
    past_the_end = [LabelIssue(9, "joy", 1, 0.9, 0.1, 0.5, "x")]
    with pytest.raises(DataError, match="has 4 rows"):
        write_cleaned(jsonl, tmp_path / "o.jsonl", past_the_end, fix="drop")
    every_row = [issue(r, RECORDS[r]["labels"][0], 1, 0.9, texts) for r in (0, 1, 3)]
    every_row.append(issue(2, "joy", 0, 0.9, texts))
    with pytest.raises(DataError, match="leaves none"):
        write_cleaned(jsonl, tmp_path / "o.jsonl", every_row, fix="drop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]  # nothing partial
