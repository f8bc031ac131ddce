"""Train/validation splits that keep each label's share of positives on both sides.

With partial labels the targets hold 0 at the unknown pairs, so what is stratified is each label's
known positives: iterative stratification and the repairs below count positives only, so an unknown
pair weighs as little as a known negative (nothing). One exception: a single label is stratified
with its complement as a second column, where an unknown pair counts as a negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from multihot.core.errors import ConfigError, DataError


def stratified_split(
    targets: np.ndarray, val_fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train and validation with multi-label iterative stratification.

    Iterative stratification (Sechidis et al., 2011, via ``iterative-stratification``) only
    approximates the requested size and can leave a rare label without training examples, so
    two repairs follow it: every label with at least two positives gets one on the train side,
    and rows then move (fewest labels first, never a label's last positive on its side) until
    validation has ``ceil(val_fraction * n_texts)`` rows, or as near as that rule allows.

    With ``groups`` where some rows share a group (copies of one text, see
    :mod:`multihot.data.duplicates`), whole groups are dealt instead (:func:`_deal_groups`), the
    first repair applied to groups, and validation holds about ``val_fraction`` of the rows.

    Args:
        targets: multi-hot array of shape ``(n_texts, num_labels)``.
        val_fraction: the share of rows for validation, strictly between 0 and 1.
        seed: the random seed; the same seed and targets give the same split.
        groups: ``(n_texts,)``: rows with the same value go to the same side (default: every
            row its own group).

    Returns:
        ``(train_idx, val_idx)``: sorted integer arrays, disjoint, together ``0..n_texts-1``.

    Raises:
        ConfigError: ``val_fraction`` outside (0, 1).
        DataError: too few rows to leave at least one on each side.

    Example:
        >>> targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1]] * 4)
        >>> train_idx, val_idx = stratified_split(targets, val_fraction=0.25, seed=0)
        >>> len(train_idx), len(val_idx)
        (15, 5)
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    targets = np.asarray(targets).astype(bool)
    if targets.ndim != 2 or targets.shape[1] == 0:
        raise DataError(f"targets must have shape (n_texts, num_labels), got {targets.shape}")
    grouped = _grouped(targets, groups)
    if grouped is not None:
        return _grouped_split(targets, grouped, val_fraction, seed)
    n = len(targets)
    n_val = math.ceil(round(val_fraction * n, 6))  # round: 0.3 * 10 is 3.0000000000000004
    too_little = DataError(
        f"too little data to split: {n} rows with val_fraction={val_fraction} leave "
        f"{n - n_val} for training and {n_val} for validation; add rows or give a val file"
    )
    if n_val < 1 or n - n_val < 1:
        raise too_little
    # iterstrat rejects a single column as "binary"; its complement makes it multi-label.
    y = targets if targets.shape[1] > 1 else np.hstack([targets, ~targets])
    # heavy: iterstrat pulls in scikit-learn, a second of start-up that prediction never needs.
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    _, val_idx = next(splitter.split(np.zeros((n, 1)), y))
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True

    _keep_a_train_positive(targets, is_val)
    rng = np.random.default_rng(seed)
    excess = int(is_val.sum()) - n_val
    if excess > 0:
        _move(targets, is_val, to_val=False, count=excess, rng=rng)
    elif excess < 0:
        _move(targets, is_val, to_val=True, count=-excess, rng=rng)
    if is_val.all() or not is_val.any():
        raise too_little
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _keep_a_train_positive(targets: np.ndarray, is_val: np.ndarray) -> None:
    """Move to train, in place, one validation row (the one with fewest labels) of every label
    with at least two positives and none on the train side."""
    totals = targets.sum(axis=0)
    for j in np.argsort(totals, kind="stable"):
        if totals[j] >= 2 and not targets[~is_val, j].any():
            rows = np.flatnonzero(is_val & targets[:, j])
            is_val[rows[np.argmin(targets[rows].sum(axis=1))]] = False


def _move(targets: np.ndarray, is_val: np.ndarray, to_val: bool, count: int, rng) -> None:
    """Move up to ``count`` rows across, in place, fewest labels first (ties in random order).

    A row is not moved if it holds the last positive of one of its labels on its side; rows
    moving from validation to train may break that rule when nothing else is left, since the
    train side must reach its size and losing a validation positive costs less.
    """
    source = ~is_val if to_val else is_val
    candidates = rng.permutation(np.flatnonzero(source))
    candidates = candidates[np.argsort(targets[candidates].sum(axis=1), kind="stable")]
    counts = targets[source].sum(axis=0)
    skipped = []
    for i in candidates:
        if count == 0:
            return
        if (counts[targets[i]] < 2).any():
            skipped.append(i)
            continue
        is_val[i] = to_val
        counts -= targets[i]
        count -= 1
    if not to_val:
        for i in skipped[:count]:
            is_val[i] = False


def stratified_folds(
    targets: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Assign every row to one of ``folds`` folds with multi-label iterative stratification.

    Iterative stratification (Sechidis et al., 2011, via ``iterative-stratification``) deals the
    rows of the rarest labels first, so each fold holds close to ``1 / folds`` of every label's
    positives, rare labels included, where a random k-fold leaves some folds without them.

    With ``groups`` where some rows share a group (copies of one text, see
    :mod:`multihot.data.duplicates`), whole groups are dealt (:func:`_deal_groups`), so no group
    straddles two folds; without, the folds are iterative stratification's of the rows, as
    before groups existed, so a cross-validation started then resumes with the same folds.

    Args:
        targets: multi-hot array of shape ``(n_texts, num_labels)``.
        folds: the number of folds, at least 2.
        seed: the random seed; the same seed and targets give the same folds.
        groups: ``(n_texts,)``: rows with the same value go to the same fold (default: every row
            its own group).

    Returns:
        Integer array of shape ``(n_texts,)``: the fold of each row, ``0..folds-1``, every fold
        non-empty.

    Raises:
        ConfigError: ``folds`` is not an integer of at least 2.
        DataError: fewer rows than folds.

    Example:
        >>> targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]] * 3)
        >>> fold = stratified_folds(targets, folds=3, seed=0)
        >>> np.bincount(fold).tolist(), targets[fold == 0].sum(axis=0).tolist()
        ([6, 6, 6], [3, 3])
    """
    is_int = isinstance(folds, (int, np.integer)) and not isinstance(folds, bool)
    if not is_int or folds < 2:
        raise ConfigError(f"folds must be an integer of at least 2, got {folds!r}")
    targets = np.asarray(targets).astype(bool)
    if targets.ndim != 2 or targets.shape[1] == 0:
        raise DataError(f"targets must have shape (n_texts, num_labels), got {targets.shape}")
    n = len(targets)
    if n < folds:
        raise DataError(f"too little data for {folds} folds: {n} rows; add rows or use fewer folds")
    grouped = _grouped(targets, groups)
    if grouped is not None:
        if len(grouped.sizes) < folds:
            raise DataError(
                f"too little data for {folds} folds: {n} rows hold {len(grouped.sizes)} distinct "
                "texts, and the copies of a text share a fold; add texts or use fewer folds"
            )
        shares = np.full(folds, 1 / folds)
        return _deal_groups(grouped, shares, np.random.default_rng(seed))[grouped.of_row]
    # iterstrat rejects a single column as "binary"; its complement makes it multi-label.
    y = targets if targets.shape[1] > 1 else np.hstack([targets, ~targets])
    # heavy: iterstrat pulls in scikit-learn, a second of start-up that prediction never needs.
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.full(n, -1, dtype=np.int64)
    for k, (_, test_idx) in enumerate(splitter.split(np.zeros((n, 1)), y)):
        fold[test_idx] = k
    if (fold < 0).any() or np.bincount(fold, minlength=folds).min() == 0:
        raise DataError(
            f"could not deal {n} rows into {folds} non-empty folds; add rows or use fewer folds"
        )
    return fold


