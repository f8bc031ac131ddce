"""Label issues: the (text, label) pairs whose given label out-of-fold probabilities doubt.

Every pair is scored, and cleanlab's multi-label API decides which pairs are issues and how
healthy each label is:

- :func:`pair_scores` gives each pair a score in [0, 1], how likely its given label is wrong:
  one minus cleanlab's per-class label quality (``get_label_quality_scores_per_class``). The
  ranking is one of :data:`RANKINGS`: the default, cleanlab's self-confidence (which for one
  label's yes/no is ``|p - y|``), or ``adjusted``, self-confidence on probabilities from which each
  label's confident thresholds are subtracted (meant to lift a rare label's missing positives;
  it ranked planted flips worse, see :data:`DEFAULT_RANKING`). ``distance`` is ``|p - y|``
  computed here, the reference ranking the audit is measured against.
- :func:`find_label_issues` keeps the pairs cleanlab's confident learning flags per label
  (``find_multilabel_issues_per_class``, pruned by noise rate), ranked by their scores, and
  :func:`label_health` gives each label's quality, estimated noise (given 1, should be 0) and
  missing rate (given 0, should be 1) from ``rank_classes_by_multilabel_quality``.

The probabilities must be out-of-sample (each row's from a model that did not train on it, as
``multihot cv`` writes them): in-sample probabilities agree with the labels they were fitted on.

Partial labels (``known``, the labelled pairs): an unknown pair is never an issue, and no label's
estimates count it. cleanlab's multi-label functions treat each label on its own (one-vs-rest:
its confident joint, noise rate and pruning use only that label's column), so each label is run
on the rows known for it, nothing else: the labels known on the same rows go to cleanlab together
(:func:`_blocks`; a data set merged from two sources labelled for different labels is two calls)
and the results are put back in place. An unknown pair scores 0 and is never flagged; a label's
health counts its known rows (``LabelHealth.known``). Masking the results of one run over every
row instead would leave the unknown pairs in each label's noise estimates as given "no"s, which
is the bias partial labels exist to avoid. Without ``known`` every function calls cleanlab
exactly as before. cleanlab refuses a label that every row it runs on has (nothing tells a
given "yes" from a "no"): such a label flags no issue and gets health 1, and labels that no text
labelled for them has are scored ``|p - y|`` (cleanlab's unadjusted self-confidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from multihot.core.errors import ConfigError, MultihotError
from multihot.quality.findings import LabelHealth, LabelIssue

Ranking = Literal["adjusted", "self_confidence", "distance"]
RANKINGS: tuple[str, ...] = ("adjusted", "self_confidence", "distance")
"""``adjusted``: cleanlab's self-confidence after subtracting each label's confident thresholds
(its ``adjust_pred_probs``); ``self_confidence``: cleanlab's self-confidence as it is;
``distance``: ``|p - y|``, computed here, the reference a ranking must beat."""
DEFAULT_RANKING: Ranking = "self_confidence"
"""Chosen on planted noise in GoEmotions train (``benchmarks/audit.py``, the baseline's out-of-fold
probabilities): ROC AUC 0.933 (missing) and 0.927 (wrong) against ``adjusted``'s 0.800 and 0.783."""


