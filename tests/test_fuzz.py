"""Fuzzing the readers: a hostile file ends in data or in the project's own one-line error.

Every reader of :mod:`multihot.data.readers` (``read_dataset`` on .csv .tsv .jsonl .json .parquet,
``iter_text_batches`` on those, .txt and stdin, ``read_goemotions``) and ``multihot predict -o``
get random bytes, broken quoting, ragged rows, huge lines, invalid UTF-8 and other encodings, BOMs,
CR/CRLF line endings, NaN/inf/-1/2/"yes" in label columns, repeated column names, empty and
header-only files. The contract: a result, or a :class:`MultihotError` whose message is one line
starting with the file's path; never another exception, never a hang, never a partial output.
Well-formed files must also read back exactly what was written, whatever the characters.

Runs are repeatable (``derandomize=True``, no example database) and bounded in size and count.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import invoke
from multihot.core.errors import MultihotError
from multihot.data.encoding import is_empty_text
from multihot.data.readers import Dataset, iter_text_batches, read_dataset, read_goemotions

FUZZ = settings(
    max_examples=60,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HANG_SECONDS = 30
"""A reader still busy after this long counts as hung (the deadline only measures, never stops)."""

# --- what a result or an error must look like ------------------------------------------------


@contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail with TimeoutError instead of waiting forever on a reader that loops."""

    def alarm(signum, frame):
        raise TimeoutError(f"still reading after {seconds}s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_message(message: str, source: Path | str) -> None:
    """One line, starting with the file it is about, then something to say."""
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{source}: ") and len(message) > len(f"{source}: "), message


def outcome(call: Callable[[], Any], source: Path | str) -> tuple[Any, str | None]:
    """``(result, None)`` or ``(None, error message)``; any other exception fails the test.

    An iterator of batches is read to the end, as every caller of ``iter_text_batches`` does.
    """
    with no_hang():
        try:
            result = call()
            if isinstance(result, Iterator):
                result = list(result)
        except MultihotError as err:
            check_message(str(err), source)
            return None, str(err)
    return result, None


def check_dataset(data: Dataset) -> None:
    """What every successful read promises: non-blank texts, lists of distinct non-blank names."""
    assert len(data.texts) == len(data.labels) > 0
    for text, names in zip(data.texts, data.labels, strict=True):
        assert isinstance(text, str) and text.strip()
        text.encode("utf-8")  # writable: no lone surrogates
        assert all(isinstance(n, str) and n and n == n.strip() for n in names)
        assert len(set(names)) == len(names)
        for name in names:
            name.encode("utf-8")
    if data.label_names is not None:
        assert len(set(data.label_names)) == len(data.label_names)
        assert all(n in data.label_names for names in data.labels for n in names)


def check_batches(batches: list[list[str]], batch_size: int) -> None:
    assert batches and all(0 < len(b) <= batch_size for b in batches)
    for text in (t for b in batches for t in b):
        assert isinstance(text, str) and text.strip()
        text.encode("utf-8")


@contextmanager
def fresh_dir(root: Path) -> Iterator[Path]:
    """An empty directory per example (examples can be large), removed afterwards."""
    path = Path(tempfile.mkdtemp(dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- building blocks of hostile files ----------------------------------------------------------

NASTY = [
    "",
    " ",
    "\t",
    "NA",
    "null",
    "None",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-1",
    "2",
    "yes",
    "no",
    "1.0",
    "0.0",
    " 1 ",
    "true",
    "FALSE",
    "1e0",
    "01",
    '"',
    '""',
    "'",
    ",",
    ";",
    "|",
    "[",
    "]",
    "[]",
    '["a"',
    '["a", "a", " b "]',
    "[1, [2]]",
    "[[[[",
    "{}",
    '{"a": 1}',
    "\\",
    "\x00",
    "\ufeff",
    "\r",
    "\n",
    "\r\n",
    "\u2028",
    "\x85",
    "\x1c",
    "é",
    "✨",
    "#",
    "=1+1",
    "text",
    "labels",
    "[/x]",
    "[bold]",
    ":joy:",
    "\ud7ff",
    "9" * 5000,
    "[" * 3000,
    '"' * 7,
]
NAMES = [
    "text",
    "text",
    "labels",
    "labels",
    "joy",
    "anger",
    "",
    "Unnamed: 0",
    "joy.1",
    "[/x]",
    "a\nb",
    "\r",
]
BAD_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf", b"\r", b'"', b"\xe2\x80"]

cells = st.one_of(st.sampled_from(NASTY), st.text(max_size=12))
texts = st.text(min_size=1, max_size=30).filter(lambda t: not is_empty_text(t))
names = st.one_of(st.sampled_from(NAMES), st.text(max_size=6))
headers = st.lists(names, max_size=5)
eols = st.sampled_from(["\n", "\r\n", "\r"])
huge_lines = st.sampled_from(["", "x" * 70_000, "é," * 40_000, '"' + "a\t" * 50_000])


@st.composite
def encoded(draw, text: str) -> bytes:
    """``text`` as bytes: UTF-8 with or without a BOM, another encoding, or with a bad byte inside."""
    how = draw(st.sampled_from(["utf-8", "bom", "latin-1", "utf-16", "bad byte"]))
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if how in ("latin-1", "utf-16"):
        return text.encode(how, errors="replace")
    data = text.encode("utf-8")
    if how == "bad byte":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    return data


@st.composite
def delimited_text(draw, sep: str) -> str:
    """A header and ragged rows, quoted properly or joined raw (broken quoting)."""
    header = draw(st.tuples(st.booleans(), headers).map(lambda t: ["text"] * t[0] + t[1]))
    rows = draw(st.lists(st.lists(cells, max_size=len(header) + 2), max_size=5))
    eol = draw(eols)
    if draw(st.booleans()):
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=sep, lineterminator=eol)
        writer.writerows([header, *rows])
        text = buffer.getvalue()
    else:
        text = eol.join(sep.join(row) for row in [header, *rows]) + draw(st.sampled_from(["", eol]))
    return text + draw(huge_lines)


def delimited_files(sep: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        delimited_text(sep).flatmap(encoded),
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"text" + sep.encode() + b"labels\n" + b),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | cells,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
records = st.tuples(st.booleans(), st.dictionaries(names, json_values, max_size=4)).map(
    lambda t: {"text": "a text", **t[1]} if t[0] else t[1]
)
SPECIAL_JSON_LINES = [
    '{"text": "a", "text": "b"}',
    '{"text": "a", "labels": ["x"], "labels": ["y"]}',
    '{"text": "\\ud800 half a character"}',
    '{"text": "fine", "labels": ["\\udc00"]}',
    '{"text": "a", "labels": ' + "9" * 5000 + "}",
    '{"text": "a", "labels": ' + "[" * 5000 + "}",
    '{"text": "a", "labels": "' + "[" * 5000 + '"}',
    "[" * 5000,
    '{"text": "a", "labels": NaN, "joy": Infinity}',
    "\ufeff" + '{"text": "a"}',
    "null",
    "[]",
    '"text"',
    "{",
]
json_lines = st.one_of(
    records.map(json.dumps), cells, st.sampled_from(SPECIAL_JSON_LINES), huge_lines
)
jsonl_files = st.one_of(
    st.tuples(st.lists(json_lines, max_size=6), eols)
    .map(lambda t: t[1].join(t[0]))
    .flatmap(encoded),
    st.binary(max_size=300),
)
json_documents = st.one_of(
    st.lists(records, max_size=5).map(json.dumps),
    st.dictionaries(names, st.lists(json_values, max_size=4), max_size=4).map(json.dumps),
    json_values.map(json.dumps),
    st.sampled_from(SPECIAL_JSON_LINES).map(lambda line: f"[{line}]"),
    st.lists(records, min_size=1, max_size=4)
    .map(json.dumps)
    .flatmap(lambda doc: st.integers(0, len(doc) - 1).map(lambda cut: doc[:cut])),
)
json_files = st.one_of(json_documents.flatmap(encoded), st.binary(max_size=300))

PARQUET_TYPES: dict[str, tuple[pa.DataType, st.SearchStrategy]] = {
    "string": (pa.string(), cells),
    "large_string": (pa.large_string(), cells),
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float": (pa.float64(), st.floats()),
    "bool": (pa.bool_(), st.booleans()),
    "binary": (pa.binary(), st.binary(max_size=8)),
    "list<string>": (pa.list_(pa.string()), st.lists(st.none() | cells, max_size=3)),
    "list<int>": (pa.list_(pa.int64()), st.lists(st.integers(-5, 5), max_size=3)),
    "struct": (pa.struct([("a", pa.int64())]), st.fixed_dictionaries({"a": st.integers(0, 3)})),
}


@st.composite
def parquet_tables(draw) -> pa.Table:
    """Columns of any of PARQUET_TYPES under possibly repeated names, nulls included."""
    column_names = draw(st.tuples(st.booleans(), headers).map(lambda t: ["text"] * t[0] + t[1]))
    rows = draw(st.integers(0, 4))
    arrays = []
    for _ in column_names:
        arrow_type, values = PARQUET_TYPES[draw(st.sampled_from(sorted(PARQUET_TYPES)))]
        column = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        arrays.append(pa.array(column, type=arrow_type))
    return pa.Table.from_arrays(arrays, names=column_names)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


parquet_files = st.one_of(
    parquet_tables().map(parquet_bytes),
    parquet_tables()
    .map(parquet_bytes)
    .flatmap(lambda data: st.integers(0, len(data) - 1).map(lambda cut: data[:cut])),
    st.binary(max_size=200).map(lambda b: b"PAR1" + b + b"PAR1"),
)

goemotions_ids = st.one_of(
    st.lists(st.integers(0, 30), max_size=3).map(lambda ids: ",".join(map(str, ids))),
    cells,
    st.sampled_from(["-1", "0,,1", " 1", "1 ", "\u0663", "\uff11", "0" * 50 + "1"]),
    st.just("9" * 5000),
)
# text, label ids, comment id; only the first 0 to 3 of them.
goemotions_rows = st.tuples(texts | cells, goemotions_ids, cells, st.integers(0, 3)).map(
    lambda t: "\t".join(t[:3][: t[3]])
)
goemotions_files = st.one_of(
    st.tuples(st.lists(goemotions_rows, max_size=5), eols, huge_lines)
    .map(lambda t: t[1].join(t[0]) + t[2])
    .flatmap(encoded),
    st.binary(max_size=300),
)
text_files = st.one_of(
    st.tuples(st.lists(cells, max_size=6), eols, huge_lines)
    .map(lambda t: t[1].join(t[0]) + t[2])
    .flatmap(encoded),
    st.binary(max_size=300),
)

FILES = {
    ".csv": delimited_files(","),
    ".tsv": delimited_files("\t"),
    ".jsonl": jsonl_files,
    ".json": json_files,
    ".parquet": parquet_files,
}


def write(directory: Path, suffix: str, content: bytes) -> Path:
    path = directory / f"input{suffix}"
    path.write_bytes(content)
    return path


# --- the readers on hostile files ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", FILES)
def test_read_dataset_on_hostile_files(workdir, suffix):
    """Label lists (any separator) and 0/1 columns (any names) from every supported format."""

    @FUZZ
    @given(content=FILES[suffix], data=st.data())
    def run(content: bytes, data: st.DataObject) -> None:
        with fresh_dir(workdir) as directory:
            path = write(directory, suffix, content)
            label_sep = data.draw(st.sampled_from([None, ",", "|", "/"]))
            result, _ = outcome(lambda: read_dataset(path, label_sep=label_sep), path)
            if result is not None:
                check_dataset(result)
            label_cols = data.draw(st.lists(names, min_size=1, max_size=3))
            result, _ = outcome(lambda: read_dataset(path, label_cols=label_cols), path)
            if result is not None:
                check_dataset(result)
                assert result.label_names == label_cols

    run()


@pytest.mark.parametrize("suffix", [*FILES, ".txt"])
def test_iter_text_batches_on_hostile_files(workdir, suffix):
    """The prediction input reader: texts only, in batches, from every format and .txt."""
    files = FILES.get(suffix, text_files)

    @FUZZ
    @given(content=files, batch_size=st.integers(1, 3))
    def run(content: bytes, batch_size: int) -> None:
        with fresh_dir(workdir) as directory:
            path = write(directory, suffix, content)
            batches, _ = outcome(lambda: iter_text_batches(path, batch_size=batch_size), path)
            if batches is not None:
                check_batches(batches, batch_size)

    run()


@FUZZ
@given(content=text_files, errors=st.sampled_from(["strict", "surrogateescape"]))
def test_iter_text_batches_on_hostile_stdin(content: bytes, errors: str):
    """Standard input decodes with the locale's error handler: surrogateescape under C/POSIX."""
    stdin = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8", errors=errors)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", stdin)
        batches, _ = outcome(lambda: iter_text_batches("-", batch_size=2), "<stdin>")
    if batches is not None:
        check_batches(batches, 2)


@settings(FUZZ, max_examples=150)  # cheap, and a bad id needs the rows before it to be good
@given(content=goemotions_files, num_labels=st.sampled_from([1, 3, 28]))
@example(content=b"ok\t" + b"9" * 5000 + b"\tid1\n", num_labels=3)  # int() refused 4300+ digits
def test_read_goemotions_on_hostile_files(workdir, content: bytes, num_labels: int):
    """Headerless GoEmotions TSV: unquoted texts, comma-separated label ids, a comment id."""
    label_names = [f"label{k}" for k in range(num_labels)]
    with fresh_dir(workdir) as directory:
        path = write(directory, ".tsv", content)
        result, _ = outcome(lambda: read_goemotions(path, label_names), path)
        if result is not None:
            check_dataset(result)
            assert result.label_names == label_names


# --- 0/1 label columns: every bad value is named with its row and column ---------------------------

ZERO_ONE = {"0": False, "1": True, "0.0": False, "1.0": True, "true": True, "False": False}
ZERO_ONE.update({" 1 ": True, "TRUE": True, " false": False})
NOT_ZERO_ONE = ["yes", "no", "-1", "2", "nan", "NaN", "inf", "-inf", "1e0", "01", "0.5", "[1]"]
UNKNOWN = ["", " "]  # an empty cell: the pair is unknown (partial labels)


@FUZZ
@given(
    columns=st.lists(
        st.lists(st.sampled_from([*ZERO_ONE, *NOT_ZERO_ONE, *UNKNOWN]), min_size=3, max_size=3),
        min_size=1,
        max_size=3,
    ),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]),
)
def test_bad_zero_one_values_name_the_row_and_column(workdir, columns, suffix):
    """NaN, inf, -1, 2, "yes" ... in a 0/1 column: the first one is named exactly; an empty cell
    is an unknown pair."""
    label_cols = [f"label {j}" for j in range(len(columns))]
    rows = [
        {"text": f"text {r}", **{c: col[r] for c, col in zip(label_cols, columns, strict=True)}}
        for r in range(3)
    ]
    with fresh_dir(workdir) as directory:
        path = directory / f"d{suffix}"
        if suffix == ".jsonl":
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        else:
            sep = "\t" if suffix == ".tsv" else ","
            table = [list(rows[0])] + [list(row.values()) for row in rows]
            buffer = io.StringIO()
            csv.writer(buffer, delimiter=sep, lineterminator="\n").writerows(table)
            path.write_text(buffer.getvalue(), encoding="utf-8")
        result, message = outcome(lambda: read_dataset(path, label_cols=label_cols), path)
    bad = [
        (j, r)
        for j, col in enumerate(columns)
        for r, v in enumerate(col)
        if v not in ZERO_ONE and v not in UNKNOWN
    ]
    if not bad:
        pairs = list(zip(label_cols, columns, strict=True))
        expected = [[c for c, col in pairs if ZERO_ONE.get(col[r])] for r in range(3)]
        assert result.labels == expected
        known = [[c for c, col in pairs if col[r] not in UNKNOWN] for r in range(3)]
        if all(len(k) == len(label_cols) for k in known):
            assert result.known is None
        else:
            assert result.known == [k if len(k) < len(label_cols) else None for k in known]
        return
    j, r = bad[0]
    assert message == (
        f"{path}: row {r + 1}: column {label_cols[j]!r}: expected 0 or 1, got {columns[j][r]!r}"
    )


