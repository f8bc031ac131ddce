"""Calibration: whether a probability of 0.8 means 80%, and a temperature and bias per label that
make it so.

Every (text, label) pair is one yes/no forecast. :func:`reliability` bins the forecasts by
probability and compares each bin's mean probability with how often the label was there;
:func:`expected_calibration_error` is the gap between them, weighted by the bins' sizes (over all
pairs, or per label).

:func:`fit_calibration` fits a temperature ``T_j`` and a bias ``b_j`` per label on labelled data
(Platt scaling with a positive slope), minimising the binary cross-entropy of
``sigmoid(logit / T_j + b_j)``; the ``temperature`` method fits ``T_j`` alone. Both are increasing
in the logit, so every label's order of texts is kept and AUC and average precision do not move;
thresholds must be tuned again on the calibrated probabilities, since every cut point moves.

With partial labels every function takes ``known``, the labelled pairs (:mod:`multihot.scoring.known`):
an unknown pair is no forecast, binned nowhere and fitted on by no label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from multihot.core.errors import MultihotError
from multihot.scoring.known import check_known
from multihot.scoring.probabilities import sigmoid

ECE_BINS = 15
"""Equal-width probability bins for the calibration error and the reliability diagram."""
LOG_T_BOUNDS = (-4.0, 4.0)
"""The search range of ``log T``: temperatures from 0.018 to 55."""


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's bins: per bin, its forecasts' mean probability, the share of them
    that were positive, and how many there were (empty bins have count 0 and NaN means)."""

    edges: np.ndarray
    confidence: np.ndarray
    frequency: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """The expected calibration error of these bins."""
        total = self.count.sum()
        if total == 0:
            return float("nan")
        filled = self.count > 0
        gaps = np.abs(self.confidence[filled] - self.frequency[filled])
        return float((gaps * self.count[filled]).sum() / total)


def _check(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    targets, scores = np.asarray(targets), np.asarray(scores, dtype=np.float64)
    if targets.shape != scores.shape:
        raise MultihotError(f"targets {targets.shape} and scores {scores.shape} differ in shape")
    return targets.astype(np.float64), scores


def reliability(
    targets: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS, known: np.ndarray | None = None
) -> Reliability:
    """Reliability bins over every entry of ``probs`` (any shape) against ``targets`` (0/1), or
    over the entries ``known`` (bool, the same shape) marks."""
    targets, probs = _check(targets, probs)
    known = check_known(known, targets.shape)
    if known is None:
        y, p = targets.ravel(), probs.ravel()
    else:
        y, p = targets[known], probs[known]
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; 0 joins the first bin.
    which = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=p, minlength=bins) / count
        frequency = np.bincount(which, weights=y, minlength=bins) / count
    return Reliability(edges, confidence, frequency, count)


def expected_calibration_error(
    targets: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS, known: np.ndarray | None = None
) -> float:
    """ECE over all (text, label) pairs of ``(n_texts, n_labels)`` arrays (the ``known`` ones)."""
    return reliability(targets, probs, bins, known).ece


def per_label_ece(
    targets: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS, known: np.ndarray | None = None
) -> np.ndarray:
    """ECE of each label's column, shape ``(n_labels,)``; with ``known``, on the texts labelled
    for the label (NaN for a label known in none)."""
    targets, probs = _check(targets, probs)
    known = check_known(known, targets.shape)
    if known is None:
        return np.array(
            [reliability(targets[:, j], probs[:, j], bins).ece for j in range(probs.shape[1])]
        )
    return np.array(
        [
            reliability(targets[known[:, j], j], probs[known[:, j], j], bins).ece
            for j in range(probs.shape[1])
        ]
    )


METHODS = ("platt", "temperature")
"""``platt``: a temperature and a bias per label, ``sigmoid(logit / T + b)``; ``temperature``: the
temperature alone, ``sigmoid(logit / T)``. A loss that shifts every probability (the asymmetric
loss puts GoEmotions' negatives at 0.1 to 0.4) needs the bias: on GoEmotions dev, fitted on one half
and measured on the other, ECE went from 0.278 to 0.175 with temperatures and to 0.004 with both."""


