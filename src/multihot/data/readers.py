"""Reading data files into texts and label-name lists.

Supported files: ``.csv``, ``.tsv`` (header row), ``.jsonl`` (one object per line), ``.json`` (a
list of objects, or an object of column lists) and ``.parquet``. Labels come either from one column
holding a list of label names per text, or from one 0/1 column per label.

A labels cell may be a real list (json, jsonl, parquet), a JSON list string (``'["joy", "love"]'``)
or a delimited string. A string that starts with ``[`` is parsed as JSON. Other strings are split
on ``label_sep`` when it is given; otherwise on ``","`` if the cell contains a comma, else on
``";"``, else on ``"|"`` (the first of these the cell contains; the rule is per cell), else the
whole cell is one label. Names are stripped, empty names dropped and repeats kept once; an empty
cell, a null or ``"[]"`` means no labels; a number becomes its ``str``.

Partial labels (a text labelled for some labels only; the others are unknown, not "no"): with a
labels list column, a ``labels_known`` column (:data:`KNOWN_COL`) lists the labels each text was
labelled for, in the forms a labels cell takes; an absent, null or empty cell means every label is
known, ``[]`` none. Every name in a row's labels must be among its known ones. With 0/1 columns,
an empty or null cell (blank in CSV/TSV, ``null`` or absent in JSON, null or NaN in parquet) is an
unknown pair. :attr:`Dataset.known` records it.

A file whose name ends in ``.gz`` (``train.jsonl.gz``, ``texts.txt.gz``) is read through gzip, in
the format of the suffix before ``.gz``; parquet, compressed inside, is not taken gzip-compressed.
Every text file is read as UTF-8 (a byte-order mark is skipped).

Files are untrusted input: every way a file can be wrong ends in a :class:`DataError` naming the
file (and the row or line and column where there is one). A CSV/TSV row with more fields than the
header, a column name used twice, a JSON object with a repeated key, text that is not valid
Unicode (lone surrogates from JSON escapes), bytes that are not UTF-8 (named by line or row and
offset) and a compressed file not named as one are errors rather than guesses.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import math
import os
import re
import sys
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from multihot.core.errors import ConfigError, DataError
from multihot.core.files import strict_loads
from multihot.data.encoding import is_empty_text
from multihot.data.labels import KNOWN_COL

logger = logging.getLogger(__name__)

SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
GZIP_SUFFIX = ".gz"
"""Ends the name of a gzip-compressed file of any of the formats but parquet."""
_SEPARATORS = (",", ";", "|")
# Keys that compare equal share a slot, so 0 also matches 0.0, False and numpy zeros.
_BINARY: dict[Any, bool] = {0: False, 1: True, "0": False, "1": True, "0.0": False, "1.0": True}
_BINARY.update({"false": False, "true": True})

PathLike = str | os.PathLike


@dataclass
class Dataset:
    """Texts and the label names of each text, as read from one file.

    Example:
        >>> data = Dataset(["so happy!", "ugh"], [["joy"], []], source="mem.jsonl")
        >>> len(data), data.subset([1]).texts
        (2, ['ugh'])
    """

    texts: list[str]
    """One non-empty string per example."""
    labels: list[list[str]]
    """The label names of each text (possibly none)."""
    source: str
    """Where the data came from (a path), for messages."""
    label_names: list[str] | None = None
    """The label order the file defines (0/1 columns, GoEmotions ids); ``None`` for label lists."""
    known: list[list[str] | None] | None = None
    """Per text, the labels it was labelled for (``None``: all of them), the other pairs unknown;
    ``None`` when every text is labelled for every label. A text's labels are among its known."""

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} label lists")
        if self.known is not None:
            if len(self.known) != len(self.texts):
                raise ValueError(f"{len(self.texts)} texts but {len(self.known)} known lists")
            if all(k is None for k in self.known):
                self.known = None
            else:
                _check_known(self.labels, self.known, self.source)
        # Data built in memory meets the rule the readers apply to files.
        for row, text in enumerate(self.texts, start=1):
            if not isinstance(text, str) or is_empty_text(text):
                what = "empty text" if isinstance(text, str) else f"a {type(text).__name__}"
                raise DataError(f"{self.source}: row {row}: {what}; expected a non-empty string")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Iterable[int]) -> Dataset:
        """The rows at these integer positions, in the order given."""
        idx = [int(i) for i in indices]
        texts, labels = [self.texts[i] for i in idx], [self.labels[i] for i in idx]
        known = None if self.known is None else [self.known[i] for i in idx]
        return Dataset(texts, labels, self.source, self.label_names, known)


