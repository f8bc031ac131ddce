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
from collections.abc import Callable, Iterator, Sequence
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
        >>> dups.groups.tolist(), dups.repeats, dups.conflicting, dups.conflicts.tolist()
        ([0, 0, 1], 1, 1, [1])
    """

    groups: np.ndarray
    """``(n_texts,)`` int64: rows with the same normalised text share a group; groups are
    numbered in the order of their first row, so distinct texts give ``0..n_texts-1``."""
    firsts: np.ndarray
    """``(n_groups,)`` int64: the first row of each group."""
    repeats: int
    """Rows whose normalised text appeared in an earlier row."""
    conflicts: np.ndarray
    """``(conflicting,)`` int64, ascending: of the repeats, the rows whose labels differ from
    their text's first row (``firsts[groups[row]]``)."""

    @property
    def conflicting(self) -> int:
        """How many repeats have other labels than their text's first row: one of the two is
        wrong."""
        return len(self.conflicts)

    def log(
        self,
        source: str,
        texts: Sequence[str] | None = None,
        labels: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Say how many rows repeat a text (nothing when none does): a warning when copies
        disagree on their labels, since one of them is wrong, naming the first such pair when
        the rows' ``texts`` and ``labels`` (names) are given."""
        if not self.repeats or _reported.get():
            return
        level = logging.WARNING if self.conflicting else logging.INFO
        first = ""
        if self.conflicting and texts is not None and labels is not None:
            row = int(self.conflicts[0])
            earlier = int(self.firsts[self.groups[row]])
            first = (
                f" (first: row {row + 1} {quote(texts[row])} has {label_list(labels[row])}, "
                f"row {earlier + 1} has {label_list(labels[earlier])})"
            )
        logger.log(
            level,
            "%s: %d of %d texts repeat an earlier one (compared with whitespace and case "
            "normalised), %d of them with other labels%s; every split keeps the copies of a text "
            "together%s",
            source,
            self.repeats,
            len(self.groups),
            self.conflicting,
            first,
            AUDIT_POINTER if self.conflicting else "",
        )


def find_duplicates(
    texts: Sequence[str],
    targets: np.ndarray,
    key: Callable[[str], str] = normalize_text,
    known: np.ndarray | None = None,
) -> Duplicates:
    """Group the rows of ``texts`` by normalised text and count the repeats.

    Args:
        texts: the texts, one per row.
        targets: their multi-hot labels, shape ``(n_texts, num_labels)``.
        key: what two texts are compared by; rows with equal keys are copies.
        known: partial labels: ``(n_texts, num_labels)`` bool, the labelled pairs (None: all).
            A repeat conflicts with its text's first row only on labels known in both: copies
            labelled for different labels do not disagree about the others.

    Returns:
        The :class:`Duplicates`.

    Example:
        >>> known = np.array([[True, False], [False, True]])  # each copy labelled for one label
        >>> find_duplicates(["hi", "hi"], np.array([[1, 0], [0, 1]]), known=known).conflicting
        0
    """
    first_row: dict[str, int] = {}
    groups = np.empty(len(texts), dtype=np.int64)
    firsts: list[int] = []
    for row, text in enumerate(texts):
        group = first_row.setdefault(key(text), len(firsts))
        if group == len(firsts):
            firsts.append(row)
        groups[row] = group
    first_rows = np.asarray(firsts, dtype=np.int64)
    repeats = np.ones(len(texts), dtype=bool)
    repeats[first_rows] = False
    targets = np.asarray(targets)
    differ = targets != targets[first_rows][groups]
    if known is not None:
        known = np.asarray(known, dtype=bool)
        differ &= known & known[first_rows][groups]
    differ = differ.any(axis=1)
    conflicts = np.flatnonzero(repeats & differ).astype(np.int64)
    return Duplicates(groups, first_rows, int(repeats.sum()), conflicts)


def same_labels(
    labels: Sequence[str],
    other: Sequence[str],
    known: Sequence[str] | None = None,
    other_known: Sequence[str] | None = None,
) -> bool:
    """Whether two copies of a text agree on their labels, compared on the labels both were
    labelled for (partial labels: ``known`` and ``other_known``, None for every label).

    Example:
        >>> same_labels(["joy"], ["anger"]), same_labels(["joy"], ["anger"], ["joy"], ["anger"])
        (False, True)
    """
    first, second = set(labels), set(other)
    if known is not None:
        first &= set(known)
        second &= set(known)
    if other_known is not None:
        first &= set(other_known)
        second &= set(other_known)
    return first == second


def find_shared(train_texts: Sequence[str], val_texts: Sequence[str]) -> list[tuple[int, int]]:
    """The validation texts that are, normalised, also training texts: ``(val_row, train_row)``
    for each, ``train_row`` the first training row with that text, in validation order.

    Example:
        >>> find_shared(["so happy", "ugh"], ["meh", "So  happy", "UGH"])
        [(1, 0), (2, 1)]
    """
    first_row: dict[str, int] = {}
    for row, text in enumerate(train_texts):
        first_row.setdefault(normalize_text(text), row)
    found = ((row, first_row.get(normalize_text(text))) for row, text in enumerate(val_texts))
    return [(val_row, train_row) for val_row, train_row in found if train_row is not None]


def count_shared(train_texts: Sequence[str], val_texts: Sequence[str]) -> int:
    """How many of ``val_texts`` are, normalised, also in ``train_texts`` (:func:`find_shared`).

    Example:
        >>> count_shared(["so happy", "ugh"], ["So  happy", "meh"])
        1
    """
    return len(find_shared(train_texts, val_texts))


def log_shared(source: str, shared: Sequence[tuple[int, int]], val_texts: Sequence[str]) -> None:
    """Warn that validation texts in ``source`` are also training texts, naming the first:
    ``shared`` is :func:`find_shared`'s pairs; nothing when there are none."""
    if shared and not _reported.get():
        val_row, train_row = shared[0]
        logger.warning(
            "%s: %d of %d validation texts are also in the training data (compared with "
            "whitespace and case normalised; first: row %d %s, training row %d); the validation "
            "scores flatter the model%s",
            source,
            len(shared),
            len(val_texts),
            val_row + 1,
            quote(val_texts[val_row]),
            train_row + 1,
            AUDIT_POINTER,
        )


AUDIT_POINTER = "; multihot audit lists them all"
"""The end of a warning about the data that ``multihot audit`` reports in full."""


def quote(text: str, width: int = 60) -> str:
    """``text`` quoted for a log line, cut to ``width`` characters.

    Example:
        >>> quote("so happy"), quote("a" * 80, width=10)
        ("'so happy'", "'aaaaaaa...'")
    """
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def label_list(names: Sequence[str]) -> str:
    """Label names for a log line: ``[joy, love]``, or ``no label``."""
    return f"[{', '.join(names)}]" if names else "no label"


def is_reported() -> bool:
    """Whether within :func:`reported`: the caller said what there is to say about its data."""
    return _reported.get()


_reported: ContextVar[bool] = ContextVar("multihot_duplicates_reported", default=False)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Within it, :meth:`Duplicates.log`, :func:`log_shared` and the warning of labels missing
    from validation (:func:`multihot.data.prepare.prepare_data`) say nothing: the caller reported
    the copies over all its data, and the runs it trains on parts of them (cross-validation
    folds, an in-sample check drawn from the training rows, search trials) would repeat it, or
    warn of an overlap or a split made on purpose."""
    token = _reported.set(True)
    try:
        yield
    finally:
        _reported.reset(token)