def _checked(targets: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    targets = np.asarray(targets)
    probs = np.asarray(probs, dtype=np.float64)
    if targets.shape != probs.shape or targets.ndim != 2:
        raise ValueError(f"targets {targets.shape} and probabilities {probs.shape} differ")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("targets must be 0/1")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probabilities must be finite and in [0, 1]")
    return targets.astype(np.int64), np.clip(probs, 1e-7, 1 - 1e-7)


def _cleanlab():
    """cleanlab's multi-label API, or a clear error where the ``audit`` extra is not installed."""
    try:
        # optional and heavy: cleanlab, the audit extra (this error says how to install it)
        import cleanlab.multilabel_classification as multilabel
    except ImportError:
        raise MultihotError(
            "label issues are found with cleanlab, which is not installed: "
            "pip install 'multihot[audit]' (or run the data checks alone: --checks-only)"
        ) from None
    return multilabel


def _label_lists(targets: np.ndarray) -> list[list[int]]:
    """cleanlab's multi-label form: the indices of each row's labels."""
    return [np.flatnonzero(row).tolist() for row in targets]


Block = tuple[np.ndarray | None, np.ndarray | None]
"""Rows and labels (column indices) cleanlab runs on together; None for all of them."""


def _known_mask(known: np.ndarray | None, targets: np.ndarray) -> np.ndarray | None:
    if known is None:
        return None
    known = np.asarray(known, dtype=bool)
    if known.shape != targets.shape:
        raise ValueError(f"known {known.shape} and targets {targets.shape} differ")
    return known


def _blocks(known: np.ndarray | None) -> list[Block]:
    """The blocks cleanlab runs on: everything without partial labels; with them, each set of
    labels known on the same rows, with those rows (labels known on no row are left out).

    Example:
        >>> known = np.array([[True, True, False], [True, False, True], [True, False, True]])
        >>> [(r.tolist(), c.tolist()) for r, c in _blocks(known)]
        [([1, 2], [2]), ([0], [1]), ([0, 1, 2], [0])]
    """
    if known is None:
        return [(None, None)]
    patterns, inverse = np.unique(known.T, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    blocks: list[tuple[np.ndarray | None, np.ndarray | None]] = []
    for group, pattern in enumerate(patterns):
        if pattern.any():
            blocks.append((np.flatnonzero(pattern), np.flatnonzero(inverse == group)))
    return blocks


def _take(array: np.ndarray, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray:
    """The block's part of ``(n, L)`` ``array`` (the array itself for the whole of it)."""
    if rows is not None:
        array = array[rows]
    return array if cols is None else array[:, cols]


def _two_valued(targets: np.ndarray) -> np.ndarray:
    """``(L,)`` bool: the labels given 0 on some row of ``targets`` (cleanlab refuses a label
    that every row has: nothing tells its given "yes" from a "no")."""
    return (targets == 0).any(axis=0)


def pair_scores(
    targets: np.ndarray,
    probs: np.ndarray,
    ranking: Ranking = DEFAULT_RANKING,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """``(n, L)``: how likely each pair's given label is wrong, in [0, 1] (higher: more likely);
    0 for an unknown pair (partial labels: ``known``, ``(n, L)`` bool, the labelled pairs).

    Example:
        >>> t = np.array([[1, 0], [0, 0], [0, 1], [1, 1]])
        >>> p = np.array([[0.9, 0.1], [0.2, 0.1], [0.1, 0.8], [0.8, 0.9]])
        >>> pair_scores(t, p, "distance")[1].round(2).tolist()
        [0.2, 0.1]
    """
    targets, probs = _checked(targets, probs)
    known = _known_mask(known, targets)
    if ranking not in RANKINGS:
        raise ConfigError(f"ranking {ranking!r}: expected one of {', '.join(RANKINGS)}")
    scores = np.abs(probs - targets)
    if ranking != "distance":
        for rows, cols in _blocks(known):
            block = _take(targets, rows, cols)
            if known is not None and not block.any():
                continue  # cleanlab cannot score a block without a label: |p - y| stays
            value = _class_scores(block, _take(probs, rows, cols), ranking)
            if rows is None and cols is None:
                scores = value
            else:
                assert rows is not None and cols is not None  # a mask gives both
                scores[np.ix_(rows, cols)] = value
    return scores if known is None else np.where(known, scores, 0.0)


def _class_scores(targets: np.ndarray, probs: np.ndarray, ranking: Ranking) -> np.ndarray:
    """One minus cleanlab's per-class label quality of each pair."""
    quality = _cleanlab().rank.get_label_quality_scores_per_class(
        _label_lists(targets),
        probs,
        method="self_confidence",
        adjust_pred_probs=ranking == "adjusted",
    )
    quality = np.asarray(quality, dtype=np.float64)  # (n, L) in cleanlab 2.9; a list of (n,) before
    return 1.0 - (quality if quality.shape == targets.shape else quality.T)


def flagged_pairs(
    targets: np.ndarray, probs: np.ndarray, known: np.ndarray | None = None
) -> np.ndarray:
    """``(n, L)`` bool: the pairs cleanlab's confident learning finds mislabelled, per label
    (pruned by the estimated noise rate of each label's one-vs-rest problem), each label over
    the rows known for it (partial labels: ``known``); never an unknown pair."""
    targets, probs = _checked(targets, probs)
    known = _known_mask(known, targets)
    flagged = np.zeros(targets.shape, dtype=bool)
    for rows, cols in _blocks(known):
        block, block_probs = _take(targets, rows, cols), _take(probs, rows, cols)
        index = np.arange(targets.shape[1]) if cols is None else cols
        usable = _two_valued(block)  # a label every row has flags nothing
        if not usable.all():
            block, block_probs, index = block[:, usable], block_probs[:, usable], index[usable]
        if not len(index):
            continue
        if rows is None and usable.all():
            flagged = _class_flags(block, block_probs)
        else:
            flagged[np.ix_(np.arange(len(targets)) if rows is None else rows, index)] = (
                _class_flags(block, block_probs)
            )
    return flagged


def _class_flags(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    masks = _cleanlab().filter.find_multilabel_issues_per_class(
        _label_lists(targets), probs, n_jobs=1
    )
    masks = np.asarray(masks, dtype=bool)  # (n, L) in cleanlab 2.9; a list of (n,) before
    return masks if masks.shape == targets.shape else masks.T


def find_label_issues(
    targets: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    label_names: Sequence[str],
    texts: Sequence[str],
    ids: Sequence[str] | None = None,
    *,
    ranking: Ranking = DEFAULT_RANKING,
    known: np.ndarray | None = None,
) -> list[LabelIssue]:
    """The pairs cleanlab flags, most likely wrong first (ties: the row, then the label order).

    Args:
        targets: ``(n, L)`` 0/1, the labels as given (0 where unknown).
        probs: ``(n, L)`` out-of-fold probabilities.
        thresholds: ``(L,)`` each label's threshold on those probabilities.
        label_names, texts, ids: for the records (``ids``: DATA's id column, when it has one).
        ranking: how pairs are scored (:data:`RANKINGS`).
        known: partial labels: ``(n, L)`` bool, the labelled pairs (None: all); an unknown pair
            is never an issue.
    """
    scores = pair_scores(targets, probs, ranking, known)
    rows, cols = np.nonzero(flagged_pairs(targets, probs, known))
    order = np.lexsort((cols, rows, -scores[rows, cols]))
    return [
        LabelIssue(
            row=int(rows[i]),
            label=label_names[cols[i]],
            given=int(targets[rows[i], cols[i]]),
            score=round(float(scores[rows[i], cols[i]]), 6),
            probability=round(float(probs[rows[i], cols[i]]), 6),
            threshold=round(float(thresholds[cols[i]]), 6),
            text=texts[rows[i]],
            id=None if ids is None else ids[rows[i]],
        )
        for i in order
    ]


def label_health(
    targets: np.ndarray,
    probs: np.ndarray,
    label_names: Sequence[str],
    issues: list[LabelIssue],
    known: np.ndarray | None = None,
) -> tuple[list[LabelHealth], float]:
    """Each label's health (worst first) and the data's overall health score, from cleanlab.

    With partial labels (``known``), each label's estimates are over the rows known for it
    (``LabelHealth.known`` says how many), and the overall score is cleanlab's over those rows:
    one minus the share of the texts labelled for some label that have an issue."""
    targets, probs = _checked(targets, probs)
    known = _known_mask(known, targets)
    dataset = _cleanlab().dataset
    found = {(issue.label, issue.kind): 0 for issue in issues}
    for issue in issues:
        found[(issue.label, issue.kind)] += 1
    positives = targets.sum(axis=0)
    counts = None if known is None else known.sum(axis=0)
    health = []
    for j, quality, noise, missing_rate in _class_health(targets, probs, known):
        name = str(label_names[j])
        health.append(
            LabelHealth(
                label=name,
                positives=int(positives[j]),
                health=round(quality, 6),
                noise=round(noise, 6),
                missing_rate=round(missing_rate, 6),
                wrong=found.get((name, "wrong"), 0),
                missing=found.get((name, "missing"), 0),
                known=None if counts is None else int(counts[j]),
            )
        )
    health.sort(key=lambda h: (h.health, h.label))
    if known is None:
        return health, float(dataset.overall_multilabel_health_score(_label_lists(targets), probs))
    labelled = known.any(axis=1)
    with_issue = flagged_pairs(targets, probs, known).any(axis=1)
    return health, 1.0 - float(with_issue.sum()) / max(1, int(labelled.sum()))


def _class_health(
    targets: np.ndarray, probs: np.ndarray, known: np.ndarray | None
) -> list[tuple[int, float, float, float]]:
    """``(label index, quality, noise, missing rate)`` of every label, from cleanlab's class
    ranking over each label's known rows (noise: the estimated share of the texts given the label
    that should not have it; missing rate: of those without it that should; quality: 1 - noise); a label known on no row, or had by every row it is
    known on, gets quality 1 and no noise (nothing to estimate them from)."""
    found: dict[int, tuple[float, float, float]] = {}
    for rows, cols in _blocks(known):
        block, block_probs = _take(targets, rows, cols), _take(probs, rows, cols)
        index = np.arange(targets.shape[1]) if cols is None else cols
        usable = _two_valued(block)
        if not usable.all():
            block, block_probs, index = block[:, usable], block_probs[:, usable], index[usable]
        if not len(index):
            continue
        table = _cleanlab().dataset.rank_classes_by_multilabel_quality(
            _label_lists(block), block_probs, class_names=index.tolist()
        )
        # cleanlab's "Label Noise" is its estimated count of wrong positives divided by every row
        # of the call, not by the rows given the label as its docstring says (and its "Label
        # Quality Score" is one minus that), so a rare label always looks healthy. The shares
        # here are per given positive and per given negative, and the health one minus the first.
        rows_in_call = block.shape[0]
        given = dict(zip(index.tolist(), block.sum(axis=0).tolist(), strict=True))
        for _, row in table.iterrows():
            j = int(row["Class Name"])
            wrong = float(row["Label Noise"]) * rows_in_call / max(1, given[j])
            missing = (
                float(row["Inverse Label Noise"]) * rows_in_call / max(1, rows_in_call - given[j])
            )
            found[j] = (1.0 - min(1.0, wrong), min(1.0, wrong), min(1.0, missing))
    return [(j, *found.get(j, (1.0, 0.0, 0.0))) for j in range(targets.shape[1])]