def read_dataset(
    path: PathLike,
    *,
    text_col: str = "text",
    labels_col: str = "labels",
    label_cols: Sequence[str] | None = None,
    label_sep: str | None = None,
) -> Dataset:
    """Read a data file of texts and labels.

    Labels come from ``label_cols`` (0/1 columns) when given, else from the list column
    ``labels_col``; when neither exists and every column but the text is a 0/1 column, those
    columns are the labels (with a warning). Partial labels (the ``labels_known`` column, or empty
    cells of 0/1 columns) are read into :attr:`Dataset.known` (see the module docstring).

    Args:
        path: a ``.csv``, ``.tsv``, ``.jsonl``, ``.json`` or ``.parquet`` file.
        text_col: the column holding the texts.
        labels_col: the column holding a list of label names per text.
        label_cols: one 0/1 column per label; their order becomes ``label_names``.
        label_sep: the separator of delimited label strings (default: see the module docstring).

    Raises:
        DataError: a missing or unreadable file, a missing column, or a bad cell (naming the row).

    Example:
        >>> data = read_dataset("examples/goemotions/train.jsonl")
        >>> len(data), data.labels[0]
        (4000, ['desire', 'optimism'])
    """
    source = str(path)
    columns = _read_columns(path, _format(path, SUFFIXES))
    if not len(next(iter(columns.values()), [])):
        raise DataError(f"{source}: no rows")
    if text_col not in columns:
        raise _no_column(source, text_col, columns, "--text-col")
    texts = [_check_text(v, source, r, text_col) for r, v in enumerate(columns[text_col], 1)]

    if label_cols is not None:
        label_cols = [str(c) for c in label_cols]
        if not label_cols:
            raise ConfigError("label_cols is empty: give at least one 0/1 column")
        for col in label_cols:
            if col not in columns:
                raise _no_column(source, col, columns, "--label-cols")
        return _from_binary(texts, columns, label_cols, source)
    if labels_col in columns:
        cells = columns[labels_col]
        labels = [
            _parse_labels(c, label_sep, source, r, labels_col) for r, c in enumerate(cells, 1)
        ]
        known = _known_column(columns, label_sep, source) if labels_col != KNOWN_COL else None
        return Dataset(texts, labels, source, known=known)

    others = [c for c in columns if c != text_col]
    if others and all(_is_binary(columns[c]) for c in others):
        logger.warning(
            "%s: no '%s' column; using the %d 0/1 columns as labels: %s",
            source,
            labels_col,
            len(others),
            ", ".join(others),
        )
        return _from_binary(texts, columns, others, source)
    raise DataError(
        f"{source}: no label column {labels_col!r}; available columns: {_available(columns)}; "
        "pass --labels-col or --label-cols"
    )


def read_column(path: PathLike, name: str) -> list[str] | None:
    """One column of a data file, each cell as a string (``""`` for an empty one), or None where
    the file has no such column: ids to name rows by in messages and exports.

    Example:
        >>> read_column("examples/goemotions/train.jsonl", "no such column") is None
        True
    """
    columns = _read_columns(path, _format(path, SUFFIXES))
    if name not in columns:
        return None
    return ["" if v is None or v != v else str(v) for v in columns[name]]  # v != v: NaN


