"""Training and validation data made ready for a run: read, one label set over both, targets, and a
stratified hold-out when there is no validation file."""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multihot.core.config import RunConfig
from multihot.core.errors import DataError
from multihot.data.duplicates import (
    AUDIT_POINTER,
    find_duplicates,
    find_shared,
    is_reported,
    log_shared,
)
from multihot.data.labels import LabelSet, warn_case_collisions
from multihot.data.readers import Dataset, read_dataset
from multihot.data.splits import stratified_split

logger = logging.getLogger(__name__)

DataLike = str | Path | Dataset
"""A data file (csv, tsv, jsonl, json, parquet; .gz too) or a :class:`Dataset` in memory."""


# -------------------------------------------------------------------- a run: invocation, members
def fingerprint(texts: Iterable[str], *arrays: np.ndarray) -> str:
    """A SHA-256 over texts and arrays (values, dtype, shape): resuming checks the data is the same."""
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class PreparedData:
    """Training and validation data with their targets over one label set."""

    labels: LabelSet
    train: Dataset
    train_targets: np.ndarray
    val: Dataset
    val_targets: np.ndarray
    train_known: np.ndarray | None = None
    """``(n_train, num_labels)`` bool: the pairs labelled (partial labels); None when all are."""
    val_known: np.ndarray | None = None
    """``(n_val, num_labels)`` bool, as ``train_known``."""

    @property
    def partial(self) -> bool:
        """Whether some (text, label) pair of train or validation is unknown."""
        return self.train_known is not None or self.val_known is not None

    def fingerprint(self) -> str:
        """A hash of the texts and targets, train and validation, the label names and, with
        partial labels only, which pairs are known (fully labelled data hash as they always did)."""
        texts = itertools.chain(self.labels.names, self.train.texts, self.val.texts)
        masks = []
        if self.partial:
            masks = [_known_or_all(self.train_known, self.train_targets)]
            masks.append(_known_or_all(self.val_known, self.val_targets))
        return fingerprint(texts, self.train_targets, self.val_targets, *masks)


def _known_or_all(known: np.ndarray | None, targets: np.ndarray) -> np.ndarray:
    return np.ones(targets.shape, dtype=bool) if known is None else known


def prepare_data(train: DataLike, val: DataLike | None, config: RunConfig) -> PreparedData:
    """Read the data, fix the label set (train and val together), and hold out val if there is none."""
    train_data = read_data(train, config)
    val_data = read_data(val, config) if val is not None else None
    labels = label_set(train_data, val_data)
    sources = [train_data.source] + ([val_data.source] if val_data is not None else [])
    warn_case_collisions(labels.names, " and ".join(dict.fromkeys(sources)))
    train_targets = labels.encode(train_data.labels, train_data.source)
    train_known = labels.encode_known(train_data.known, train_data.source)
    _warn_no_positive(labels.names, train_targets, train_known, train_data.source)
    duplicates = find_duplicates(train_data.texts, train_targets, known=train_known)
    duplicates.log(train_data.source, train_data.texts, train_data.labels)
    if val_data is not None:
        log_shared(val_data.source, find_shared(train_data.texts, val_data.texts), val_data.texts)
        val_targets = labels.encode(val_data.labels, val_data.source)
        val_known = labels.encode_known(val_data.known, val_data.source)
        warn_absent_from_validation(labels.names, train_targets, val_targets, val_data.source)
        return PreparedData(
            labels, train_data, train_targets, val_data, val_targets, train_known, val_known
        )
    # Unknown pairs are 0 in the targets, so the split stratifies on the known positives.
    train_idx, val_idx = stratified_split(
        train_targets, config.train.val_fraction, config.train.seed, groups=duplicates.groups
    )
    logger.info(
        "no validation data: held out %d of %d training texts", len(val_idx), len(train_targets)
    )
    train_targets, val_targets = train_targets[train_idx], train_targets[val_idx]
    held_out = f"{train_data.source} (held out for validation)"
    warn_absent_from_validation(labels.names, train_targets, val_targets, held_out)
    train_part, val_part = train_data.subset(train_idx), train_data.subset(val_idx)
    return PreparedData(
        labels,
        train_part,
        train_targets,
        val_part,
        val_targets,
        labels.encode_known(train_part.known, train_data.source),
        labels.encode_known(val_part.known, train_data.source),
    )


