import io
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from helpers import SAMPLE
from multihot.core.errors import DataError
from multihot.data.readers import Dataset, iter_text_batches, read_dataset, read_goemotions

TEXTS = ["so happy for you!", "NA", 'he said "no", twice', "ugh", "héllo wörld ✨"]
LABELS = [["joy", "love"], [], ["anger"], ["annoyance", "anger"], ["joy"]]


def write(path: Path, fmt: str, texts=TEXTS, labels=LABELS) -> Path:
    """The same records in each supported format, labels as real lists where the format has them."""
    records = [{"text": t, "labels": ls} for t, ls in zip(texts, labels, strict=True)]
    if fmt in ("csv", "tsv"):
        df = pd.DataFrame({"text": texts, "labels": [json.dumps(ls) for ls in labels]})
        df.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(records), encoding="utf-8")
    elif fmt == "json-columns":
        path.write_text(json.dumps({"text": texts, "labels": labels}), encoding="utf-8")
    elif fmt == "parquet":
        pd.DataFrame({"text": texts, "labels": labels}).to_parquet(path)
    return path


FORMATS = {
    "csv": "d.csv",
    "tsv": "d.tsv",
    "jsonl": "d.jsonl",
    "json": "d.json",
    "json-columns": "d.json",
    "parquet": "d.parquet",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_texts_and_label_lists(tmp_path, fmt):
    data = read_dataset(write(tmp_path / FORMATS[fmt], fmt))
    assert data.texts == TEXTS
    assert data.labels == LABELS
    assert data.label_names is None
    assert data.source == str(tmp_path / FORMATS[fmt])


def test_suffix_is_case_insensitive_and_bom_is_accepted(tmp_path):
    path = tmp_path / "D.CSV"
    path.write_bytes("\ufefftext,labels\nhi,joy\n".encode())
    data = read_dataset(path)
    assert data.texts == ["hi"] and data.labels == [["joy"]]


def test_delimited_and_json_string_labels(tmp_path):
    cells = ['["joy", "love"]', "joy, love", "joy;love", "joy | love", "joy", "", "[]", "a,b;c"]
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(len(cells))], "labels": cells}).to_csv(
        path, index=False
    )
    data = read_dataset(path)
    both = ["joy", "love"]
    assert data.labels == [both, both, both, both, ["joy"], [], [], ["a", "b;c"]]