def iter_text_batches(
    path: PathLike, *, text_col: str = "text", batch_size: int = 8192
) -> Iterator[list[str]]:
    """Stream the texts of a file in batches, without loading the whole file.

    Besides the :data:`SUFFIXES`, a ``.txt`` file or ``"-"`` (standard input) holds one text per
    line; blank lines (empty or whitespace only: what :func:`is_empty_text` calls an empty text) are
    skipped. Gzip-compressed files (``.csv.gz``, ``.txt.gz`` ...) are streamed too. The file, its
    format and its text column are checked when this function is called, before the first batch is
    asked for (``.json`` is loaded whole then).

    Args:
        path: a data file, a ``.txt`` file, or ``"-"`` for standard input.
        text_col: the column holding the texts (unused for ``.txt`` and stdin).
        batch_size: texts per batch; every batch but the last has exactly this many.

    Returns:
        An iterator of lists of texts, in file order.

    Raises:
        DataError: as :func:`read_dataset` (row numbers count across batches), or ``no rows``.

    Example:
        >>> batches = iter_text_batches("examples/goemotions/test.jsonl", batch_size=128)
        >>> [len(b) for b in batches][:2]
        [128, 128]
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if str(path) == "-":
        return _batched(_lines("-", "<stdin>"), batch_size, "<stdin>")
    source = str(path)
    fmt = _format(path, (*SUFFIXES, ".txt"))
    if fmt == ".txt":
        return _batched(_lines(path, source), batch_size, source)
    values: Iterator[Any]
    with _reading(source):  # the column names, read now so that a wrong text_col fails now
        if fmt in (".csv", ".tsv"):
            names = _csv_header(path, fmt)
            values = _csv_values(path, fmt, names, text_col, batch_size)
        elif fmt == ".parquet":
            names = _unique_names(pq.read_schema(path).names, source)
            values = _parquet_values(path, text_col, batch_size)
        elif fmt == ".jsonl":
            with closing(_jsonl_records(path)) as records:
                names = list(next(records, (0, {text_col: None}))[1])  # empty: "no rows" later
            values = (obj.get(text_col) for _, obj in _jsonl_records(path))
        else:  # .json cannot be streamed
            columns = _read_columns(path, fmt)
            names = list(columns) or [text_col]
            values = iter(columns.get(text_col, []))
    if text_col not in names:
        raise _no_column(source, text_col, names, "--text-col")
    checked = (_check_text(v, source, r, text_col) for r, v in enumerate(values, 1))
    return _batched(checked, batch_size, source)


def read_goemotions(path: PathLike, label_names: Sequence[str]) -> Dataset:
    """Read a GoEmotions TSV: no header, ``text<TAB>comma-separated label ids<TAB>comment id``.

    Args:
        path: ``train.tsv``, ``dev.tsv`` or ``test.tsv`` of the GoEmotions release.
        label_names: the names of ``labels.txt``; label id ``k`` is ``label_names[k]``.

    Returns:
        A :class:`Dataset` whose ``label_names`` are ``label_names``, in that order.

    Example:
        >>> names = Path("goemotions/labels.txt").read_text().split()  # the official release
        >>> read_goemotions("goemotions/train.tsv", names).labels[0]
        ['neutral']
    """
    source, names = str(path), list(label_names)
    _format(path, (".tsv",))
    texts: list[str] = []
    labels: list[list[str]] = []
    with _reading(source, where=_goemotions_row), _open(path, newline="") as f:
        for r, fields in _tsv_rows(f, source):
            if len(fields) < 2:
                raise DataError(f"{source}: row {r}: expected text<TAB>label ids<TAB>comment id")
            texts.append(_check_text(fields[0], source, r, "text"))
            ids = fields[1].split(",")
            if not all(_is_label_id(i, len(names)) for i in ids):
                raise DataError(
                    f"{source}: row {r}: label ids {fields[1][:60]!r}: expected comma-separated "
                    f"integers from 0 to {len(names) - 1}"
                )
            labels.append(list(dict.fromkeys(names[int(i)] for i in ids)))
    if not texts:
        raise DataError(f"{source}: no rows")
    return Dataset(texts, labels, source, names)


def _tsv_rows(f, source: str) -> Iterator[tuple[int, list[str]]]:
    """``(row, fields)`` of a GoEmotions TSV; a row the csv module cannot read names its number."""
    # QUOTE_NONE: the texts hold bare double quotes that are not CSV quoting.
    reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    row = 0
    while True:
        row += 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field over csv.field_size_limit()
            raise DataError(f"{source}: row {row}: cannot parse: {e}") from None
        yield row, fields


def _is_label_id(text: str, count: int) -> bool:
    """Whether ``text`` is an ASCII decimal below ``count``."""
    if not (text.isascii() and text.isdigit()):
        return False
    digits = text.lstrip("0") or "0"
    # int() refuses strings of over 4300 digits; anything longer than count's digits is too big.
    return len(digits) <= len(str(count)) and int(digits) < count


# --- files -----------------------------------------------------------------------------------


def _format(path: PathLike, allowed: Sequence[str]) -> str:
    """The file's format: its lower-case suffix (the one before a ``.gz``), once the file is known
    to exist, the suffix is allowed, and the first bytes agree with the name about compression."""
    if not Path(path).is_file():
        raise DataError(f"{path}: " + ("is a directory" if Path(path).is_dir() else "no such file"))
    fmt, gzipped = _suffix(path)
    if fmt not in allowed:
        shown = fmt + GZIP_SUFFIX if gzipped else fmt
        raise DataError(
            f"{path}: unsupported file type {shown or '(none)'!r}; expected one of "
            + ", ".join(allowed)
            + f" (or gzip-compressed, ending in {GZIP_SUFFIX})"
        )
    try:
        with open(path, "rb") as f:
            kind = _compression(f.read(16))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if gzipped:
        if fmt == ".parquet":
            raise DataError(
                f"{path}: a gzip-compressed parquet file; parquet compresses its columns itself: "
                "decompress it (gunzip) and read the .parquet file"
            )
        if kind is None:
            raise DataError(f"{path}: named {GZIP_SUFFIX} but not gzip-compressed")
        if kind != "gzip":
            raise DataError(
                f"{path}: named {GZIP_SUFFIX} but looks {kind}-compressed; decompress it first"
            )
    elif kind == "gzip" and fmt != ".parquet":
        gz_name = Path(path).name + GZIP_SUFFIX
        raise DataError(f"{path}: looks gzip-compressed; name it {gz_name} or decompress it")
    elif kind is not None:
        raise DataError(f"{path}: looks {kind}-compressed; decompress it first")
    return fmt


def _suffix(path: PathLike) -> tuple[str, bool]:
    """``(suffix, gzipped)``: the lower-case suffix before any ``.gz``, and whether there is one."""
    name = Path(path).name.lower()
    gzipped = name.endswith(GZIP_SUFFIX)
    return Path(name.removesuffix(GZIP_SUFFIX) if gzipped else name).suffix, gzipped


# The first bytes of compressed files. bz2's take in the magic of its first block (or of the end
# of an empty stream), so that a text beginning "BZh9" is still a text; the other magics hold
# bytes that no text file begins with (invalid UTF-8, or control characters).
_MAGIC = {
    "gzip": re.compile(rb"\x1f\x8b"),
    "bz2": re.compile(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)"),
    "xz": re.compile(rb"\xfd7zXZ\x00"),
    "zstd": re.compile(rb"\x28\xb5\x2f\xfd"),
    "zip": re.compile(rb"PK\x03\x04"),
}


def _compression(head: bytes) -> str | None:
    """The compression whose magic number ``head`` (a file's first bytes) starts with, if any."""
    return next((kind for kind, magic in _MAGIC.items() if magic.match(head)), None)


def _open_bytes(path: PathLike) -> gzip.GzipFile | io.BufferedReader:
    """A data file's bytes, decompressed when its name ends in ``.gz``."""
    return gzip.open(path, "rb") if _suffix(path)[1] else open(path, "rb")


def _open(path: PathLike, newline: str | None = None) -> IO[str]:
    """A data file as text, the way every reader of this module opens one.

    UTF-8, a byte-order mark skipped, decompressed (as it is read) when the name ends in ``.gz``.
    ``newline`` is :func:`open`'s: ``""`` for the csv module and pandas, which see line endings
    themselves; ``None`` (universal newlines) for files read line by line.
    """
    return io.TextIOWrapper(_open_bytes(path), encoding="utf-8-sig", newline=newline)


# pandas' message for a row longer than the first (the header: pandas reads no header itself).
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")

Where = Callable[[IO[bytes]], str]
"""Names the line or row that the end of a file's first bytes falls in ("line 3", "row 2")."""


@contextmanager
def _reading(source: str, where: Where | None = None):
    """Turn the parsers' own errors into one-line DataErrors that name the file.

    Args:
        source: the path of the file being read.
        where: how the file counts lines or rows, to name where a byte is not UTF-8; by default
            data rows for CSV/TSV, lines for the other formats.
    """
    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: no rows") from None
    except UnicodeDecodeError as e:
        raise _not_utf8_error(source, e, where or _where_by_suffix(source)) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # the decompressor, while reading
        raise DataError(f"{source}: corrupt or truncated gzip data ({_first_line(e)})") from None
    except pd.errors.ParserError as e:
        if ragged := _RAGGED.search(str(e)):
            raise _ragged_error(source, ragged.groups()) from None
        raise DataError(f"{source}: cannot parse: {_first_line(e)}") from None
    except (pa.ArrowException, csv.Error) as e:
        raise DataError(f"{source}: cannot parse: {_first_line(e)}") from None


def _ragged_error(source: str, pandas_numbers: tuple[str, ...]) -> DataError:
    """The error for a CSV/TSV row with more fields than the header, naming the data row.

    pandas counts blank lines but not quoted line breaks, so its "line" is neither a line nor a
    row; the row is found again with the csv module (same quoting rules), pandas' count kept
    as a fallback.
    """
    header, line, fields = pandas_numbers
    sep = _separator(source)
    where = f"line {line}"
    try:
        with _open(source, newline="") as f:
            rows = _csv_rows(f, sep)
            width = len(next(rows, []))
            for row, cells in enumerate(rows, 1):
                if len(cells) > width:
                    where, header, fields = f"row {row}", str(width), str(len(cells))
                    break
    except (OSError, UnicodeDecodeError, EOFError, zlib.error, csv.Error):
        pass  # e.g. a field over csv.field_size_limit()
    separator = "a tab" if sep == "\t" else "a comma"
    return DataError(
        f"{source}: {where}: {fields} fields but the header has {header}; "
        f"quote fields that contain {separator}"
    )


def _separator(source: str) -> str:
    return "\t" if _suffix(source)[0] == ".tsv" else ","


def _csv_rows(f: IO[str], sep: str) -> Iterator[list[str]]:
    """A CSV/TSV file's rows as this module numbers them: the header first, blank lines left out
    (pandas skips them), a quoted line break inside its row."""
    return (cells for cells in csv.reader(f, delimiter=sep) if cells)


# --- bytes that are not UTF-8 ----------------------------------------------------------------


def _not_utf8_error(source: str, err: UnicodeDecodeError, where: Where) -> DataError:
    """The error for a file that is not UTF-8: the line or row, and offset, of its first bad byte.

    The decoder's own offset counts from the start of the chunk it was decoding, which no user
    can find; the file is read again to find the first byte that is not UTF-8 (the one every
    reader stops at) and then up to that byte, counting lines or rows.
    """
    try:
        found = _first_bad_byte(source)
    except (OSError, EOFError, zlib.error):
        found = None
    if found is None:  # the file changed since, or the error was not the file's own
        return DataError(f"{source}: not UTF-8 text ({err.reason}); {_UTF8_HINT}")
    offset, byte, head = found
    try:
        with _open_bytes(source) as f:
            place = where(io.BufferedReader(_Marked(f, offset))) + ": "
    except (OSError, EOFError, zlib.error, csv.Error):  # e.g. a field over csv.field_size_limit()
        place = ""
    return DataError(f"{source}: {place}{_not_utf8(byte, offset, head, _suffix(source)[1])}")


_UTF8_HINT = "expected UTF-8 (it may be Windows-1252 / Latin-1; re-save it as UTF-8)"


def _not_utf8(byte: int, offset: int, head: bytes, decompressed: bool = False) -> str:
    """What is wrong with a byte that is not UTF-8 at ``offset`` of a file starting ``head``."""
    at = f"at offset {offset}" + (" of the decompressed data" if decompressed else "")
    hint = _UTF8_HINT
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        hint = "expected UTF-8 (it looks like UTF-16; re-save it as UTF-8)"
    return f"not UTF-8 text (byte 0x{byte:02x} {at}); {hint}"


def _first_bad_byte(path: PathLike) -> tuple[int, int, bytes] | None:
    """``(offset, byte, first bytes of the file)`` of the first byte that is not UTF-8, if any."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    start, head = 0, b""  # start: the offset of the chunk read last
    with _open_bytes(path) as f:
        while True:
            chunk = f.read(1 << 20)
            head = head or chunk[:4]
            pending = len(decoder.getstate()[0])  # the end of the chunk before, not yet a character
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:  # e.object: the pending bytes, then the chunk
                return start - pending + e.start, e.object[e.start], head
            if not chunk:
                return None
            start += len(chunk)


class _Marked(io.RawIOBase):
    """The first ``size`` bytes of a stream, then an ``x``.

    The ``x`` marks where the bytes stop in the lines or rows that a counter parses, so a counter
    needs no rule of its own for a stop at the end of a line or inside a quoted field.
    """

    def __init__(self, raw: io.BufferedIOBase, size: int):
        self._raw, self._left, self._mark = raw, size, b"x"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(min(len(buffer), self._left)) if self._left else b""
        self._left = self._left - len(data) if data else 0  # 0 too if the stream ends early
        if not data:
            data, self._mark = self._mark, b""
        buffer[: len(data)] = data
        return len(data)


def _where_by_suffix(source: str) -> Where:
    if _suffix(source)[0] in (".csv", ".tsv"):
        return partial(_csv_row, sep=_separator(source))
    return _line


def _line(prefix: IO[bytes]) -> str:
    """The line of the mark, lines ending as the line readers end them (universal newlines)."""
    return f"line {sum(1 for _ in io.TextIOWrapper(prefix, encoding='utf-8-sig'))}"


def _csv_row(prefix: IO[bytes], sep: str) -> str:
    """The data row of the mark, numbered as the other CSV/TSV errors number rows."""
    rows = _csv_rows(io.TextIOWrapper(prefix, encoding="utf-8-sig", newline=""), sep)
    count = sum(1 for _ in rows)  # the header included
    return f"row {count - 1}" if count > 1 else "header row"


def _goemotions_row(prefix: IO[bytes]) -> str:
    """The row of the mark in a headerless GoEmotions TSV, numbered as :func:`_tsv_rows` does."""
    text = io.TextIOWrapper(prefix, encoding="utf-8-sig", newline="")
    rows = csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
    return f"row {sum(1 for _ in rows)}"


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _csv_kwargs(fmt: str) -> dict[str, Any]:
    # Everything as str and no NA guessing, so a text "NA" or "null" stays text. header=None: the
    # header is read as a row like the others, so a row with more fields than the header is an
    # error (with a header pandas would make the extra field an index, shifting every column)
    # and a repeated column name is seen (pandas would rename it "name.1"). pandas reads a file
    # that _open opened: decoding and decompression are _open's.
    sep = "\t" if fmt == ".tsv" else ","
    return {"sep": sep, "header": None, "dtype": str, "keep_default_na": False}


def _header(cells: list[Any], source: str) -> list[str]:
    """Column names from a header row: empty ones named as pandas does, repeated ones refused."""
    names = [c if isinstance(c, str) and c else f"Unnamed: {j}" for j, c in enumerate(cells)]
    return _unique_names(names, source)


def _unique_names(names: list[str], source: str) -> list[str]:
    """``names``, once no column name is used twice."""
    first: dict[str, int] = {}
    for j, name in enumerate(names):
        if name in first:
            raise DataError(
                f"{source}: columns {first[name] + 1} and {j + 1} are both named {name!r}; "
                "give each column its own name"
            )
        first[name] = j
    return names


def _csv_header(path: PathLike, fmt: str) -> list[str]:
    """The column names of a CSV/TSV file, from its first row only."""
    with _open(path, newline="") as f:
        first = pd.read_csv(f, nrows=1, **_csv_kwargs(fmt))
    if first.empty:
        raise DataError(f"{path}: no rows")
    return _header(first.iloc[0].tolist(), str(path))


def _json_reason(err: ValueError, position: bool = True) -> str:
    """What was wrong with a JSON text, in a few words (no advice meant for Python programmers).

    ``position`` adds the line and column of a syntax error, for texts of more than one line.
    """
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} (line {err.lineno} column {err.colno})" if position else err.msg
    return str(err).split(";")[0]


def _read_columns(path: PathLike, fmt: str) -> dict[str, list]:
    """The whole file as ``{column: values}``, all columns of equal length."""
    source = str(path)
    with _reading(source):
        if fmt in (".csv", ".tsv"):
            with _open(path, newline="") as f:
                df = pd.read_csv(f, **_csv_kwargs(fmt))
            if df.empty:
                raise DataError(f"{source}: no rows")
            names = _header(df.iloc[0].tolist(), source)
            return {name: df[j].tolist()[1:] for j, name in enumerate(names)}
        if fmt == ".parquet":
            _unique_names(pq.read_schema(path).names, source)  # read_table fails on repeats
            return pq.read_table(path).to_pydict()
        if fmt == ".jsonl":
            return _records_to_columns(_jsonl_records(path), source)
        with _open(path) as f:
            text = f.read()
    try:
        data = strict_loads(text)
    except ValueError as e:
        raise DataError(f"{source}: invalid JSON: {_json_reason(e)}") from None
    if isinstance(data, list):
        return _records_to_columns(enumerate(data, 1), source)
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        lengths = sorted({len(v) for v in data.values()})
        if len(lengths) > 1:
            raise DataError(f"{source}: the column lists have different lengths: {lengths}")
        return data
    raise DataError(f"{source}: expected a JSON list of objects or an object of column lists")


def _records_to_columns(records: Iterable[tuple[int, Any]], source: str) -> dict[str, list]:
    columns: dict[str, list] = {}
    for r, rec in records:
        if not isinstance(rec, dict):
            raise DataError(f"{source}: row {r}: expected a JSON object, got {type(rec).__name__}")
        for key in rec:
            if key not in columns:
                columns[key] = [None] * (r - 1)  # absent from the earlier rows
        for key, values in columns.items():
            values.append(rec.get(key))
    return columns


def _jsonl_records(path: PathLike) -> Generator[tuple[int, dict], None, None]:
    """``(row, object)`` per non-blank line; a line that is not a JSON object is an error."""
    row = 0
    with _reading(str(path)), _open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = strict_loads(line)
            except ValueError as e:
                reason = _json_reason(e, position=False)
                raise DataError(f"{path}: line {line_no}: invalid JSON: {reason}") from None
            if not isinstance(obj, dict):
                kind = type(obj).__name__
                raise DataError(f"{path}: line {line_no}: expected a JSON object, got {kind}")
            row += 1
            yield row, obj


def _csv_values(
    path: PathLike, fmt: str, names: list[str], col: str, batch_size: int
) -> Iterator[Any]:
    """The values of column ``col`` after the header row, read ``batch_size`` rows at a time.

    Every column is parsed (no ``usecols``) so that a row with too many fields is an error here
    as it is in :func:`read_dataset`.
    """
    j = names.index(col)
    kwargs = _csv_kwargs(fmt)
    with (
        _reading(str(path)),
        _open(path, newline="") as f,
        pd.read_csv(f, chunksize=batch_size, **kwargs) as reader,
    ):
        skip = 1  # the header row
        for chunk in reader:
            yield from chunk[j].tolist()[skip:]
            skip = 0


def _parquet_values(path: PathLike, col: str, batch_size: int) -> Iterator[Any]:
    with _reading(str(path)), pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=batch_size, columns=[col]):
            yield from batch.column(0).to_pylist()


def _lines(path: PathLike, source: str) -> Iterator[str]:
    """Non-blank lines without their line ending, from a file or (``"-"``) stdin.

    A blank line (an empty text) is skipped rather than refused: it is how a text file ends, or
    separates paragraphs, and JSONL and CSV skip blank lines too.
    """
    lines = _stdin_lines(source) if str(path) == "-" else _file_lines(path, source)
    for line_no, line in enumerate(lines, 1):
        text = line.rstrip("\r\n").removeprefix("\ufeff")
        if not is_empty_text(text):
            yield _check_unicode(text, f"{source}: line {line_no}")


def _file_lines(path: PathLike, source: str) -> Iterator[str]:
    with _reading(source), _open(path) as f:
        yield from f


def _stdin_lines(source: str) -> Iterator[str]:
    """The lines of standard input, decoded one line at a time where it is UTF-8 bytes.

    sys.stdin's own decoder would name a bad byte by its offset in a chunk; decoded here, it is
    named by its line. The lines end at line feeds, as sys.stdin's do on POSIX; the decoding
    errors handler is sys.stdin's (surrogateescape under a C locale).
    """
    stdin = sys.stdin
    raw = getattr(stdin, "buffer", None)
    encoding = getattr(stdin, "encoding", None) or "utf-8"
    if raw is None or codecs.lookup(encoding).name != "utf-8":  # e.g. io.StringIO
        yield from stdin
        return
    errors = getattr(stdin, "errors", None) or "strict"
    offset, head = 0, b""
    for line_no, data in enumerate(raw, 1):
        if line_no == 1:
            head = data[:4]
            if kind := _compression(data[:16]):
                raise DataError(f"{source}: looks {kind}-compressed; decompress it first")
        try:
            yield data.decode("utf-8", errors)
        except UnicodeDecodeError as e:
            byte = data[e.start]
            where = f"{source}: line {line_no}"
            raise DataError(f"{where}: {_not_utf8(byte, offset + e.start, head)}") from None
        offset += len(data)


def _batched(texts: Iterator[str], batch_size: int, source: str) -> Iterator[list[str]]:
    batch: list[str] = []
    any_rows = False
    for text in texts:
        batch.append(text)
        any_rows = True
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
    if not any_rows:
        raise DataError(f"{source}: no rows")


# --- columns and cells -----------------------------------------------------------------------


def _available(columns: Iterable[Any]) -> str:
    names = [str(c) for c in columns]
    shown = ", ".join(repr(c) for c in names[:20]) or "(none)"
    return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def _no_column(source: str, col: str, columns: Iterable[Any], flag: str) -> DataError:
    return DataError(
        f"{source}: no column {col!r}; available columns: {_available(columns)}; pass {flag}"
    )


def _check_unicode(value: str, where: str) -> str:
    """``value``, if it can be written as UTF-8.

    JSON escapes (``"\\ud800"``) and stdin decoded with ``surrogateescape`` can give lone
    surrogates, which no tokenizer or output file accepts.
    """
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise DataError(
                f"{where}: not valid Unicode: lone surrogate {value[e.start]!r} at character "
                f"{e.start + 1}; expected UTF-8 text"
            ) from None
    return value


def _check_text(value: Any, source: str, row: int, col: str) -> str:
    if isinstance(value, str):
        if not is_empty_text(value):
            return _check_unicode(value, f"{source}: row {row}: column {col!r}")
        raise DataError(f"{source}: row {row}: column {col!r}: empty text")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError(f"{source}: row {row}: column {col!r}: missing text")
    raise DataError(f"{source}: row {row}: column {col!r}: expected a string, got {value!r}")


def _is_null(value: Any) -> bool:
    """An empty cell: None, NaN (parquet, pandas) or a blank string (CSV/TSV)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _binary_column(values: Sequence[Any]) -> tuple[np.ndarray | None, int | None]:
    """``(cells, None)`` for a 0/1 column, each cell 1, 0 or -1 (empty: unknown), else
    ``(None, index of the first other value)``."""
    cells: list[int] = []
    for v in values:
        if _is_null(v):
            cells.append(-1)
            continue
        try:
            b = _BINARY.get(v.strip().lower() if isinstance(v, str) else v)
        except TypeError:  # unhashable, e.g. a list
            b = None
        if b is None:
            return None, len(cells)
        cells.append(int(b))
    return np.array(cells, dtype=np.int8), None


def _is_binary(values: Sequence[Any]) -> bool:
    """Whether a column is a 0/1 column with at least one value (a blank column is not)."""
    cells, _ = _binary_column(values)
    return cells is not None and bool((cells >= 0).any())


def _from_binary(texts: list[str], columns: dict, names: list[str], source: str) -> Dataset:
    if len(set(names)) != len(names):
        raise DataError(f"{source}: the label columns repeat a name: {names}")
    for name in names:
        _check_unicode(name, f"{source}: column {name!r}")
    cells = np.zeros((len(texts), len(names)), dtype=np.int8)
    for j, col in enumerate(names):
        column, bad = _binary_column(columns[col])
        if column is None:
            assert bad is not None
            value = columns[col][bad]
            raise DataError(
                f"{source}: row {bad + 1}: column {col!r}: expected 0 or 1, got {value!r}"
            )
        cells[:, j] = column
    labels = [[names[j] for j in np.flatnonzero(row == 1)] for row in cells]
    known: list[list[str] | None] | None = None
    if (cells < 0).any():
        known = [
            None if (row >= 0).all() else [names[j] for j in np.flatnonzero(row >= 0)]
            for row in cells
        ]
    return Dataset(texts, labels, source, list(names), known)


def _known_column(columns: dict, sep: str | None, source: str) -> list[list[str] | None] | None:
    """The ``labels_known`` column's lists (None for an empty cell: every label known), or None
    without the column."""
    if KNOWN_COL not in columns:
        return None
    return [
        None if _is_null(cell) else _parse_labels(cell, sep, source, r, KNOWN_COL)
        for r, cell in enumerate(columns[KNOWN_COL], 1)
    ]


def _check_known(labels: list[list[str]], known: list[list[str] | None], source: str) -> None:
    """Refuse a row whose labels are not all among its known labels."""
    for row, (names, known_names) in enumerate(zip(labels, known, strict=True), start=1):
        if known_names is None:
            continue
        if not isinstance(known_names, list):
            raise DataError(
                f"{source}: row {row}: column {KNOWN_COL!r}: expected a list of label names or "
                f"null, got {known_names!r}"
            )
        allowed = set(known_names)
        missing = [n for n in names if n not in allowed]
        if missing:
            raise DataError(
                f"{source}: row {row}: label {missing[0]!r} is in its labels but not in "
                f"{KNOWN_COL!r} ({', '.join(map(repr, known_names)) or 'none'}); a text's labels "
                f"must be among the labels it is labelled for"
            )


def _parse_labels(cell: Any, sep: str | None, source: str, row: int, col: str) -> list[str]:
    """One labels cell to a list of label names (the rule is in the module docstring)."""
    where = f"{source}: row {row}: column {col!r}"
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    if isinstance(cell, str):
        text = cell.strip()
        if text.startswith("["):
            try:
                items = strict_loads(text)
            except ValueError as e:
                raise DataError(
                    f"{where}: malformed JSON list {text[:60]!r}: {_json_reason(e, position=False)} "
                    "(a cell that starts with '[' is read as JSON)"
                ) from None
        else:
            sep = sep if sep is not None else next((s for s in _SEPARATORS if s in text), None)
            items = text.split(sep) if sep else [text]
    elif isinstance(cell, (list, tuple, np.ndarray)):
        items = list(cell)
    elif isinstance(cell, (int, float, np.number)) and not isinstance(cell, bool):
        items = [cell]  # one label given as a number
    else:
        raise DataError(f"{where}: expected a list of label names, got {cell!r}")
    names = []
    for item in items:
        if isinstance(item, (list, dict)):
            raise DataError(f"{where}: expected a label name, got {item!r}")
        name = "" if item is None else str(item).strip()
        if name:
            names.append(_check_unicode(name, where))
    return list(dict.fromkeys(names))
