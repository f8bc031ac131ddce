"""``--write-cleaned``: a copy of DATA with the audit's top label issues dropped or flipped.

The copy keeps every row and column of DATA as it was (ids, metadata, the order of rows) except
what the fix changes: ``drop`` leaves out the rows of the chosen issues, ``flip`` turns each chosen
issue's label to the other value. Labels keep the form DATA gives them: a list stays a list, a
JSON list string a JSON list string, a delimited string a delimited string (with the column's
separator), a 0/1 column a 0/1 column in the same spelling (``1``, ``1.0``, ``true``, a boolean).

Partial labels stay as DATA gives them: the ``labels_known`` column (or the empty cells of 0/1
columns) is copied untouched, and since the audit never reports an unknown pair, a flipped pair
was known and stays known (an issue on an unknown pair is refused).

The format of the copy is OUT's suffix (``.jsonl``, ``.json``, ``.csv``, ``.tsv``, ``.parquet``);
in a CSV or TSV a list or an object becomes a JSON string (which the readers read back as a
list). The copy is written to a temporary file renamed into place, so an error leaves no file;
DATA itself is never written, ``force`` or not.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from multihot.core.errors import ConfigError, DataError, MultihotError
from multihot.core.files import strict_loads, temp_file
from multihot.data import readers
from multihot.data.readers import Dataset, PathLike, read_dataset
from multihot.quality.findings import LabelIssue

logger = logging.getLogger(__name__)

Fix = Literal["drop", "flip"]
FIXES: tuple[Fix, ...] = ("drop", "flip")
OUTPUT_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")

_FLIPPED = {"0": "1", "1": "0", "0.0": "1.0", "1.0": "0.0", "false": "true", "true": "false"}
"""The other value of each spelling of a 0/1 cell the readers accept (lower-cased)."""


def write_cleaned(
    data_path: PathLike,
    out: PathLike,
    issues: Sequence[LabelIssue],
    *,
    fix: Fix,
    min_score: float | None = None,
    top: int | None = None,
    force: bool = False,
    text_col: str = "text",
    labels_col: str = "labels",
    label_cols: Sequence[str] | None = None,
    label_sep: str | None = None,
) -> dict[str, Any]:
    """Write a copy of DATA with the chosen label issues fixed.

    The chosen issues are those with a score of at least ``min_score``, and of them the ``top``
    highest scored (all of them when neither is given).

    Args:
        data_path: DATA, the file the issues were found in (read as :func:`read_dataset` reads it,
            with ``text_col``, ``labels_col``, ``label_cols`` and ``label_sep``).
        out: the copy; its suffix is its format. Never DATA (refused, even with ``force``).
        issues: the audit's label issues of DATA.
        fix: ``drop`` the rows of the chosen issues, or ``flip`` their labels.
        min_score: the lowest score of an issue to fix.
        top: how many issues to fix at most, highest score first.
        force: replace an existing ``out``.

    Returns:
        What was done: ``source``, ``out``, ``format``, ``fix``, ``issues`` (how many were
        chosen), ``rows_in``, ``rows_out``, ``rows_dropped``, ``labels_flipped``,
        ``rows_changed``.

    Raises:
        ConfigError: an unknown ``fix``, a negative ``top``.
        MultihotError: ``out`` is DATA, exists (without ``force``), or cannot be written there.
        DataError: DATA cannot be read, or an issue is not of DATA (another text or label at its
            row), or dropping would leave no rows.

    Example:
        >>> report = write_cleaned("train.jsonl", "train.cleaned.jsonl", result.issues,
        ...                        fix="flip", min_score=0.9)
        >>> report["labels_flipped"]
        42
    """
    if fix not in FIXES:
        raise ConfigError(f"fix must be one of {', '.join(FIXES)}, got {fix!r}")
    if top is not None and top < 0:
        raise ConfigError(f"top must be 0 or more, got {top}")
    fmt = check_cleaned_output(data_path, out, force=force)
    data = read_dataset(
        data_path,
        text_col=text_col,
        labels_col=labels_col,
        label_cols=label_cols,
        label_sep=label_sep,
    )
    records, schema = _read_records(data_path)
    if len(records) != len(data):  # the same file read twice; only if it changed in between
        raise DataError(f"{data_path}: changed while it was read; run again")
    chosen = select_issues(issues, min_score=min_score, top=top)
    for issue in chosen:
        _check_issue(issue, data)
    report: dict[str, Any] = {"source": str(data_path), "out": str(out), "format": fmt[1:]}
    report.update(fix=fix, issues=len(chosen), rows_in=len(records))
    if fix == "drop":
        dropped = {issue.row for issue in chosen}
        if len(dropped) == len(records):
            raise DataError(f"{data_path}: dropping the rows of {len(chosen)} issues leaves none")
        records = [rec for row, rec in enumerate(records) if row not in dropped]
        report.update(rows_dropped=len(dropped), labels_flipped=0, rows_changed=0)
    else:
        labels = _LabelColumn(data, records, labels_col, label_sep)
        flipped = {(issue.row, issue.label): issue.given for issue in chosen}
        for (row, label), given in flipped.items():
            records[row] = labels.flip(records[row], row, label, bool(given))
        report.update(rows_dropped=0, labels_flipped=len(flipped))
        report.update(rows_changed=len({row for row, _ in flipped}))
    report["rows_out"] = len(records)
    _write_records(Path(out), fmt, records, schema)
    logger.info("%s: %s", out, report)
    return report


def check_cleaned_output(data_path: PathLike, out: PathLike, *, force: bool = False) -> str:
    """The format (a suffix of :data:`OUTPUT_SUFFIXES`) of the cleaned copy ``out`` of DATA, once
    ``out`` is known to be writable without harm.

    Raises:
        MultihotError: ``out`` is DATA (by name, link or hard link), a directory, in a directory
            that does not exist, of an unsupported format, or exists and ``force`` is not given.
    """
    path, source = Path(out), Path(data_path)
    if path.resolve() == source.resolve() or (
        path.exists() and source.exists() and os.path.samefile(path, source)
    ):
        raise MultihotError(
            f"{path}: is DATA ({data_path}); the cleaned copy never replaces the data it was "
            "made from: choose another file name"
        )
    fmt = path.suffix.lower()
    if fmt not in OUTPUT_SUFFIXES:
        raise MultihotError(
            f"{path}: unsupported format for the cleaned copy; expected a name ending in "
            + ", ".join(OUTPUT_SUFFIXES)
        )
    if path.is_dir():
        raise MultihotError(f"{path}: is a directory; expected a file name for the cleaned copy")
    if not path.parent.is_dir():
        raise MultihotError(f"{path}: directory {path.parent} does not exist; create it first")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise MultihotError(f"{path}: exists and is not a regular file")
        if not force:
            raise MultihotError(
                f"{path}: exists; replace it with --force (force=True in Python), or choose "
                "another file name"
            )
    return fmt


def select_issues(
    issues: Sequence[LabelIssue], *, min_score: float | None = None, top: int | None = None
) -> list[LabelIssue]:
    """The issues scored at least ``min_score``, highest score first, at most ``top`` of them.

    Example:
        >>> issues = [LabelIssue(0, "joy", 0, 0.9, 0.9, 0.5, "a"),
        ...           LabelIssue(1, "joy", 1, 0.4, 0.1, 0.5, "b")]
        >>> [i.row for i in select_issues(issues, min_score=0.5)]
        [0]
    """
    ranked = sorted(issues, key=lambda issue: -issue.score)  # stable: ties keep their order
    if min_score is not None:
        ranked = [issue for issue in ranked if issue.score >= min_score]
    return ranked if top is None else ranked[:top]


def _check_issue(issue: LabelIssue, data: Dataset) -> None:
    """Refuse an issue that is not of ``data``: cleaning another file's rows would damage it."""
    where = f"{data.source}: issue at row {issue.row} (0-based), label {issue.label!r}"
    if not 0 <= issue.row < len(data):
        raise DataError(f"{where}: the data has {len(data)} rows; the issues are of another file")
    if issue.text != data.texts[issue.row]:
        raise DataError(f"{where}: the row holds another text; the issues are of another file")
    if data.label_names is not None and issue.label not in data.label_names:
        raise DataError(f"{where}: no such label column; the issues are of another file")
    known = None if data.known is None else data.known[issue.row]
    if known is not None and issue.label not in known:
        raise DataError(
            f"{where}: the row is not labelled for that label (partial labels): an unknown pair "
            "is never an issue; the issues are of another version of the file"
        )
    given = int(issue.label in data.labels[issue.row])
    if given != issue.given:
        raise DataError(
            f"{where}: the issue says the label is given {issue.given}, the data says {given}; "
            "the issues are of another version of the file"
        )