# ---------------------------------------------------------------------------- groups of rows
@dataclass
class _Groups:
    """Rows dealt together: the copies of one text."""

    of_row: np.ndarray
    """``(n_texts,)``: each row's group, groups numbered in the order of their first row."""
    sizes: np.ndarray
    """``(n_groups,)``: the rows of each group."""
    positives: np.ndarray
    """``(n_groups, num_labels)``: the positives of each label over the group's rows."""


def _grouped(targets: np.ndarray, groups: np.ndarray | None) -> _Groups | None:
    """The groups of the rows; None when every row is its own group (then splits are row-wise)."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != (len(targets),):
        raise DataError(f"groups must have shape ({len(targets)},), got {groups.shape}")
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    if len(first) == len(groups):
        return None
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    of_row = rank[inverse.reshape(-1)]
    positives = np.zeros((len(first), targets.shape[1]), dtype=np.int64)
    np.add.at(positives, of_row, targets.astype(np.int64))
    return _Groups(of_row, np.bincount(of_row, minlength=len(first)), positives)


def _grouped_split(
    targets: np.ndarray, groups: _Groups, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stratified_split` of whole groups."""
    shares = np.array([1 - val_fraction, val_fraction])
    is_val = _deal_groups(groups, shares, np.random.default_rng(seed)) == 1
    _keep_a_train_positive(groups.positives > 0, is_val)
    if is_val.all() or not is_val.any():
        raise DataError(
            f"too little data to split: {len(targets)} rows hold {len(groups.sizes)} distinct "
            "texts, and the copies of a text stay on one side; add texts or give a val file"
        )
    is_val_row = is_val[groups.of_row]
    return np.flatnonzero(~is_val_row), np.flatnonzero(is_val_row)


def _deal_groups(groups: _Groups, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Deal groups into parts holding ``shares`` of the rows: iterative stratification (Sechidis
    et al., 2011) where a group weighs as many rows as it holds.

    The rarest label left goes first: its groups, largest first (the hardest to fit), each to the
    part that most lacks that label's positives, then rows, then at random; groups without labels
    go last, to the part that most lacks rows. Once only as many groups are left as parts are
    empty, each goes to an empty part, so every part gets one when there are enough groups.

    Returns:
        ``(n_groups,)``: the part of each group, ``0..len(shares)-1``.
    """
    positives, sizes = groups.positives, groups.sizes
    want = shares[:, None] * positives.sum(axis=0)
    want_rows = shares * sizes.sum()
    filled = np.zeros(len(shares), dtype=np.int64)
    part = np.full(len(sizes), -1, dtype=np.int64)
    order = rng.permutation(len(sizes))
    order = order[np.argsort(-sizes[order], kind="stable")]
    unassigned = len(sizes)
    while unassigned:
        left = order[part[order] < 0]
        remaining = positives[left].sum(axis=0)
        labelled = np.flatnonzero(remaining)
        j = labelled[np.argmin(remaining[labelled])] if len(labelled) else None
        for g in left if j is None else left[positives[left, j] > 0]:
            need = want_rows if j is None else want[:, j]
            empty = np.flatnonzero(filled == 0)
            candidates = empty if unassigned <= len(empty) else np.arange(len(shares))
            keys = (rng.random(len(candidates)), want_rows[candidates], need[candidates])
            best = candidates[np.lexsort(keys)[-1]]
            part[g], unassigned = best, unassigned - 1
            filled[best] += 1
            want[best] -= positives[g]
            want_rows[best] -= sizes[g]
    return part