def _warn_no_positive(
    names: Sequence[str], targets: np.ndarray, known: np.ndarray | None, source: str
) -> None:
    """Warn about each label without a positive in training; with partial labels, say how many
    texts are labelled for it (a label no text is labelled for is never trained)."""
    for j, (name, count) in enumerate(zip(names, targets.sum(axis=0), strict=True)):
        if count:
            continue
        if known is None:
            logger.warning("%s: label %r has no positive example in training", source, name)
        else:
            logger.warning(
                "%s: label %r has no positive example in training (%d of %d texts are labelled "
                "for it)",
                source,
                name,
                int(known[:, j].sum()),
                len(known),
            )


def absent_labels(
    names: Sequence[str], targets: np.ndarray, other: np.ndarray
) -> list[tuple[str, int]]:
    """The labels with positives in ``targets`` and none in ``other``, each with its positives in
    ``targets``, most first (then in label order).

    Args:
        names: the label names, one per column.
        targets: shape ``(n_texts, num_labels)``, 0/1.
        other: shape ``(n_other, num_labels)``, 0/1, the same columns.

    Example:
        >>> absent_labels(["joy", "anger"], np.array([[1, 1], [0, 1]]), np.array([[1, 0]]))
        [('anger', 2)]
    """
    support = np.asarray(targets).sum(axis=0).astype(np.int64)
    absent = (support > 0) & (np.asarray(other).sum(axis=0) == 0)
    order = sorted(np.flatnonzero(absent).tolist(), key=lambda j: (-support[j], j))
    return [(names[j], int(support[j])) for j in order]


def warn_absent_from_validation(
    names: Sequence[str], train_targets: np.ndarray, val_targets: np.ndarray, source: str
) -> None:
    """Warn, naming the first, about labels with training examples and none in validation
    (``source``): no threshold is tuned on them there and their validation F1 is 0."""
    absent = absent_labels(names, train_targets, val_targets)
    if not absent or is_reported():
        return
    name, count = absent[0]
    logger.warning(
        "%s: %d of %d labels have training examples but none in validation (first: %r, %d in "
        "training): no threshold is tuned on them and their validation F1 is 0, which lowers "
        "macro F1%s",
        source,
        len(absent),
        len(names),
        name,
        count,
        AUDIT_POINTER,
    )


def label_set(train: Dataset, val: Dataset | None = None) -> LabelSet:
    """The labels of a run on these data: every name in either (in labels, 0/1 columns or
    ``labels_known`` lists), in the order of train's 0/1 columns when those name them all, else
    sorted.

    Raises:
        DataError: no label name at all.
    """
    names: set[str] = {n for labels in train.labels for n in labels}
    names.update(train.label_names or [])
    names.update(n for known in train.known or [] for n in known or [])
    if val is not None:
        names.update(n for labels in val.labels for n in labels)
        names.update(val.label_names or [])
        names.update(n for known in val.known or [] for n in known or [])
    if not names:
        raise DataError(f"{train.source}: no labels: expected at least one label name")
    # Keep the column order of 0/1 label columns when they name every label.
    columns = train.label_names
    return LabelSet(columns if columns is not None and set(columns) == names else sorted(names))


def read_data(data: DataLike, config: RunConfig) -> Dataset:
    if isinstance(data, Dataset):
        return data
    d = config.data
    return read_dataset(
        data,
        text_col=d.text_col,
        labels_col=d.labels_col,
        label_cols=d.label_cols,
        label_sep=d.label_sep,
    )
