"""Multi-label evaluation metrics, all computed by :mod:`sklearn.metrics`.

:func:`compute_metrics` turns targets, probabilities and thresholds into one JSON-serialisable dict
(plain floats, ``None`` where a metric is undefined), the form written to ``metrics.json`` and
compared between epochs with :func:`metric_is_better`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np

from multihot.core.errors import ConfigError, MultihotError
from multihot.core.metric_names import AVERAGES as _AVERAGES
from multihot.core.metric_names import PRIMARY_METRICS
from multihot.data.encoding import text_lengths, tokens_read
from multihot.data.preprocess import prepare_texts
from multihot.scoring.known import check_known

logger = logging.getLogger(__name__)


_LOWER_IS_BETTER = frozenset({"hamming_loss"})


def metric_is_better(name: str, new: float | None, old: float | None) -> bool:
    """Whether ``new`` improves on ``old`` for metric ``name``.

    An undefined (``None``) new value never improves; any defined value improves on ``None``, so
    the first epoch with a defined metric is always kept.

    Args:
        name: One of :data:`PRIMARY_METRICS`.
        new: The candidate value, or ``None``.
        old: The best value so far, or ``None`` if there is none yet.

    Returns:
        True if ``new`` is strictly better than ``old``.

    Raises:
        ConfigError: If ``name`` is not in :data:`PRIMARY_METRICS`.

    Example:
        >>> metric_is_better("macro_f1", 0.7, 0.6), metric_is_better("hamming_loss", 0.2, 0.1)
        (True, False)
        >>> metric_is_better("macro_roc_auc", 0.5, None)
        True
    """
    if name not in PRIMARY_METRICS:
        raise ConfigError(f"unknown metric {name!r}: expected one of {', '.join(PRIMARY_METRICS)}")
    if new is None:
        return False
    if old is None:
        return True
    return new < old if name in _LOWER_IS_BETTER else new > old


def _float(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _mean_defined(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _check_inputs(
    targets, probs, thresholds, label_names, decisions
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    targets = np.asarray(targets)
    probs = np.asarray(probs, dtype=np.float64)
    if targets.ndim != 2:
        raise MultihotError(f"targets must be 2-D (n_texts, n_labels), got shape {targets.shape}")
    if probs.shape != targets.shape:
        raise MultihotError(
            f"probs shape {probs.shape} does not match targets shape {targets.shape}"
        )
    n, num_labels = targets.shape
    if n == 0:
        raise MultihotError("cannot compute metrics on zero texts")
    if len(label_names) != num_labels:
        raise MultihotError(f"got {len(label_names)} label names for {num_labels} label columns")
    if not np.isin(targets, (0, 1)).all():
        raise MultihotError("targets must contain only 0 and 1")
    if not np.isfinite(probs).all():
        raise MultihotError("probs contain NaN or infinite values")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape not in ((), (num_labels,)):
        raise MultihotError(
            f"thresholds must be a scalar or shape ({num_labels},), got shape {thresholds.shape}"
        )
    thresholds = np.broadcast_to(thresholds, (num_labels,))
    if decisions is None:
        decisions = probs >= thresholds
    else:
        decisions = np.asarray(decisions)
        if decisions.shape != targets.shape:
            raise MultihotError(
                f"decisions shape {decisions.shape} does not match targets shape {targets.shape}"
            )
        decisions = decisions.astype(bool)
    return targets.astype(np.int64), probs, thresholds, decisions.astype(np.int64)


_PRF = ("precision", "recall", "f1")
"""The per-label and averaged decision scores, in the order sklearn returns them."""


def compute_metrics(
    targets: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray | float,
    label_names: Sequence[str],
    decisions: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> dict:
    """Every multi-label metric in one JSON-serialisable dict.

    Threshold metrics (P/R/F1, Hamming loss, subset accuracy, Jaccard) use ``decisions``, by default
    ``probs >= thresholds``; ranking metrics (ROC-AUC, AP, LRAP) use ``probs``. ROC-AUC is undefined
    for a label without both positives and negatives, AP for a label without positives: such a
    label gets ``None`` and the macro averages are taken over the labels where the metric is
    defined (``None`` if none are). P/R/F1 use ``zero_division=0``.

    With ``known`` (partial labels), an unknown pair counts nowhere: each label is scored on the
    texts labelled for it, micro averages and the Hamming loss pool the known pairs, and the
    per-text metrics (``samples`` averages, subset accuracy, Jaccard, LRAP) score each text on its
    known labels, over the texts with at least one. A label known in no text has ``None`` for
    every score and is left out of the macro averages; ``per_label`` then also gives ``known``,
    the texts labelled for each label (its ``support`` counts the positives among them).

    Args:
        targets: Shape (n_texts, n_labels), 0/1.
        probs: Shape (n_texts, n_labels), per-label probabilities in [0, 1].
        thresholds: Shape (n_labels,) or a scalar for all labels.
        label_names: Length n_labels, the name of each column (keys of ``per_label``).
        decisions: Optional bool, shape (n_texts, n_labels); overrides ``probs >= thresholds``,
            e.g. after a top-1 fallback.
        known: Optional bool, shape (n_texts, n_labels): the labelled pairs. None (or all True):
            every pair is known, and the metrics are exactly those computed without it.

    Returns:
        The scalar metrics named in :data:`PRIMARY_METRICS`, ``num_texts``, ``num_labels`` and
        ``per_label``: ``{name: {"precision", "recall", "f1", "support", "roc_auc", "ap",
        "threshold"}}``.

    Raises:
        MultihotError: On mismatched shapes, non-binary targets, non-finite probs or zero texts.

    Example:
        >>> targets = np.array([[1, 0], [0, 1], [1, 1]])
        >>> probs = np.array([[0.9, 0.2], [0.3, 0.6], [0.8, 0.4]])
        >>> m = compute_metrics(targets, probs, 0.5, ["joy", "anger"])
        >>> round(m["micro_f1"], 3), m["macro_roc_auc"], m["per_label"]["anger"]["support"]
        (0.857, 1.0, 2)
    """
    # heavy: sklearn, a second to import; `multihot predict` (which imports this module through
    # the package) never computes metrics.
    from sklearn import metrics as skm
    from sklearn.exceptions import UndefinedMetricWarning

    targets, probs, thresholds, decisions = _check_inputs(
        targets, probs, thresholds, label_names, decisions
    )
    known = check_known(known, targets.shape)
    if known is not None:
        return _masked_metrics(skm, targets, probs, thresholds, label_names, decisions, known)
    # zero_division=0 already silences P/R/F1; this catches anything else sklearn finds undefined.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        decided = _decision_metrics(skm, targets, decisions)
        ranking, roc_auc, ap = _ranking_metrics(skm, targets, probs)
    both = {**decided, **ranking}
    out = {key: both[key] for key in _ORDER}  # the order metrics.json has always had
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        p, r, f, support = skm.precision_recall_fscore_support(
            targets, decisions, average=None, zero_division=0
        )
    out["num_texts"], out["num_labels"] = int(targets.shape[0]), int(targets.shape[1])
    out["per_label"] = _per_label(label_names, (p, r, f), support, roc_auc, ap, thresholds)
    return out


def _per_label(label_names, prf, support, roc_auc, ap, thresholds, labelled=None) -> dict:
    """``per_label`` of :func:`compute_metrics`; with partial labels (``labelled``: the texts
    labelled for each label), ``known`` after ``support``, and no P/R/F1 for a label known nowhere."""
    per_label = {}
    for j, name in enumerate(label_names):
        scored = labelled is None or labelled[j] > 0
        entry: dict = {
            key: _float(v[j]) if scored else None for key, v in zip(_PRF, prf, strict=True)
        }
        entry["support"] = int(support[j])
        if labelled is not None:
            entry["known"] = int(labelled[j])
        entry.update(roc_auc=roc_auc[j], ap=ap[j], threshold=_float(thresholds[j]))
        per_label[str(name)] = entry
    return per_label


def _masked_metrics(skm, targets, probs, thresholds, label_names, decisions, known) -> dict:
    """:func:`compute_metrics` over the ``known`` pairs only.

    An unknown pair is set to "no" in both the targets and the decisions: P/R/F1 count only true
    positives, false positives and false negatives, so per label, micro and per text they are then
    those of the known pairs. What also counts true negatives, or ranks, is computed on the known
    pairs themselves.
    """
    from sklearn.exceptions import UndefinedMetricWarning  # heavy: sklearn (see compute_metrics)

    if not known.any():
        raise MultihotError("no (text, label) pair is known: nothing to score")
    y, d = targets * known, decisions * known
    labelled = known.sum(axis=0)
    scored = labelled > 0
    texts = known.any(axis=1)
    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        p, r, f, support = skm.precision_recall_fscore_support(y, d, average=None, zero_division=0)
        for average in _AVERAGES:
            if average == "macro":  # over the labels known somewhere
                values = [_mean_defined([_float(x) for x in v[scored]]) for v in (p, r, f)]
            else:
                rows = texts if average == "samples" else slice(None)
                scores = skm.precision_recall_fscore_support(
                    y[rows], d[rows], average=average, zero_division=0
                )
                values = [_float(v) for v in scores[:3]]
            for name, value in zip(_PRF, values, strict=True):
                out[f"{average}_{name}"] = value
        out["hamming_loss"] = float((y != d).sum() / known.sum())
        out["subset_accuracy"] = _float(skm.accuracy_score(y[texts], d[texts]))
        out["jaccard_samples"] = _float(
            skm.jaccard_score(y[texts], d[texts], average="samples", zero_division=0)
        )
        ranking, roc_auc, ap = _masked_ranking(skm, targets, probs, known)
    both = {**out, **ranking}
    metrics = {key: both[key] for key in _ORDER}
    metrics["num_texts"], metrics["num_labels"] = int(targets.shape[0]), int(targets.shape[1])
    metrics["per_label"] = _per_label(
        label_names, (p, r, f), support, roc_auc, ap, thresholds, labelled
    )
    return metrics


def _masked_ranking(skm, targets, probs, known):
    """:func:`_ranking_metrics` over the known pairs: per label on its labelled texts, micro on
    the known pairs pooled, LRAP per text on its known labels (texts grouped by which labels are
    known, each group scored by scikit-learn and weighted by its texts)."""
    num_labels = targets.shape[1]
    roc_auc: list[float | None] = []
    ap: list[float | None] = []
    for j in range(num_labels):
        y, p = targets[known[:, j], j], probs[known[:, j], j]
        positives = int(y.sum())
        both = 0 < positives < len(y)
        roc_auc.append(_float(skm.roc_auc_score(y, p)) if both else None)
        ap.append(_float(skm.average_precision_score(y, p)) if positives else None)
    y_all, p_all = targets[known], probs[known]
    total_pos = int(y_all.sum())
    lrap = None
    if total_pos > 0:
        texts = known.any(axis=1)
        patterns, group = np.unique(known[texts], axis=0, return_inverse=True)
        y_texts, p_texts = targets[texts], probs[texts]
        total = 0.0
        for g, pattern in enumerate(patterns):
            rows = group.reshape(-1) == g
            score = skm.label_ranking_average_precision_score(
                y_texts[rows][:, pattern], p_texts[rows][:, pattern]
            )
            total += score * rows.sum()
        lrap = _float(total / texts.sum())
    out = {
        "micro_roc_auc": _float(skm.roc_auc_score(y_all, p_all))
        if 0 < total_pos < len(y_all)
        else None,
        "macro_roc_auc": _mean_defined(roc_auc),
        "micro_ap": _float(skm.average_precision_score(y_all, p_all)) if total_pos > 0 else None,
        "macro_ap": _mean_defined(ap),
        "lrap": lrap,
    }
    return out, roc_auc, ap


_ORDER = (
    *(f"{avg}_{m}" for avg in _AVERAGES for m in ("f1", "precision", "recall")),
    *("micro_roc_auc", "macro_roc_auc", "micro_ap", "macro_ap"),
    *("hamming_loss", "subset_accuracy", "jaccard_samples", "lrap"),
)


def _decision_metrics(skm, targets: np.ndarray, decisions: np.ndarray) -> dict:
    """P/R/F1 (every average), Hamming loss, subset accuracy and Jaccard of the decisions."""
    out: dict = {}
    for average in _AVERAGES:
        p, r, f, _ = skm.precision_recall_fscore_support(
            targets, decisions, average=average, zero_division=0
        )
        out[f"{average}_f1"] = _float(f)
        out[f"{average}_precision"] = _float(p)
        out[f"{average}_recall"] = _float(r)
    out["hamming_loss"] = _float(skm.hamming_loss(targets, decisions))
    out["subset_accuracy"] = _float(skm.accuracy_score(targets, decisions))
    out["jaccard_samples"] = _float(
        skm.jaccard_score(targets, decisions, average="samples", zero_division=0)
    )
    return out


def _ranking_metrics(skm, targets: np.ndarray, probs: np.ndarray):
    """``(overall, roc_auc per label, ap per label)``: ROC-AUC, AP and LRAP of the probabilities,
    None where undefined."""
    n, num_labels = targets.shape
    positives = targets.sum(axis=0)
    has_pos = positives > 0
    has_both = has_pos & (positives < n)
    roc_auc = [
        _float(skm.roc_auc_score(targets[:, j], probs[:, j])) if has_both[j] else None
        for j in range(num_labels)
    ]
    ap = [
        _float(skm.average_precision_score(targets[:, j], probs[:, j])) if has_pos[j] else None
        for j in range(num_labels)
    ]
    total_pos = int(positives.sum())
    out = {
        "micro_roc_auc": _float(skm.roc_auc_score(targets, probs, average="micro"))
        if 0 < total_pos < targets.size
        else None,
        "macro_roc_auc": _mean_defined(roc_auc),
        "micro_ap": _float(skm.average_precision_score(targets, probs, average="micro"))
        if total_pos > 0
        else None,
        "macro_ap": _mean_defined(ap),
        # sklearn scores a text with no (or only) positive labels as 1.0; with no positives at
        # all every text would score 1.0, which says nothing, so report it as undefined.
        "lrap": _float(skm.label_ranking_average_precision_score(targets, probs))
        if total_pos > 0
        else None,
    }
    return out, roc_auc, ap


def length_buckets(
    lengths: Sequence[int],
    targets: np.ndarray,
    decisions: np.ndarray,
    window: int,
    read: int | None = None,
    known: np.ndarray | None = None,
) -> list[dict]:
    """Metrics of texts grouped by their length in tokens, so a user sees whether long texts are
    where the model fails: up to one ``window`` (``max_length``), then up to 2, 4, 8... windows.

    Each bucket (only those with texts) has ``tokens`` (its range), ``texts``, ``micro_f1``,
    ``macro_f1`` (over the labels with a positive in the bucket; None with none), ``subset_accuracy``
    and, given ``read`` (the tokens a text is read up to), ``cut_texts``: its texts longer than that.
    With ``known`` (partial labels) the scores are over the known pairs (subset accuracy over the
    bucket's texts with a known label; None with none).

    Example:
        >>> y = np.array([[1, 0], [0, 1], [1, 1]]); d = np.array([[1, 0], [0, 0], [1, 1]])
        >>> [(b["tokens"], b["texts"], b["micro_f1"]) for b in length_buckets([10, 20, 70], y, d, 16)]
        [('1-16', 1, 1.0), ('17-32', 1, 0.0), ('65-128', 1, 1.0)]
    """
    from sklearn.metrics import f1_score  # heavy: sklearn (as in compute_metrics)

    tokens = np.asarray(lengths, dtype=np.int64)
    targets, decisions = np.asarray(targets), np.asarray(decisions)
    if known is not None:  # an unknown pair as "no" on both sides: no TP, FP or FN
        known = np.asarray(known, dtype=bool)
        targets, decisions = targets * known, decisions * known
    buckets: list[dict] = []
    low, high = 1, window
    while low <= (tokens.max() if len(tokens) else 0):
        rows = (tokens >= low) & (tokens <= high)
        if rows.any():
            y, d = targets[rows], decisions[rows]
            present = np.flatnonzero(y.any(0))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                micro = f1_score(y, d, average="micro", zero_division=0)
                macro = (
                    f1_score(y[:, present], d[:, present], average="macro", zero_division=0)
                    if len(present)
                    else None
                )
            bucket = {
                "tokens": f"{low}-{high}",
                "texts": int(rows.sum()),
                "micro_f1": float(micro),
                "macro_f1": None if macro is None else float(macro),
                "subset_accuracy": float((y == d).all(1).mean()),
            }
            if known is not None:
                has = known[rows].any(1)
                exact = (y == d).all(1)[has]
                bucket["subset_accuracy"] = float(exact.mean()) if has.any() else None
            if read is not None:
                bucket["cut_texts"] = int((tokens[rows] > read).sum())
            buckets.append(bucket)
        low, high = high + 1, high * 2
    return buckets


BASELINE_BUCKET_WORDS = 64
"""The first length bucket of a linear baseline, in words (it reads every word; no window)."""


def by_length(tokenizer, reading, texts: Sequence[str], targets, decisions, known=None) -> dict:
    """The ``by_length`` entry of evaluation metrics: :func:`length_buckets` of ``texts`` in tokens
    of ``tokenizer`` with the window and reach of ``reading`` (a
    :class:`multihot.data.encoding.Reading`), or in words without a tokenizer (a linear baseline);
    ``known``: the labelled pairs, with partial labels."""
    if tokenizer is None:
        words = [len(text.split()) for text in texts]
        return {
            "unit": "words",
            "buckets": length_buckets(
                words, targets, decisions, BASELINE_BUCKET_WORDS, known=known
            ),
        }
    lengths = text_lengths(tokenizer, prepare_texts(texts, reading.preprocess))
    read = tokens_read(tokenizer, reading)
    buckets = length_buckets(lengths, targets, decisions, reading.max_length, read, known)
    return {"unit": "tokens", "read_up_to": read, "buckets": buckets}