# --- reading ---------------------------------------------------------------------------------


def _read_records(path: PathLike) -> tuple[list[dict[str, Any]], pa.Schema | None]:
    """DATA's rows as objects, in order, each as the file gives it (a JSON object keeps its own
    keys), and the parquet schema to write the copy with when DATA is parquet."""
    fmt = readers._format(path, readers.SUFFIXES)
    if fmt == ".jsonl":
        return [obj for _, obj in readers._jsonl_records(path)], None
    if fmt == ".json":
        with readers._reading(str(path)), readers._open(path) as f:
            data = strict_loads(f.read())  # read_dataset parsed it already: it parses
        if isinstance(data, list):
            return data, None
    schema = pq.read_schema(path) if fmt == ".parquet" else None
    columns = readers._read_columns(path, fmt)
    rows = len(next(iter(columns.values()), []))
    return [{name: values[i] for name, values in columns.items()} for i in range(rows)], schema


# --- labels ----------------------------------------------------------------------------------


class _LabelColumn:
    """Flips labels in rows, in the form DATA gives them (see the module docstring)."""

    def __init__(
        self, data: Dataset, records: list[dict[str, Any]], col: str, sep: str | None
    ) -> None:
        self.binary = data.label_names is not None
        self.col, self.sep, self.source = col, sep, data.source
        self.labels = list(data.labels)  # rows flipped twice see the first flip
        cells = [] if self.binary else [rec.get(col) for rec in records]
        self.default = _column_form(cells)
        self.column_sep = sep or _column_separator(cells)

    def flip(self, record: dict[str, Any], row: int, label: str, given: bool) -> dict[str, Any]:
        record = dict(record)
        if self.binary:
            record[label] = _flip_binary(record[label])
        else:
            names = self.labels[row]
            removed = {label} if given else set()
            added = [] if given else [label]
            record[self.col] = self._cell(record.get(self.col), removed, added, names)
            # Further flips of the row start from this cell.
            self.labels[row] = [n for n in names if n not in removed] + added
        return record

    def _cell(self, cell: Any, removed: set[str], added: list[str], names: list[str]) -> Any:
        if _is_list(cell):
            items = list(cell.tolist() if hasattr(cell, "tolist") else cell)
            return [item for item in items if _name(item) not in removed] + added
        if isinstance(cell, str) and cell.strip().startswith("["):
            items = strict_loads(cell.strip())
            kept = [item for item in items if _name(item) not in removed]
            return json.dumps(kept + added, ensure_ascii=False)
        new = [n for n in names if n not in removed] + added
        form = "delimited" if isinstance(cell, str) else self.default
        if form == "list":
            return new
        if form == "delimited":
            text = self.column_sep.join(new)
            if readers._parse_labels(text, self.sep, self.source, 0, self.col) == new:
                return text
        # A name holding the separator, or a column of JSON strings: JSON always reads back.
        return json.dumps(new, ensure_ascii=False)


