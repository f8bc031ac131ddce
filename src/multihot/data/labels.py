"""The label vocabulary: names in output order, and the mapping to multi-hot targets."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from multihot.core.errors import DataError

logger = logging.getLogger(__name__)

KNOWN_COL = "labels_known"
"""Partial labels: the column (of a data file, and key of validation.jsonl) listing, per text, the
labels it was labelled for; its other labels are unknown, not "no"."""


class LabelSet:
    """An ordered set of label names; column ``j`` of every target or probability array is ``names[j]``.

    Example:
        >>> labels = LabelSet(["joy", "anger"])
        >>> labels.encode([["joy"], [], ["anger", "joy"]]).tolist()
        [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
        >>> labels.decode(np.array([[True, False]]))
        [['joy']]
    """

    def __init__(self, names: Sequence[str]):
        names = [str(n) for n in names]
        if not names:
            raise DataError("no labels: expected at least one label name")
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise DataError(f"duplicate label name {name!r}")
            if not name.strip():
                raise DataError("empty label name")
            seen.add(name)
        self.names: list[str] = names
        self.index: dict[str, int] = {n: i for i, n in enumerate(names)}

    @classmethod
    def from_records(cls, label_lists: Iterable[Sequence[str]]) -> LabelSet:
        """All names that occur, sorted, so the same data always gives the same column order."""
        names: set[str] = set()
        for labels in label_lists:
            names.update(labels)
        return cls(sorted(names))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self.names == other.names

    def __repr__(self) -> str:
        return f"LabelSet({self.names!r})"

    def encode(self, label_lists: Sequence[Sequence[str]], source: str = "data") -> np.ndarray:
        """Label-name lists to a float32 multi-hot array of shape ``(n_texts, num_labels)``.

        Raises:
            DataError: a name that is not in this label set, naming ``source`` and the row.
        """
        targets = np.zeros((len(label_lists), len(self.names)), dtype=np.float32)
        for row, labels in enumerate(label_lists):
            for name in labels:
                j = self.index.get(name)
                if j is None:
                    raise self._unknown_label(source, row, name)
                targets[row, j] = 1.0
        return targets

    def encode_known(
        self, known: Sequence[Sequence[str] | None] | None, source: str = "data"
    ) -> np.ndarray | None:
        """Which (text, label) pairs are labelled: a bool array of shape ``(n_texts, num_labels)``,
        from :attr:`multihot.data.readers.Dataset.known` (a row's None: all its labels known).

        Returns:
            None when every pair is known (``known`` None, or naming every label in every row), so
            that fully labelled data takes the same path as data without the column.

        Raises:
            DataError: a name that is not in this label set, naming ``source`` and the row.

        Example:
            >>> LabelSet(["joy", "anger"]).encode_known([None, ["anger"]]).tolist()
            [[True, True], [False, True]]
            >>> LabelSet(["joy", "anger"]).encode_known([None, ["joy", "anger"]]) is None
            True
        """
        if known is None:
            return None
        mask = np.ones((len(known), len(self.names)), dtype=bool)
        for row, names in enumerate(known):
            if names is None:
                continue
            mask[row] = False
            for name in names:
                j = self.index.get(name)
                if j is None:
                    raise self._unknown_label(source, row, name, "labelled for ")
                mask[row, j] = True
        return None if mask.all() else mask

    def _unknown_label(self, source: str, row: int, name: str, what: str = "") -> DataError:
        return DataError(
            f"{source}: row {row + 1}: {what}unknown label {name!r}; "
            f"the model knows {len(self.names)} labels: {', '.join(self.names[:10])}"
            + (", ..." if len(self.names) > 10 else "")
        )

    def decode(self, decisions: np.ndarray) -> list[list[str]]:
        """A boolean array of shape ``(n_texts, num_labels)`` to lists of label names."""
        return [[self.names[j] for j in np.flatnonzero(row)] for row in decisions]


def warn_case_collisions(names: Iterable[str], source: str) -> list[list[str]]:
    """Warn about label names that differ only by case, and return them in groups.

    They stay separate labels (a name is the user's to choose), but ``joy`` beside ``JOY`` is
    almost always one label spelt two ways, each left with part of its examples.

    Args:
        names: the label names.
        source: where the names come from, for the message.

    Returns:
        Each group of names that are equal under case folding, sorted; groups in name order.

    Example:
        >>> warn_case_collisions(["joy", "JOY", "anger"], "train.jsonl")
        [['JOY', 'joy']]
    """
    folded: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        folded.setdefault(name.casefold(), []).append(name)
    groups = [group for group in folded.values() if len(group) > 1]
    if groups:
        listed = "; ".join(
            ", ".join(repr(n) for n in group[:-1]) + f" and {group[-1]!r}" for group in groups
        )
        logger.warning(
            "%s: labels that differ only by case: %s (kept as separate labels)", source, listed
        )
    return groups