# --- well-formed files read back exactly what was written --------------------------------------------

label_lists = st.lists(st.text(max_size=8), max_size=4)


def expected_names(names: list[str]) -> list[str]:
    """The reader's rule: stripped, empty names dropped, repeats kept once."""
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def write_records(path: Path, form: str, rows: list[tuple[str, list[str]]], eol: str) -> None:
    column_texts = [t for t, _ in rows]
    column_labels = [names for _, names in rows]
    if form in ("csv", "tsv"):
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter="," if form == "csv" else "\t",
            lineterminator=eol,
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow(["text", "labels"])
        writer.writerows([t, json.dumps(names)] for t, names in rows)
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    elif form == "jsonl":
        lines = [json.dumps({"text": t, "labels": names}) for t, names in rows]
        path.write_text(eol.join(lines) + eol, encoding="utf-8", newline="")
    elif form == "json":
        path.write_text(json.dumps({"text": column_texts, "labels": column_labels}), "utf-8")
    else:
        table = pa.table({"text": column_texts, "labels": column_labels})
        pq.write_table(table, path)


@FUZZ
@given(
    rows=st.lists(st.tuples(texts, label_lists), min_size=1, max_size=6),
    form=st.sampled_from(["csv", "tsv", "jsonl", "json", "parquet"]),
    eol=eols,
)
def test_well_formed_files_round_trip(workdir, rows, form, eol):
    """Any characters, any line ending: what was written is what is read, by both readers."""
    with fresh_dir(workdir) as directory:
        path = directory / f"d.{form}"
        write_records(path, form, rows, eol)
        data = read_dataset(path)
        assert data.texts == [t for t, _ in rows]
        assert data.labels == [expected_names(names) for _, names in rows]
        batches = list(iter_text_batches(path, batch_size=2))
        assert [t for b in batches for t in b] == data.texts


