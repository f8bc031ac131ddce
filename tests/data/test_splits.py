import numpy as np
import pytest
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from multihot.core.errors import ConfigError, DataError
from multihot.data.splits import stratified_folds, stratified_split


def random_targets(n=200, num_labels=12, seed=0) -> np.ndarray:
    """Sparse multi-hot targets with a long tail of rare labels, like real multi-label data."""
    rng = np.random.default_rng(seed)
    rates = np.geomspace(0.3, 0.005, num_labels)
    return (rng.random((n, num_labels)) < rates).astype(np.float32)


def test_deterministic_for_a_seed():
    targets = random_targets()
    first = stratified_split(targets, 0.2, seed=3)
    again = stratified_split(targets, 0.2, seed=3)
    other = stratified_split(targets, 0.2, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize(
    ("n", "val_fraction", "n_val"), [(10, 0.1, 1), (10, 0.3, 3), (50, 0.1, 5), (333, 0.5, 167)]
)
def test_sizes_sorted_disjoint_and_covering(n, val_fraction, n_val):
    train_idx, val_idx = stratified_split(random_targets(n), val_fraction, seed=0)
    assert len(val_idx) == n_val
    assert len(train_idx) == n - len(val_idx)
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(val_idx) > 0)
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.array_equal(np.union1d(train_idx, val_idx), np.arange(n))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("val_fraction", [0.2, 0.4, 0.5])
def test_every_label_with_two_positives_is_on_the_train_side(seed, val_fraction):
    targets = random_targets(60, 15, seed=seed)
    train_idx, _ = stratified_split(targets, val_fraction, seed=seed)
    needs_train = targets.sum(axis=0) >= 2
    assert np.all(targets[train_idx][:, needs_train].sum(axis=0) >= 1)


def test_repairs_a_rare_label_that_iterative_stratification_leaves_out_of_train():
    # A case found by search: plain iterative stratification (seed 0) puts both positives of
    # label 3 (rows 0 and 6) in validation.
    targets = np.array(
        [[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1], [0, 0, 1, 0, 0]]
        + [[0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    )
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=5, random_state=0)
    plain_train, _ = next(splitter.split(np.zeros(len(targets)), targets))
    assert targets[plain_train, 3].sum() == 0

    train_idx, val_idx = stratified_split(targets, 0.5, seed=0)
    assert targets[train_idx, 3].sum() >= 1
    assert targets[train_idx][:, targets.sum(axis=0) >= 2].sum(axis=0).min() >= 1
    assert len(val_idx) == 5


def test_stratifies_label_shares():
    targets = random_targets(2000, 8, seed=1)
    train_idx, val_idx = stratified_split(targets, 0.25, seed=0)
    share = targets.mean(axis=0)
    assert np.allclose(targets[val_idx].mean(axis=0), share, atol=0.02)
    assert np.allclose(targets[train_idx].mean(axis=0), share, atol=0.02)


def test_single_label_column_works():
    targets = np.array([[1], [0]] * 10)
    train_idx, val_idx = stratified_split(targets, 0.2, seed=0)
    assert len(val_idx) == 4 and targets[val_idx].sum() == 2


@pytest.mark.parametrize("val_fraction", [0, 1, -0.1, 1.5])
def test_val_fraction_must_be_between_zero_and_one(val_fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        stratified_split(random_targets(), val_fraction, seed=0)


@pytest.mark.parametrize(("n", "val_fraction"), [(1, 0.5), (3, 0.9), (0, 0.2)])
def test_too_little_data(n, val_fraction):
    with pytest.raises(DataError, match="too little data"):
        stratified_split(np.zeros((n, 3)), val_fraction, seed=0)


# ------------------------------------------------------------------------------------- k folds
@pytest.mark.parametrize(("n", "folds"), [(5, 5), (17, 3), (200, 5), (333, 10)])
def test_folds_put_every_row_in_exactly_one_fold(n, folds):
    fold = stratified_folds(random_targets(n), folds, seed=0)
    assert fold.shape == (n,) and fold.dtype.kind == "i"
    assert set(fold.tolist()) == set(range(folds))  # every fold used, nothing outside 0..folds-1
    rows = [np.flatnonzero(fold == k) for k in range(folds)]
    assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(n))
    assert max(map(len, rows)) - min(map(len, rows)) <= 2  # about n / folds each


def test_folds_are_deterministic_for_a_seed():
    targets = random_targets()
    assert np.array_equal(stratified_folds(targets, 4, 3), stratified_folds(targets, 4, 3))
    assert not np.array_equal(stratified_folds(targets, 4, 3), stratified_folds(targets, 4, 4))


def fold_deviation(targets: np.ndarray, fold: np.ndarray, folds: int) -> float:
    """Mean over labels and folds of |a fold's positive rate - the whole set's|."""
    whole = targets.mean(axis=0)
    return float(np.mean([np.abs(targets[fold == k].mean(axis=0) - whole) for k in range(folds)]))


@pytest.mark.parametrize("seed", range(5))
def test_folds_keep_label_shares_closer_than_a_random_kfold(seed):
    from sklearn.model_selection import KFold

    # Rates from 0.3 down to 0.005: the last labels have a handful of positives in 300 rows.
    targets, folds = random_targets(300, 12, seed=seed), 5
    plain = np.empty(len(targets), dtype=int)
    for k, (_, test_idx) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(targets)):
        plain[test_idx] = k
    stratified = fold_deviation(targets, stratified_folds(targets, folds, seed), folds)
    random = fold_deviation(targets, plain, folds)
    # Measured: 0.004-0.007 against 0.016-0.023 over seeds 0-9.
    assert stratified < 0.6 * random, (stratified, random)


