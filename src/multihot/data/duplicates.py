"""Copies of one text: found once, kept on one side of every split, and said out loud.

A text repeated in the data lands, under a row-wise split, in training and in validation at once:
the model is then scored on texts it trained on, and 20 texts repeated five times cross-validate to
a macro F1 of 1.0. Here rows are grouped by their *normalised* text, the splits in
:mod:`multihot.data.splits` deal whole groups, and the counts are logged where data are prepared.

Texts are compared after stripping, collapsing every run of whitespace to one space, and case
folding. Case folds because the scratch encoders' tokenizers and the TF-IDF baseline lowercase, so
"Thank you!" and "thank you!" are one input to them, and near enough one for a cased encoder that
a copy of either in the other fold flatters the score; grouping a few texts that differ only in
case costs the folds nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


def normalize_text(text: str) -> str:
    """The text as copies are compared: stripped, whitespace runs collapsed, case folded.

    Example:
        >>> normalize_text("  Thank\\tyou!\\n") == normalize_text("thank you!")
        True
    """
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Duplicates:
    """The copies in one set of rows.

    Example:
        >>> dups = find_duplicates(["hi", "Hi ", "bye"], np.array([[1, 0], [0, 1], [0, 1]]))
        >>> dups.groups.tolist(), dups.repeats, dups.conflicting
        ([0, 0, 1], 1, 1)
    """

    groups: np.ndarray
    """``(n_texts,)`` int64: rows with the same normalised text share a group; groups are
    numbered in the order of their first row, so distinct texts give ``0..n_texts-1``."""
    repeats: int
    """Rows whose normalised text appeared in an earlier row."""
    conflicting: int
    """Of :attr:`repeats`, the rows whose labels differ from their text's first row."""

    def log(self, source: str) -> None:
        """Say how many rows repeat a text (nothing when none does): a warning when copies
        disagree on their labels, since one of them is wrong."""
        if not self.repeats or _reported.get():
            return
        level = logging.WARNING if self.conflicting else logging.INFO
        logger.log(
            level,
            "%s: %d of %d texts repeat an earlier one (compared with whitespace and case "
            "normalised), %d of them with other labels; every split keeps the copies of a text "
            "together",
            source,
            self.repeats,
            len(self.groups),
            self.conflicting,
        )


def find_duplicates(texts: Sequence[str], targets: np.ndarray) -> Duplicates:
    """Group the rows of ``texts`` by normalised text and count the repeats.

    Args:
        texts: the texts, one per row.
        targets: their multi-hot labels, shape ``(n_texts, num_labels)``.

    Returns:
        The :class:`Duplicates`.
    """
    first_row: dict[str, int] = {}
    groups = np.empty(len(texts), dtype=np.int64)
    firsts: list[int] = []
    for row, text in enumerate(texts):
        key = normalize_text(text)
        group = first_row.setdefault(key, len(firsts))
        if group == len(firsts):
            firsts.append(row)
        groups[row] = group
    repeats = np.ones(len(texts), dtype=bool)
    repeats[firsts] = False
    targets = np.asarray(targets)
    differ = (targets != targets[np.asarray(firsts, dtype=np.int64)][groups]).any(axis=1)
    return Duplicates(groups, int(repeats.sum()), int((repeats & differ).sum()))


def count_shared(train_texts: Sequence[str], val_texts: Sequence[str]) -> int:
    """How many of ``val_texts`` are, normalised, also in ``train_texts``.

    Example:
        >>> count_shared(["so happy", "ugh"], ["So  happy", "meh"])
        1
    """
    seen = {normalize_text(text) for text in train_texts}
    return sum(normalize_text(text) in seen for text in val_texts)


def log_shared(source: str, shared: int, total: int) -> None:
    """Warn that ``shared`` of the ``total`` validation texts in ``source`` are also training
    texts (see :func:`count_shared`); nothing when none is."""
    if shared and not _reported.get():
        logger.warning(
            "%s: %d of %d validation texts are also in the training data (compared with "
            "whitespace and case normalised); the validation scores flatter the model",
            source,
            shared,
            total,
        )


_reported: ContextVar[bool] = ContextVar("multihot_duplicates_reported", default=False)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Within it, :meth:`Duplicates.log` and :func:`log_shared` say nothing: the caller reported
    the copies over all its data, and the runs it trains on parts of them (cross-validation
    folds, an in-sample check drawn from the training rows) would repeat it, or warn of an
    overlap made on purpose."""
    token = _reported.set(True)
    try:
        yield
    finally:
        _reported.reset(token)