def _name(item: Any) -> str:
    """A label name as the readers read a list item."""
    return "" if item is None else str(item).strip()


def _is_list(cell: Any) -> bool:
    """A list cell: a list, or an array of a parquet file (numpy scalars have tolist too)."""
    if isinstance(cell, (list, tuple)):
        return True
    return hasattr(cell, "tolist") and getattr(cell, "ndim", 0) > 0


def _column_form(cells: list[Any]) -> str:
    """How a labels column gives its lists, from its first cell that says: ``list``, ``json``
    (a JSON list string) or ``delimited``; ``list`` when none does (nulls, numbers)."""
    for cell in cells:
        if _is_list(cell):
            return "list"
        if isinstance(cell, str) and cell.strip():
            return "json" if cell.strip().startswith("[") else "delimited"
    return "list"


def _column_separator(cells: list[Any]) -> str:
    """The separator of a column of delimited strings: the first of the readers' separators that
    one of its cells uses, else a comma."""
    texts = [cell for cell in cells if isinstance(cell, str) and not cell.strip().startswith("[")]
    for sep in readers._SEPARATORS:
        if any(sep in text for text in texts):
            return sep
    return readers._SEPARATORS[0]


def _flip_binary(value: Any) -> Any:
    """The other value of a 0/1 cell, in its spelling: ``1`` -> ``0``, ``"true"`` -> ``"false"``,
    ``"1.0"`` -> ``"0.0"``, ``True`` -> ``False``."""
    if isinstance(value, str):
        flipped = _FLIPPED[value.strip().lower()]
        word = value.strip()
        if word.isupper():
            return flipped.upper()
        return flipped.capitalize() if word[:1].isupper() else flipped
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return not value
    return type(value)(1 - value)  # int, float and their numpy kinds