def test_folds_of_a_single_label_column():
    targets = np.array([[1], [0], [0]] * 6)
    fold = stratified_folds(targets, 3, seed=0)
    assert [int(targets[fold == k].sum()) for k in range(3)] == [2, 2, 2]


@pytest.mark.parametrize("folds", [1, 0, -2, 2.5, True])
def test_folds_must_be_an_integer_of_at_least_two(folds):
    with pytest.raises(ConfigError, match="folds must be an integer of at least 2"):
        stratified_folds(random_targets(), folds, seed=0)


def test_fewer_rows_than_folds():
    with pytest.raises(DataError, match="too little data for 5 folds: 4 rows"):
        stratified_folds(np.zeros((4, 3)), 5, seed=0)


# ------------------------------------------------------------------- copies of a text (groups)
def copies(texts: int, times: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``texts`` distinct rows repeated ``times`` times, as ``(targets, groups)``."""
    targets = random_targets(texts, 6, seed=seed)
    return np.tile(targets, (times, 1)), np.tile(np.arange(texts), times)


def zipf_groups(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Groups of 1 to 40 copies (most single, a few large), as ``(targets, groups)``."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(2.0, 600), 40)
    return np.repeat(random_targets(600, 8, seed), sizes, axis=0), np.repeat(np.arange(600), sizes)


def groups_straddling(groups: np.ndarray, part: np.ndarray) -> int:
    return sum(len(set(part[groups == g].tolist())) > 1 for g in np.unique(groups))


def test_folds_keep_the_copies_of_a_text_in_one_fold():
    """The issue's reproduction: 20 texts, 5 copies each, 5 folds."""
    targets, groups = copies(20, 5)
    assert groups_straddling(groups, stratified_folds(targets, 5, seed=0)) > 0  # rows alone
    fold = stratified_folds(targets, 5, seed=0, groups=groups)
    assert groups_straddling(groups, fold) == 0
    assert np.bincount(fold).tolist() == [20] * 5


@pytest.mark.parametrize("seed", range(3))
def test_folds_of_uneven_groups_stay_balanced_in_rows_and_labels(seed):
    targets, groups = zipf_groups(seed)
    folds = 5
    fold = stratified_folds(targets, folds, seed=seed, groups=groups)
    assert groups_straddling(groups, fold) == 0
    sizes = np.bincount(fold, minlength=folds)
    # No fold further from n / folds than the largest group.
    assert np.abs(sizes - len(targets) / folds).max() <= np.bincount(groups).max(), sizes
    plain = np.random.default_rng(seed).permutation(np.arange(600) % folds)[groups]
    assert fold_deviation(targets, fold, folds) < fold_deviation(targets, plain, folds)


def test_distinct_rows_give_the_same_folds_and_split_with_or_without_groups():
    """Resumed cross-validations of data without copies keep the folds they started with."""
    targets = random_targets()
    rows = np.arange(len(targets))
    assert np.array_equal(stratified_folds(targets, 4, 3), stratified_folds(targets, 4, 3, rows))
    split, grouped = stratified_split(targets, 0.2, 3), stratified_split(targets, 0.2, 3, rows)
    assert all(np.array_equal(a, b) for a, b in zip(split, grouped, strict=True))


@pytest.mark.parametrize("seed", range(3))
def test_split_keeps_copies_on_one_side_with_about_the_fraction_of_rows(seed):
    targets, groups = zipf_groups(seed)
    train_idx, val_idx = stratified_split(targets, 0.2, seed=seed, groups=groups)
    assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(targets)))
    assert not set(groups[train_idx].tolist()) & set(groups[val_idx].tolist())
    assert abs(len(val_idx) - 0.2 * len(targets)) <= np.bincount(groups).max()
    # Every label with positives in two or more groups keeps one on the train side.
    group_positives = np.zeros((groups.max() + 1, targets.shape[1]))
    np.add.at(group_positives, groups, targets)
    keeps = (group_positives > 0).sum(axis=0) >= 2
    assert targets[train_idx][:, keeps].sum(axis=0).min() > 0


def test_fewer_distinct_texts_than_folds_or_sides():
    targets, groups = copies(3, 4)
    with pytest.raises(DataError, match="12 rows hold 3 distinct texts"):
        stratified_folds(targets, 5, seed=0, groups=groups)
    with pytest.raises(DataError, match="too little data to split: 12 rows hold 1 distinct"):
        stratified_split(targets, 0.2, seed=0, groups=np.zeros(12, dtype=int))