def csv_line(fields: list[str], sep: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=sep, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(fields)
    return buffer.getvalue()


@FUZZ
@given(
    rows=st.lists(st.tuples(texts, label_lists), min_size=1, max_size=5),
    sep=st.sampled_from([",", "\t"]),
    data=st.data(),
)
def test_a_row_with_an_extra_field_is_named(workdir, rows, sep, data):
    """A row longer than the header is an error naming it, in every row, by every reader.

    pandas used to take the extra field of a first row as an index and shift every column.
    """
    at = data.draw(st.integers(0, len(rows) - 1))
    lines = [
        csv_line([text, json.dumps(names), *(["extra"] * (k == at))], sep)
        for k, (text, names) in enumerate(rows)
    ]
    with fresh_dir(workdir) as directory:
        path = directory / ("d.tsv" if sep == "\t" else "d.csv")
        path.write_text(f"text{sep}labels\n" + "".join(lines), encoding="utf-8", newline="")
        separator = "a tab" if sep == "\t" else "a comma"
        expected = (
            f"{path}: row {at + 1}: 3 fields but the header has 2; "
            f"quote fields that contain {separator}"
        )
        assert outcome(lambda: read_dataset(path), path)[1] == expected
        assert outcome(lambda: iter_text_batches(path, batch_size=2), path)[1] == expected


REPEATS = ("are both named", "appears more than once")


def write_columns(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """One file with these column names, repeats included, in the format of its suffix."""
    if path.suffix == ".jsonl":
        pairs = [
            [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in zip(header, row, strict=True)]
            for row in rows
        ]
        path.write_text("".join("{" + ", ".join(p) + "}\n" for p in pairs), encoding="utf-8")
    elif path.suffix == ".parquet":
        columns = [pa.array([row[j] for row in rows]) for j in range(len(header))]
        pq.write_table(pa.Table.from_arrays(columns, names=header), path)
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        path.write_text("".join(csv_line(r, sep) for r in [header, *rows]), encoding="utf-8")


@FUZZ
@given(
    header=st.lists(
        st.sampled_from(["text", "joy", "anger", "labels", ""]), min_size=1, max_size=5
    ),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"]),
    data=st.data(),
)
def test_repeated_column_names_are_refused(workdir, header, suffix, data):
    """A name used twice is an error; a read never invents names (pandas renamed "joy" "joy.1")."""
    values = st.sampled_from(["0", "1"])
    rows = [[f"text {r}" if n == "text" else data.draw(values) for n in header] for r in range(2)]
    counted = [n for n in header if n or suffix in (".jsonl", ".parquet")]
    repeated = len(set(counted)) < len(counted)
    with fresh_dir(workdir) as directory:
        path = directory / f"d{suffix}"
        write_columns(path, header, rows)
        result, message = outcome(lambda: read_dataset(path), path)
    if repeated:
        assert message is not None and any(r in message for r in REPEATS), message
    elif message is not None:
        assert not any(r in message for r in REPEATS), message
    if result is not None and result.label_names is not None:  # 0/1 columns, not a labels column
        assert set(result.label_names) <= set(header)


# --- the command line: all or nothing --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".txt"])
def test_predict_writes_everything_or_nothing(tiny_run, workdir, suffix):
    """``predict -o``: the library's error, word for word, and no file; or every text, in order."""
    files = FILES.get(suffix, text_files)

    @settings(FUZZ, max_examples=20)
    @given(content=files, out_suffix=st.sampled_from([".jsonl", ".csv"]))
    def run(content: bytes, out_suffix: str) -> None:
        with fresh_dir(workdir) as directory:
            path = write(directory, suffix, content)
            out = directory / f"out{out_suffix}"
            texts, message = outcome(
                lambda: [t for b in iter_text_batches(path, batch_size=2) for t in b], path
            )
            with no_hang():
                result = invoke("predict", tiny_run, path, "-o", out, "--chunk-size", 2)
            assert "Traceback" not in result.output, result.output
            if message is not None:
                assert result.exit_code == 2, result.output
                assert result.stderr.strip().splitlines()[-1] == f"error: {message}"
                assert sorted(directory.iterdir()) == [path]  # no output, no temporary file
                return
            assert result.exit_code == 0, result.output
            assert read_predicted_texts(out) == texts

    run()


def read_predicted_texts(path: Path) -> list[str]:
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            return [row[0] for row in list(csv.reader(fh))[1:]]
    # JSON Lines ends records at "\n" only; texts may hold U+0085 or U+2028, which splitlines() splits on.
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    records = [json.loads(line) for line in lines[:-1]]
    assert all(not math.isnan(p) for r in records for p in r["probs"].values())
    return [r["text"] for r in records]


def test_cli_prints_file_contents_in_errors_as_they_are(tiny_run, tmp_path):
    """The error line was rich markup: '[/x]' raised MarkupError, ':joy:' became an emoji."""
    path = tmp_path / "in.csv"
    path.write_text("[/x],:joy:,[bold]\na,b,c\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke("predict", tiny_run, path, "-o", out)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {path}: no column 'text'; available columns: '[/x]', ':joy:', '[bold]'; "
        "pass --text-col"
    )
    assert sorted(tmp_path.iterdir()) == [path]
