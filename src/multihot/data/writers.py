"""Prediction output: JSONL (``text``, ``labels``, ``probs``) or CSV (text, labels, one column per
label), written to a temporary file and renamed into place only when everything succeeded."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from multihot.core.errors import MultihotError
from multihot.core.files import temp_file

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


def check_output_path(path: str | Path, inputs: Iterable[str | Path] = ()) -> str:
    """The output format for ``path``, or :class:`MultihotError` if it cannot be written there.

    Args:
        path: the output file.
        inputs: files the same command reads; writing over one of them (by the same name, through
            a symlink or a hard link) would destroy what is being read, so it is refused.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MultihotError(
            f"{path}: unsupported output format; expected one of {', '.join(FORMATS)}"
        )
    if not path.parent.exists():
        raise MultihotError(f"{path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise MultihotError(f"{path}: is a directory; expected an output file name")
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise MultihotError(
                f"{path}: is the input file {source}; writing the predictions there would "
                "replace it: choose another output file"
            )
    return fmt


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