# --- writing ---------------------------------------------------------------------------------


def _write_records(
    path: Path, fmt: str, records: list[dict[str, Any]], schema: pa.Schema | None
) -> None:
    """Write the copy to a temporary file beside ``path`` and rename it into place."""
    columns = list(dict.fromkeys(key for rec in records for key in rec))
    fd, tmp = temp_file(path)
    try:
        if fmt == ".parquet":
            with os.fdopen(fd, "wb") as fh:
                _write_parquet(fh, path, records, columns, schema)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
                _write_text(stream, fmt, records, columns)
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_text(
    stream: IO[str], fmt: str, records: list[dict[str, Any]], columns: list[str]
) -> None:
    if fmt == ".jsonl":
        for rec in records:
            stream.write(_json(rec) + "\n")
    elif fmt == ".json":
        stream.write("[\n" + ",\n".join(_json(rec) for rec in records) + "\n]\n")
    else:
        writer = csv.writer(stream, delimiter="\t" if fmt == ".tsv" else ",", lineterminator="\n")
        writer.writerow(columns)
        for rec in records:
            writer.writerow([_csv_cell(rec.get(name)) for name in columns])


def _write_parquet(
    fh: IO[bytes],
    path: Path,
    records: list[dict[str, Any]],
    columns: list[str],
    schema: pa.Schema | None,
) -> None:
    table_columns = {name: [rec.get(name) for rec in records] for name in columns}
    try:
        if schema is not None and set(schema.names) == set(columns):
            table = pa.Table.from_pydict(table_columns, schema=schema)
        else:
            table = pa.Table.from_pydict(table_columns)
        pq.write_table(table, fh)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise DataError(
            f"{path}: DATA's columns cannot be written as parquet ({readers._first_line(e)}); "
            "choose .jsonl"
        ) from None


def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    """What a parquet cell holds that JSON has no type for: numpy values, dates, bytes."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, (list, tuple, dict)) or hasattr(value, "tolist"):
        converted = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(converted, (list, dict)):
            return _csv_cell(converted)
        return _json(converted)  # type: ignore[arg-type]
    return str(_json_default(value))
