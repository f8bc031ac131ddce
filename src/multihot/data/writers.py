"""Prediction output: JSONL (``text``, ``labels``, ``probs``) or CSV (text, labels, one column per
label), written to a temporary file and renamed into place only when everything succeeded; and the
checks every output file of a command passes first (predictions, HTML reports and explanations)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multihot.core.errors import MultihotError
from multihot.core.files import json_safe, temp_file

FORMATS = {".jsonl": "jsonl", ".csv": "csv"}


class PredictionWriter:
    """Writes batches of predictions to an open text stream in one format."""

    def __init__(self, stream, label_names: Sequence[str], fmt: str, digits: int = 6):
        self.stream = stream
        self.label_names = list(label_names)
        self.fmt = fmt
        self.digits = digits
        self.count = 0
        if fmt == "csv":
            self.csv = csv.writer(stream)
            self.csv.writerow(["text", "labels", *self.label_names])

    def write(
        self, texts: Sequence[str], probs: np.ndarray, labels: Sequence[Sequence[str]]
    ) -> None:
        rounded = np.round(probs.astype(np.float64), self.digits)
        for text, row, names in zip(texts, rounded.tolist(), labels, strict=True):
            if self.fmt == "csv":
                self.csv.writerow([text, ",".join(names), *row])
            else:
                record = {
                    "text": text,
                    "labels": list(names),
                    "probs": dict(zip(self.label_names, row, strict=True)),
                }
                self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += len(texts)


def records_jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    """One compact JSON object per record, in the order given (NaN and infinities as null).

    Example:
        >>> records_jsonl([{"row": 0, "score": float("nan")}])
        '{"row": 0, "score": null}\\n'
    """
    return "".join(json.dumps(json_safe(dict(r)), ensure_ascii=False) + "\n" for r in records)


def records_csv(
    records: Sequence[Mapping[str, Any]], empty_columns: Sequence[str] = (), last: str = "text"
) -> str:
    """A header, then one row per record: the columns are the records' keys in the order they
    first appear, ``last`` (a long text reads best at the end) last; ``empty_columns`` when there
    is no record. A missing value (a key a record lacks, None, NaN) is an empty cell.

    Example:
        >>> print(records_csv([{"text": "a, b", "row": 0}, {"row": 1, "id": "x"}]), end="")
        row,id,text
        0,,"a, b"
        1,x,
    """
    columns = list(dict.fromkeys(key for record in records for key in record))
    if not columns:
        columns = list(empty_columns)
    elif last in columns:
        columns = [c for c in columns if c != last] + [last]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        safe = json_safe(dict(record))
        writer.writerow(["" if safe.get(c) is None else safe[c] for c in columns])
    return out.getvalue()


HTML_SUFFIXES = (".html", ".htm")
GENERATOR_TAG = '<meta name="generator" content="multihot">'
"""Every HTML page multihot writes carries this in its head: what lets a later command replace the
page (and no other file) without being forced."""
_HEAD_BYTES = 4096


def _check_target(path: Path, inputs: Iterable[str | Path], read_dirs: Iterable[str | Path]):
    """Refuse an output file that cannot be written, or whose writing would destroy what the
    command reads: one of its ``inputs`` (by name, symlink or hard link) or a file inside one of
    the directories ``read_dirs`` (a run, cv or search directory holds only multihot's files)."""
    if path.is_dir():
        raise MultihotError(f"{path}: is a directory; expected an output file name")
    if not path.parent.is_dir():
        raise MultihotError(f"{path}: directory {path.parent} does not exist; create it first")
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise MultihotError(
                f"{path}: is the input file {source}; writing there would replace it: choose "
                "another output file"
            )
    # Where the rename lands: the link itself is replaced, not what it points to.
    target = path.parent.resolve() / path.name
    for directory in read_dirs:
        root = Path(directory).resolve()
        if root in target.parents:
            raise MultihotError(
                f"{path}: is inside {directory}, the directory this command reads, which holds "
                "only multihot's own files: write it elsewhere"
            )


def check_output_path(
    path: str | Path, inputs: Iterable[str | Path] = (), read_dirs: Iterable[str | Path] = ()
) -> str:
    """The output format for ``path``, or :class:`MultihotError` if it cannot be written there.

    Args:
        path: the output file.
        inputs: files the same command reads; writing over one of them (by the same name, through
            a symlink or a hard link) would destroy what is being read, so it is refused.
        read_dirs: directories the command reads (its run directory): nothing is written inside.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MultihotError(
            f"{path}: unsupported output format; expected one of {', '.join(FORMATS)}"
        )
    _check_target(path, inputs, read_dirs)
    return fmt


def check_new_file(
    path: str | Path,
    inputs: Iterable[str | Path] = (),
    read_dirs: Iterable[str | Path] = (),
    *,
    force: bool = False,
) -> Path:
    """``path`` checked for an output file of any format, or :class:`MultihotError`: the rules
    of :func:`check_output_path`, and an existing file is replaced only with ``force``.

    Example:
        >>> check_new_file("batch.jsonl", inputs=["pool.csv"], read_dirs=["runs/base"])
        PosixPath('batch.jsonl')
    """
    path = Path(path)
    _check_target(path, inputs, read_dirs)
    if path.exists() and not path.is_file():
        raise MultihotError(f"{path}: exists and is not a regular file; expected an output file")
    if path.exists() and not force:
        raise MultihotError(
            f"{path}: exists; replace it with --force (force=True in Python), or choose another "
            "file name"
        )
    return path


def written_by_multihot(path: str | Path) -> bool:
    """Whether ``path`` is a regular file whose head carries :data:`GENERATOR_TAG`."""
    path = Path(path)
    if not path.is_file():  # a FIFO or a device would block or never end
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return False
    return GENERATOR_TAG.encode() in head


def check_html_output(
    path: str | Path,
    inputs: Iterable[str | Path] = (),
    read_dirs: Iterable[str | Path] = (),
    *,
    force: bool = False,
) -> Path:
    """``path`` checked for an HTML page (a report, an explanation), or :class:`MultihotError`.

    The rules of :func:`check_output_path` (a file whose directory exists, never an input, never
    inside a directory the command reads), and: the name ends in ``.html`` or ``.htm``; an existing
    file is replaced only when multihot wrote it (:data:`GENERATOR_TAG`), or with ``force``.

    Example:
        >>> check_html_output("report.html", inputs=["test.jsonl"], read_dirs=["runs/base"])
        PosixPath('report.html')
        >>> check_html_output("runs/base/config.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        multihot.core.errors.MultihotError: runs/base/config.json: not an HTML file name; ...
    """
    path = Path(path)
    if path.suffix.lower() not in HTML_SUFFIXES and not path.is_dir():
        raise MultihotError(
            f"{path}: not an HTML file name; expected a name ending in {' or '.join(HTML_SUFFIXES)}"
        )
    _check_target(path, inputs, read_dirs)
    if path.exists() and not path.is_file():
        raise MultihotError(f"{path}: exists and is not a regular file; expected an output file")
    if path.exists() and not force and not written_by_multihot(path):
        raise MultihotError(
            f"{path}: exists and is not a page multihot wrote; replace it with --force, or "
            "choose another file name"
        )
    return path


@contextlib.contextmanager
def open_writer(path: str | Path | None, label_names: Sequence[str]) -> Iterator[PredictionWriter]:
    """A writer to ``path`` (format from its suffix) or JSONL on stdout when ``path`` is None.

    The file appears only if the block finishes without an exception: no partial output.
    """
    if path is None:
        yield PredictionWriter(sys.stdout, label_names, "jsonl")
        return
    path = Path(path)
    fmt = check_output_path(path)
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield PredictionWriter(stream, label_names, fmt)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