def _fit_label(y: np.ndarray, z: np.ndarray, with_bias: bool) -> tuple[float, float]:
    """``(T, b)`` minimising the binary cross-entropy of ``sigmoid(z / T + b)`` (``T = exp(-s)``
    keeps the temperature positive, so the label's order of texts cannot flip)."""
    from scipy.optimize import minimize  # heavy: scipy; prediction applies a calibration without it

    sign = np.where(y > 0.5, 1.0, -1.0)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        s, b = params[0], params[1] if with_bias else 0.0
        u = sign * (np.exp(s) * z + b)
        value = np.logaddexp(0.0, -u).mean()
        g = -sign / (1.0 + np.exp(np.clip(u, -500, 500)))  # d loss / d (scale * z + b), per row
        grad = [np.mean(g * np.exp(s) * z)] + ([np.mean(g)] if with_bias else [])
        return float(value), np.array(grad)

    start = np.zeros(2 if with_bias else 1)
    bounds = [(-LOG_T_BOUNDS[1], -LOG_T_BOUNDS[0])] + ([(-50.0, 50.0)] if with_bias else [])
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return float(np.exp(-found.x[0])), float(found.x[1]) if with_bias else 0.0


def fit_calibration(
    targets: np.ndarray,
    logits: np.ndarray,
    method: str = "platt",
    min_positives: int = 1,
    known: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(temperatures, biases)``, each ``(n_labels,)``, minimising each label's binary
    cross-entropy of ``sigmoid(logits / T + b)`` on these rows (``b = 0`` with ``temperature``).

    A label with fewer than ``min_positives`` positives there, or no negatives, has too little to
    be fitted alone (a fit to one positive text says more about that text than about the label):
    such labels share one ``(T, b)`` fitted on their rows pooled (on every label's rows pooled,
    when theirs hold no positive or no negative). Every label is then on the calibrated scale, so
    a threshold tuned on calibrated probabilities (the global one that rare labels fall back to)
    means the same for all of them.

    With ``known`` (bool, the shape of ``targets``: partial labels) each label is fitted on the
    texts labelled for it (its positives and negatives are the known ones), and the pooled fits on
    the known pairs of their labels."""
    if method not in METHODS:
        raise MultihotError(
            f"calibration method: expected one of {', '.join(METHODS)}, got {method!r}"
        )
    targets, logits = _check(targets, logits)
    if logits.ndim != 2:
        raise MultihotError(f"logits must be (texts, labels), got shape {logits.shape}")
    known = check_known(known, targets.shape)
    with_bias = method == "platt"
    temperatures, biases = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
    if known is None:
        positives, labelled = targets.sum(axis=0), np.full(targets.shape[1], len(targets))
    else:
        positives, labelled = (targets * known).sum(axis=0), known.sum(axis=0)
    alone = (positives >= max(1, min_positives)) & (positives < labelled)
    for j in np.flatnonzero(alone):
        rows = slice(None) if known is None else known[:, j]
        temperatures[j], biases[j] = _fit_label(targets[rows, j], logits[rows, j], with_bias)
    pooled = np.flatnonzero(~alone)
    if len(pooled):
        for columns in (pooled, np.arange(logits.shape[1])):
            y, z = targets[:, columns].ravel(), logits[:, columns].ravel()
            if known is not None:
                y, z = y[known[:, columns].ravel()], z[known[:, columns].ravel()]
            if len(y) and y.min() != y.max():
                temperatures[pooled], biases[pooled] = _fit_label(y, z, with_bias)
                break
    return temperatures, biases


def fit_temperatures(targets: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """One temperature per label, shape ``(n_labels,)``: :func:`fit_calibration` without biases."""
    return fit_calibration(targets, logits, "temperature")[0]


def apply_temperatures(
    logits: np.ndarray, temperatures: np.ndarray | None, biases: np.ndarray | None = None
) -> np.ndarray:
    """``logits / T + b`` per label column (float32); ``None``: the logits as they are."""
    if temperatures is None:
        return logits
    out = np.asarray(logits, dtype=np.float64) / np.asarray(temperatures)
    if biases is not None:
        out = out + np.asarray(biases)
    return out.astype(np.float32)


def calibrated(logits: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """``logits`` through ``calibration`` (:meth:`Calibration.apply`); as they are for None."""
    return logits if calibration is None else calibration.apply(logits)


def calibration_summary(
    targets: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    label_names: list[str],
    known: np.ndarray | None = None,
) -> dict[str, Any]:
    """ECE overall and per label, before and after calibration (probabilities), for reports;
    over the ``known`` pairs with partial labels (None for a label known in no text)."""
    ece_before = per_label_ece(targets, before, known=known)
    ece_after = per_label_ece(targets, after, known=known)
    return {
        "ece_before": expected_calibration_error(targets, before, known=known),
        "ece_after": expected_calibration_error(targets, after, known=known),
        "per_label": {
            name: {"ece_before": _finite(b), "ece_after": _finite(a)}
            for name, b, a in zip(label_names, ece_before, ece_after, strict=True)
        },
    }


def _finite(value: float) -> float | None:
    """``value`` as a float, None for NaN (a label known in no text: no forecast to judge)."""
    return None if np.isnan(value) else float(value)


@dataclass(frozen=True)
class Calibration:
    """A run's fitted calibration, a temperature and a bias per label, and where it was fitted.

    Attributes:
        temperatures: ``(n_labels,)`` positive; probabilities are ``sigmoid(logit / T + b)``.
        biases: ``(n_labels,)``; zeros for the ``temperature`` method.
        method: one of :data:`METHODS`.
        fitted_on: the data they were fitted on (a file name, or a description).
        num_texts: the rows of that data.
        ece_before, ece_after: the calibration error on that data without and with them.
    """

    temperatures: np.ndarray
    biases: np.ndarray | None = None
    method: str = "platt"
    fitted_on: str | None = None
    num_texts: int | None = None
    ece_before: float | None = None
    ece_after: float | None = None

    def __post_init__(self) -> None:
        if self.biases is None:
            object.__setattr__(self, "biases", np.zeros_like(self.temperatures, dtype=np.float64))

    @classmethod
    def fit(
        cls,
        targets: np.ndarray,
        logits: np.ndarray,
        fitted_on: str | None = None,
        method: str = "platt",
        min_positives: int = 1,
        known: np.ndarray | None = None,
    ) -> Calibration:
        """Fitted on ``targets`` and uncalibrated ``logits`` (see :func:`fit_calibration`; the
        ``known`` pairs with partial labels), with the ECE there before and after."""
        temperatures, biases = fit_calibration(targets, logits, method, min_positives, known)
        after = sigmoid(apply_temperatures(logits, temperatures, biases))
        return cls(
            temperatures,
            biases,
            method,
            fitted_on,
            int(len(logits)),
            expected_calibration_error(targets, sigmoid(logits), known=known),
            expected_calibration_error(targets, after, known=known),
        )

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated logits ``logits / T + b``."""
        return apply_temperatures(logits, self.temperatures, self.biases)

    def to_dict(self, label_names: list[str]) -> dict[str, Any]:
        """JSON form keyed by label name (so a reordered label file cannot misalign values)."""
        if len(label_names) != len(self.temperatures):
            raise MultihotError(
                f"got {len(label_names)} label names for {len(self.temperatures)} temperatures"
            )
        assert self.biases is not None  # __post_init__ fills it in
        return {
            "method": self.method,
            "temperatures": {
                str(n): float(t) for n, t in zip(label_names, self.temperatures, strict=True)
            },
            "biases": {str(n): float(b) for n, b in zip(label_names, self.biases, strict=True)},
            "fitted_on": self.fitted_on,
            "num_texts": self.num_texts,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
        }

    @classmethod
    def from_dict(cls, data: Any, label_names: list[str]) -> Calibration:
        """Inverse of :meth:`to_dict`; every label needs a finite temperature above zero and a
        finite bias (no biases: zeros)."""
        if not isinstance(data, dict) or not isinstance(data.get("temperatures"), dict):
            raise MultihotError("expected an object with a 'temperatures' mapping")
        method = data.get("method", "temperature")
        if method not in METHODS:
            raise MultihotError(f"unknown calibration method {method!r}")
        temperatures = _per_label(data["temperatures"], label_names, "temperature", positive=True)
        biases = data.get("biases")
        if biases is not None and not isinstance(biases, dict):
            raise MultihotError("'biases' must map label names to numbers")
        num_texts = data.get("num_texts")
        return cls(
            temperatures,
            None if biases is None else _per_label(biases, label_names, "bias", positive=False),
            method,
            data.get("fitted_on"),
            num_texts if isinstance(num_texts, int) else None,
            _number(data.get("ece_before")),
            _number(data.get("ece_after")),
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _per_label(given: dict, label_names: list[str], what: str, positive: bool) -> np.ndarray:
    missing = [n for n in label_names if n not in given]
    unknown = [n for n in given if n not in set(label_names)]
    if missing or unknown:
        raise MultihotError(f"{what} vs labels: missing {missing}, unknown {unknown}")
    values = []
    for name in label_names:
        value = _number(given[name])
        if value is None or not np.isfinite(value) or (positive and value <= 0):
            need = "a number > 0" if positive else "a finite number"
            raise MultihotError(f"{what} of label {name!r} must be {need}, got {given[name]!r}")
        values.append(value)
    return np.array(values)