def test_label_sep_overrides_the_automatic_rule(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabels\nhi\tsci-fi, drama/comedy\n", encoding="utf-8")
    assert read_dataset(path, label_sep="/").labels == [["sci-fi, drama", "comedy"]]
    assert read_dataset(path).labels == [["sci-fi", "drama/comedy"]]


def test_label_names_are_stripped_deduplicated_and_made_strings(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "a", "labels": [" joy ", "joy", "", 3, None]}, {"text": "b", "labels": None}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert read_dataset(path).labels == [["joy", "3"], []]


def test_custom_text_and_labels_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,tags,id\nhello,a|b,1\n", encoding="utf-8")
    data = read_dataset(path, text_col="body", labels_col="tags")
    assert data.texts == ["hello"] and data.labels == [["a", "b"]]


def test_label_cols_accept_every_spelling_of_zero_and_one(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [
        {"text": "a", "x": 1, "y": 0.0, "z": "true"},
        {"text": "b", "x": False, "y": "1.0", "z": " 0 "},
        {"text": "c", "x": "1", "y": True, "z": "FALSE"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    data = read_dataset(path, label_cols=["z", "x", "y"])
    assert data.label_names == ["z", "x", "y"]
    assert data.labels == [["z", "x"], ["y"], ["x", "y"]]


def test_label_cols_from_csv_and_parquet(tmp_path):
    df = pd.DataFrame({"text": ["a", "b"], "spam": [1, 0], "urgent": [1, 1], "id": [7, 8]})
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        data = read_dataset(tmp_path / name, label_cols=["spam", "urgent"])
        assert data.labels == [["spam", "urgent"], ["urgent"]]


def test_binary_columns_are_detected_with_a_warning(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("text,billing,bug\nrefund please,1,0\ncrash,0,1\nhi,0,0\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="multihot.data.readers"):
        data = read_dataset(path)
    assert data.label_names == ["billing", "bug"]
    assert data.labels == [["billing"], ["bug"], []]
    assert "no 'labels' column" in caplog.text and "billing, bug" in caplog.text


def test_dataset_subset_and_len():
    data = Dataset(["a", "b", "c"], [["x"], [], ["y"]], "mem", ["x", "y"])
    part = data.subset([2, 0])
    assert len(data) == 3 and len(part) == 2
    assert part.texts == ["c", "a"] and part.labels == [["y"], ["x"]]
    assert part.label_names == ["x", "y"] and part.source == "mem"


# --- errors: each names the file and the row and/or column ------------------------------------


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        result = call(*args, **kwargs)
        if not isinstance(result, Dataset):
            list(result)  # an iterator of batches: read it to the end
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    assert error_of(read_dataset, path) == f"{path}: no such file"
    assert error_of(iter_text_batches, path) == f"{path}: no such file"


def test_unknown_suffix_lists_the_supported_ones(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_text("x", encoding="utf-8")
    message = error_of(read_dataset, path)
    assert str(path) in message and "'.xlsx'" in message
    assert all(s in message for s in (".csv", ".tsv", ".jsonl", ".json", ".parquet"))


def test_missing_text_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,labels\nhi,joy\n", encoding="utf-8")
    message = error_of(read_dataset, path)
    assert str(path) in message and "'text'" in message and "'body'" in message
    assert "--text-col" in message


def test_missing_label_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,tags,id\nhi,joy,x1\n", encoding="utf-8")
    message = error_of(read_dataset, path)
    assert str(path) in message and "'labels'" in message and "'tags'" in message
    assert "--labels-col" in message and "--label-cols" in message
    message = error_of(read_dataset, path, label_cols=["tags", "spam"])
    assert "'spam'" in message and str(path) in message


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        ("csv", "text,labels\nhi,joy\n  ,joy\n", "row 2: column 'text': empty text"),
        ("csv", "text,labels\nhi,joy\n,joy\n", "row 2: column 'text': empty text"),
        (
            "jsonl",
            '{"text": "hi"}\n{"text": 3.5}\n',
            "row 2: column 'text': expected a string, got 3.5",
        ),
        ("jsonl", '{"text": "hi"}\n{"text": null}\n', "row 2: column 'text': missing text"),
        ("jsonl", '{"text": "hi"}\n{"t": "x"}\n', "row 2: column 'text': missing text"),
    ],
)
def test_bad_text(tmp_path, fmt, content, expected):
    path = tmp_path / f"d.{fmt}"
    path.write_text(content, encoding="utf-8")
    assert error_of(read_dataset, path) == f"{path}: {expected}"
    assert error_of(iter_text_batches, path) == f"{path}: {expected}"


@pytest.mark.parametrize("value", ["2", "yes", "[1]"])
def test_bad_binary_value(tmp_path, value):
    path = tmp_path / "d.csv"
    path.write_text(f"text,spam\na,1\nb,{value}\n", encoding="utf-8")
    message = error_of(read_dataset, path, label_cols=["spam"])
    assert message == f"{path}: row 2: column 'spam': expected 0 or 1, got {value!r}"


def test_bad_binary_value_in_parquet_names_the_number(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", "b"], "spam": [1.0, 2.0]}).to_parquet(path)
    message = error_of(read_dataset, path, label_cols=["spam"])
    assert message == f"{path}: row 2: column 'spam': expected 0 or 1, got 2.0"


def test_malformed_json_label_list(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text('text\tlabels\nhi\t["joy"]\nho\t["joy", love]\n', encoding="utf-8")
    message = error_of(read_dataset, path)
    assert message.startswith(f"{path}: row 2: column 'labels': malformed JSON list")


def test_bad_jsonl_line_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "labels": []}\n{"text": "b", \n', encoding="utf-8")
    assert error_of(read_dataset, path).startswith(f"{path}: line 2: invalid JSON")
    assert error_of(iter_text_batches, path).startswith(f"{path}: line 2: invalid JSON")


@pytest.mark.parametrize(
    ("name", "content"),
    [("d.csv", "text,labels\n"), ("d.jsonl", ""), ("d.jsonl", "\n\n"), ("d.json", "[]")],
)
def test_no_rows(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert error_of(read_dataset, path) == f"{path}: no rows"
    assert error_of(iter_text_batches, path) == f"{path}: no rows"


def test_no_rows_in_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": pd.Series([], dtype=str), "labels": []}).to_parquet(path)
    assert error_of(read_dataset, path) == f"{path}: no rows"


def test_unparsable_csv_is_a_one_line_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,labels\na,b\nc,d,e,f\n", encoding="utf-8")
    assert error_of(read_dataset, path) == (
        f"{path}: row 2: 4 fields but the header has 2; quote fields that contain a comma"
    )
    path.write_text('text,labels\na,b\n"c,d\n', encoding="utf-8")
    assert error_of(read_dataset, path).startswith(f"{path}: cannot parse")
    path.write_bytes(b"text,labels\n\xff\xfe,x\n")
    assert error_of(read_dataset, path).startswith(f"{path}: row 1: not UTF-8 text")


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_iter_text_batches_on_each_format(tmp_path, fmt):
    path = write(tmp_path / FORMATS[fmt], fmt)
    batches = list(iter_text_batches(path, batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert [t for b in batches for t in b] == TEXTS


def test_iter_text_batches_on_txt_and_stdin(tmp_path, monkeypatch):
    content = "first line\n\nsecond, with comma\r\n  \nthird\n"
    path = tmp_path / "d.txt"
    path.write_text(content, encoding="utf-8")
    expected = [["first line", "second, with comma"], ["third"]]
    assert list(iter_text_batches(path, batch_size=2)) == expected
    monkeypatch.setattr("sys.stdin", io.StringIO(content))
    assert list(iter_text_batches("-", batch_size=2)) == expected


def test_iter_text_batches_checks_the_text_column_before_reading(tmp_path):
    for fmt in ("csv", "jsonl", "parquet"):
        path = write(tmp_path / f"d.{fmt}", fmt)
        with pytest.raises(DataError, match="no column 'body'"):
            iter_text_batches(path, text_col="body")  # raised on the call, not on iteration


def test_iter_text_batches_counts_rows_across_batches(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text\na\nb\nc\n""\n', encoding="utf-8")
    batches = iter_text_batches(path, batch_size=2)
    assert next(batches) == ["a", "b"]
    with pytest.raises(DataError, match=r"row 4: column 'text': empty text"):
        next(batches)


# --- GoEmotions ----------------------------------------------------------------------------------


def test_read_goemotions(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('He said "wow" and left\t0,2\teeabc1\nmeh\t1\teeabc2\n', encoding="utf-8")
    data = read_goemotions(path, ["joy", "anger", "neutral"])
    assert data.texts == ['He said "wow" and left', "meh"]
    assert data.labels == [["joy", "neutral"], ["anger"]]
    assert data.label_names == ["joy", "anger", "neutral"]


@pytest.mark.parametrize("ids", ["3", "x", "", "-1", "0,,1"])
def test_read_goemotions_bad_id_names_the_row(tmp_path, ids):
    path = tmp_path / "dev.tsv"
    path.write_text(f"ok\t0\tid1\nbad\t{ids}\tid2\n", encoding="utf-8")
    message = error_of(read_goemotions, path, ["joy", "anger", "neutral"])
    assert message.startswith(f"{path}: row 2: label ids")


def test_bundled_sample_loads_with_28_labels():
    names = set()
    for split, rows in (("train", 4000), ("dev", 500), ("test", 500)):
        data = read_dataset(SAMPLE / f"{split}.jsonl")
        assert len(data) == rows
        names.update(n for labels in data.labels for n in labels)
    assert len(names) == 28
    assert {"admiration", "neutral", "grief"} <= names


# --- hostile input found by tests/test_fuzz.py: each case failed before its fix ----------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (  # was ValueError: int() refuses strings of over 4300 digits
            "d.jsonl",
            '{"text": "a", "labels": ' + "9" * 5000 + "}\n",
            "line 1: invalid JSON: Exceeds the limit (4300 digits) for integer string conversion",
        ),
        (  # was RecursionError
            "d.jsonl",
            '{"text": "a", "labels": ' + "[" * 5000 + "}\n",
            "line 1: invalid JSON: nested too deeply",
        ),
        ("d.json", "[" * 5000, "invalid JSON: nested too deeply"),  # was RecursionError
        (  # was RecursionError, from a labels cell that starts with '['
            "d.csv",
            'text,labels\na,"' + "[" * 5000 + '"\n',
            "row 1: column 'labels': malformed JSON list '[[[",
        ),
        (  # was silently the last value
            "d.jsonl",
            '{"text": "a", "labels": ["x"], "labels": ["y"]}\n',
            "line 1: invalid JSON: key 'labels' appears more than once in one object",
        ),
    ],
)
def test_json_python_cannot_hold_is_a_data_error(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert error_of(read_dataset, path).startswith(f"{path}: {expected}")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            r'{"text": "\ud800 half"}',
            r"row 1: column 'text': not valid Unicode: lone surrogate '\ud800' at character 1",
        ),
        (
            r'{"text": "a", "labels": ["ok", "\udc00"]}',
            r"row 1: column 'labels': not valid Unicode: lone surrogate '\udc00'",
        ),
        (
            r'{"text": "a", "\udc01": 1}',
            r"column '\udc01': not valid Unicode: lone surrogate '\udc01'",
        ),
    ],
)
def test_lone_surrogates_from_json_escapes_are_refused(tmp_path, line, expected):
    """They read fine, then broke the tokenizer or the writing of labels.json and predictions."""
    path = tmp_path / "d.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    assert error_of(read_dataset, path).startswith(f"{path}: {expected}")


def test_surrogate_escaped_stdin_is_refused(monkeypatch):
    """Under a C/POSIX locale stdin decodes with surrogateescape: bad bytes became surrogates."""
    raw = io.BytesIO(b"fine\nbad \xff byte\n")
    monkeypatch.setattr(
        "sys.stdin", io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape")
    )
    assert error_of(iter_text_batches, "-") == (
        r"<stdin>: line 2: not valid Unicode: lone surrogate '\udcff' at character 5; "
        "expected UTF-8 text"
    )


@pytest.mark.parametrize("reader", [read_dataset, iter_text_batches])
@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        # pandas made the extra field an index: texts ' world' and 'bar', each label shifted.
        ("d.csv", "text,labels\nhello, world,joy\nfoo,bar\n", "row 1"),
        # Rows count like every other row number: quoted line breaks and blank lines aside.
        ("d.tsv", 'text\tlabels\n"two\nlines"\tx\n\nok\ty\tz\n', "row 2"),
    ],
    ids=["first-row-csv", "later-row-tsv"],
)
def test_a_row_longer_than_the_header_is_an_error_naming_its_row(
    tmp_path, reader, name, content, where
):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    separator = "a tab" if name.endswith(".tsv") else "a comma"
    assert error_of(reader, path) == (
        f"{path}: {where}: 3 fields but the header has 2; quote fields that contain {separator}"
    )


def test_repeated_csv_column_names_are_an_error(tmp_path):
    """pandas renamed the second 'joy' to 'joy.1', which became a label of its own."""
    path = tmp_path / "d.csv"
    path.write_text("text,joy,joy\na,1,0\n", encoding="utf-8")
    expected = f"{path}: columns 2 and 3 are both named 'joy'; give each column its own name"
    assert error_of(read_dataset, path) == expected
    path.write_text("text,text\na,b\n", encoding="utf-8")
    assert "columns 1 and 2 are both named 'text'" in error_of(iter_text_batches, path)


def test_repeated_parquet_column_names_are_an_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    columns = [pa.array(["a"]), pa.array(["b"]), pa.array([["x"]])]
    pq.write_table(pa.Table.from_arrays(columns, names=["text", "text", "labels"]), path)
    expected = f"{path}: columns 1 and 2 are both named 'text'; give each column its own name"
    assert error_of(read_dataset, path) == expected  # was "cannot parse: Multiple matches ..."
    assert error_of(iter_text_batches, path) == expected


def test_column_names_with_line_breaks_keep_the_message_on_one_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "a\\nb": 2}\n', encoding="utf-8")
    message = error_of(read_dataset, path, label_cols=["a\nb"])
    assert message == f"{path}: row 1: column 'a\\nb': expected 0 or 1, got 2"
    message = error_of(iter_text_batches, path, text_col="\r")
    assert message.startswith(f"{path}: no column '\\r'; available columns: 'text', 'a\\nb'")


def test_read_goemotions_huge_label_id_names_the_row(tmp_path):
    """int() refused the 5000-digit id with a ValueError of its own."""
    path = tmp_path / "train.tsv"
    path.write_text("ok\t0\tid1\nbad\t" + "9" * 5000 + "\tid2\n", encoding="utf-8")
    message = error_of(read_goemotions, path, ["joy", "anger"])
    assert message == (
        f"{path}: row 2: label ids {'9' * 60!r}: expected comma-separated integers from 0 to 1"
    )


def test_read_goemotions_field_over_the_csv_limit_names_the_row(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("ok\t0\tid1\n" + "x" * 200_000 + "\t0\tid2\n", encoding="utf-8")
    message = error_of(read_goemotions, path, ["joy"])
    assert message == f"{path}: row 2: cannot parse: field larger than field limit (131072)"


# --- labels that differ only by case -------------------------------------------------------------


def test_labels_that_differ_only_by_case_warn(tmp_path, caplog):
    """'joy' and 'JOY' silently became two labels, each with half the examples."""
    from multihot.core.config import RunConfig
    from multihot.data.prepare import prepare_data

    path = tmp_path / "d.jsonl"
    rows = [("a", ["joy"]), ("b", ["JOY", "sad"]), ("c", ["Sad", "Joy"]), ("d", ["anger"])]
    path.write_text("".join(json.dumps({"text": t, "labels": ls}) + "\n" for t, ls in rows))
    with caplog.at_level(logging.WARNING, logger="multihot.data.labels"):
        data = prepare_data(path, path, RunConfig())
    assert data.labels.names == ["JOY", "Joy", "Sad", "anger", "joy", "sad"]  # still separate
    warnings = [r.getMessage() for r in caplog.records if r.name == "multihot.data.labels"]
    assert warnings == [
        f"{path}: labels that differ only by case: 'JOY', 'Joy' and 'joy'; 'Sad' and 'sad' "
        "(kept as separate labels)"
    ]


def test_labels_that_differ_otherwise_do_not_warn(tmp_path, caplog):
    from multihot.core.config import RunConfig
    from multihot.data.prepare import prepare_data

    path = write(tmp_path / "d.jsonl", "jsonl")
    with caplog.at_level(logging.WARNING, logger="multihot.data.labels"):
        prepare_data(path, path, RunConfig())
    assert not [r for r in caplog.records if r.name == "multihot.data.labels"]


# --- compressed files ----------------------------------------------------------------------------


def gzip_file(path: Path, content: bytes) -> Path:
    import gzip

    path.write_bytes(gzip.compress(content))
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "json-columns"])
def test_gzip_files_are_read_by_their_inner_suffix(tmp_path, fmt):
    plain = write(tmp_path / FORMATS[fmt], fmt)
    path = gzip_file(tmp_path / f"{plain.name}.GZ", plain.read_bytes())
    data = read_dataset(path)
    assert (data.texts, data.labels, data.source) == (TEXTS, LABELS, str(path))
    assert [t for b in iter_text_batches(path, batch_size=2) for t in b] == TEXTS


def test_gzip_txt_and_goemotions(tmp_path):
    path = gzip_file(tmp_path / "texts.txt.gz", "\ufefffirst\n\nsecond\r\n".encode())
    assert list(iter_text_batches(path)) == [["first", "second"]]
    path = gzip_file(tmp_path / "train.tsv.gz", b"hi\t0\tid1\nho\t1\tid2\n")
    assert read_goemotions(path, ["joy", "anger"]).labels == [["joy"], ["anger"]]


def test_gzip_input_is_streamed(tmp_path):
    """The first batch of a .gz file comes before the damage at its end is read."""
    for name, line in [("d.csv.gz", "text {}\n"), ("d.jsonl.gz", '{{"text": "t{}"}}\n')]:
        header = "text\n" if name == "d.csv.gz" else ""
        content = header + "".join(line.format(i) for i in range(300_000))
        path = gzip_file(tmp_path / name, content.encode())
        path.write_bytes(path.read_bytes()[:-1000])
        batches = iter_text_batches(path, batch_size=1000)
        assert next(batches)[-1].endswith("999")
        with pytest.raises(DataError, match=f"^{path}: corrupt or truncated gzip data"):
            list(batches)


def test_gzip_rows_count_across_batches(tmp_path):
    rows = "".join(f"text {i}\n" for i in range(20_000))
    path = gzip_file(tmp_path / "d.csv.gz", f'text\n{rows}\n"  "\n'.encode())
    batches = iter_text_batches(path, batch_size=5_000)
    assert [len(next(batches)) for _ in range(4)] == [5_000] * 4
    with pytest.raises(DataError, match=r"d.csv.gz: row 20001: column 'text': empty text$"):
        next(batches)


def test_gzip_parquet_is_refused_with_a_reason(tmp_path):
    plain = write(tmp_path / "d.parquet", "parquet")
    path = gzip_file(tmp_path / "d.parquet.gz", plain.read_bytes())
    message = error_of(read_dataset, path)
    assert message == (
        f"{path}: a gzip-compressed parquet file; parquet compresses its columns itself: "
        "decompress it (gunzip) and read the .parquet file"
    )
    assert error_of(iter_text_batches, path) == message


def test_broken_gzip_files_are_data_errors(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_text('{"text": "a", "labels": []}\n', encoding="utf-8")
    assert error_of(read_dataset, path) == f"{path}: named .gz but not gzip-compressed"
    gzip_file(path, b'{"text": "a", "labels": []}\n' * 1000)
    path.write_bytes(path.read_bytes()[:-30])
    assert error_of(read_dataset, path).startswith(f"{path}: corrupt or truncated gzip data (")
    assert error_of(iter_text_batches, path).startswith(f"{path}: corrupt or truncated gzip data (")
    path = tmp_path / "d.gz"
    gzip_file(path, b"text,labels\na,b\n")
    assert "unsupported file type '.gz'" in error_of(read_dataset, path)


def compressed(kind: str, content: bytes) -> bytes:
    import bz2
    import gzip
    import lzma
    import zipfile

    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("d.csv", content)
        return buffer.getvalue()
    if kind == "zstd":  # no zstd module in the standard library: its magic number and a frame
        return b"\x28\xb5\x2f\xfd" + bytes(range(40))
    return {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](content)


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zstd", "zip"])
@pytest.mark.parametrize("name", ["d.csv", "d.jsonl", "d.txt", "d.parquet"])
def test_compressed_file_without_its_suffix_says_so(tmp_path, kind, name):
    """A gzip file named .jsonl was "not UTF-8 text (invalid start byte at byte 1)"."""
    path = tmp_path / name
    path.write_bytes(compressed(kind, b"text,labels\na,b\n"))
    if kind == "gzip" and name != "d.parquet":
        expected = f"{path}: looks gzip-compressed; name it {name}.gz or decompress it"
    else:
        expected = f"{path}: looks {kind}-compressed; decompress it first"
    assert error_of(iter_text_batches, path) == expected
    if name != "d.txt":
        assert error_of(read_dataset, path) == expected
    if name == "d.csv":
        assert error_of(read_goemotions, path.rename(tmp_path / "d.tsv"), ["joy"]) == (
            expected.replace("d.csv", "d.tsv")
        )


def test_text_that_starts_like_a_magic_number_is_text(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("BZh9 is a bzip2 level\nPK is a primary key\n", encoding="utf-8")
    assert list(iter_text_batches(path)) == [["BZh9 is a bzip2 level", "PK is a primary key"]]


# --- text that is not UTF-8 names its line or row ---------------------------------------------

HINT = "expected UTF-8 (it may be Windows-1252 / Latin-1; re-save it as UTF-8)"


def cp1252(text: str) -> bytes:
    return text.encode("cp1252")


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("d.jsonl", '{"text": "a"}\n\n{"text": "b"}\r\n{"text": "café"}\n', "line 4"),
        ("d.jsonl", '{"text": "café"}\n', "line 1"),
        ("d.json", '[\n{"text": "a"},\r{"text": "\u2019quoted\u2019"}]', "line 3"),
        ("d.txt", "one\r\ntwo\rthree\n\nnaïve\n", "line 5"),
        # Rows count as the other CSV errors count them: the header is not a row, blank lines
        # are not rows, a quoted line break does not start a row.
        ("d.csv", 'text,labels\n"two\nlines",x\n\nok,y\n"say ""hi""\n\nthere é",z\n', "row 3"),
        ("d.csv", "text,labels\na,b\nc,d\u2013e\n", "row 2"),
        ("d.tsv", 'text\tlabels\n"tab\there"\tx\nrésumé\ty\n', "row 2"),
        ("d.csv", "text,étiquettes\na,b\n", "header row"),
    ],
    ids=["jsonl", "jsonl-first", "json", "txt", "csv-quoted", "csv", "tsv", "csv-header"],
)
def test_text_that_is_not_utf8_names_the_line_or_row(tmp_path, name, content, where):
    """Windows-1252 files were reported as "not UTF-8 text (invalid ... at byte N)" alone."""
    path = tmp_path / name
    path.write_bytes(cp1252(content))
    offset = next(i for i, b in enumerate(cp1252(content)) if b >= 0x80)
    byte = cp1252(content)[offset]
    expected = f"{path}: {where}: not UTF-8 text (byte 0x{byte:02x} at offset {offset}); {HINT}"
    readers = [iter_text_batches] if name == "d.txt" else [read_dataset, iter_text_batches]
    for reader in readers:
        assert error_of(reader, path) == expected
    gzipped = gzip_file(tmp_path / f"{name}.gz", cp1252(content))
    assert error_of(readers[0], gzipped) == expected.replace(f"{path}: ", f"{gzipped}: ").replace(
        f"at offset {offset}", f"at offset {offset} of the decompressed data"
    )


def test_not_utf8_late_in_a_big_csv_names_its_row(tmp_path):
    """Far past the first chunk the parsers read, and past pandas' and Python's buffers."""
    rows = "".join(f'"row {i}\nwith a line break",x\n' for i in range(30_000))
    content = "text,labels\n" + rows + "déjà vu,y\n"
    path = tmp_path / "d.csv"
    path.write_bytes(cp1252(content))
    offset = len(("text,labels\n" + rows + "d").encode())
    expected = f"{path}: row 30001: not UTF-8 text (byte 0xe9 at offset {offset}); {HINT}"
    assert error_of(read_dataset, path) == expected
    assert error_of(iter_text_batches, path, batch_size=1000) == expected


def test_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,labels\na,b\n".encode("utf-16"))
    assert error_of(read_dataset, path) == (
        f"{path}: header row: not UTF-8 text (byte 0xff at offset 0); "
        "expected UTF-8 (it looks like UTF-16; re-save it as UTF-8)"
    )


def test_truncated_utf8_at_the_end_names_the_line(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"fine\ncaf\xc3")
    assert error_of(iter_text_batches, path) == (
        f"{path}: line 2: not UTF-8 text (byte 0xc3 at offset 8); {HINT}"
    )


def test_not_utf8_in_goemotions_names_the_row(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(cp1252('He said "wow\t0\tid1\nna\u00efve\t1\tid2\n'))
    offset = len('He said "wow\t0\tid1\nna')
    assert error_of(read_goemotions, path, ["joy", "anger"]) == (
        f"{path}: row 2: not UTF-8 text (byte 0xef at offset {offset}); {HINT}"
    )


def test_not_utf8_on_stdin_names_the_line(monkeypatch):
    raw = io.BytesIO(cp1252("fine\n\nalso fine\ncafé\n"))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(raw, encoding="utf-8"))
    assert error_of(iter_text_batches, "-") == (
        f"<stdin>: line 4: not UTF-8 text (byte 0xe9 at offset 19); {HINT}"
    )


@pytest.mark.parametrize("text", ["", "   ", None])
def test_a_dataset_built_in_memory_refuses_empty_texts(text):
    with pytest.raises(DataError, match=r"mem: row 2: .*expected a non-empty string"):
        Dataset(["fine", text], [[], []], "mem")
