"""Calibration: whether a probability of 0.8 means 80%, and a temperature per label that makes it so.

Every (text, label) pair is one yes/no forecast. :func:`reliability` bins the forecasts by
probability and compares each bin's mean probability with how often the label was there;
:func:`expected_calibration_error` is the gap between them, weighted by the bins' sizes (over all
pairs, or per label).

:func:`fit_temperatures` fits one temperature ``T_j`` per label on labelled data, minimising the
binary cross-entropy of ``sigmoid(logit / T_j)``. Dividing by a positive number keeps every
label's order of texts, so AUC and average precision do not move; thresholds must be tuned again
on the calibrated probabilities, since every cut point moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from multihot.core.errors import MultihotError
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


def reliability(targets: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    """Reliability bins over every entry of ``probs`` (any shape) against ``targets`` (0/1)."""
    targets, probs = _check(targets, probs)
    y, p = targets.ravel(), probs.ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; 0 joins the first bin.
    which = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=p, minlength=bins) / count
        frequency = np.bincount(which, weights=y, minlength=bins) / count
    return Reliability(edges, confidence, frequency, count)


def expected_calibration_error(
    targets: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE over all (text, label) pairs of ``(n_texts, n_labels)`` arrays."""
    return reliability(targets, probs, bins).ece


def per_label_ece(targets: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """ECE of each label's column, shape ``(n_labels,)``."""
    targets, probs = _check(targets, probs)
    return np.array(
        [reliability(targets[:, j], probs[:, j], bins).ece for j in range(probs.shape[1])]
    )


def _bce(logits: np.ndarray, y: np.ndarray) -> float:
    # log(1 + exp(-z)) for positives, log(1 + exp(z)) for negatives, without overflow.
    signed = np.where(y > 0.5, logits, -logits)
    return float(np.logaddexp(0.0, -signed).mean())


def fit_temperatures(targets: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """One temperature per label, shape ``(n_labels,)``, minimising the binary cross-entropy of
    ``sigmoid(logits / T)`` on these rows. A label with no positives or no negatives there keeps
    ``T = 1`` (nothing to calibrate against)."""
    from scipy.optimize import minimize_scalar

    targets, logits = _check(targets, logits)
    if logits.ndim != 2:
        raise MultihotError(f"logits must be (texts, labels), got shape {logits.shape}")
    temperatures = np.ones(logits.shape[1])
    for j in range(logits.shape[1]):
        y, z = targets[:, j], logits[:, j]
        if y.min() == y.max():
            continue
        found = minimize_scalar(
            lambda log_t, y=y, z=z: _bce(z / np.exp(log_t), y),
            bounds=LOG_T_BOUNDS,
            method="bounded",
            options={"xatol": 1e-5},
        )
        temperatures[j] = float(np.exp(found.x))
    return temperatures


def apply_temperatures(logits: np.ndarray, temperatures: np.ndarray | None) -> np.ndarray:
    """``logits / T`` per label column (float32); ``None``: the logits as they are."""
    if temperatures is None:
        return logits
    return (np.asarray(logits, dtype=np.float64) / np.asarray(temperatures)).astype(np.float32)


def calibration_summary(
    targets: np.ndarray, before: np.ndarray, after: np.ndarray, label_names: list[str]
) -> dict[str, Any]:
    """ECE overall and per label, before and after calibration (probabilities), for reports."""
    ece_before, ece_after = per_label_ece(targets, before), per_label_ece(targets, after)
    return {
        "ece_before": expected_calibration_error(targets, before),
        "ece_after": expected_calibration_error(targets, after),
        "per_label": {
            name: {"ece_before": float(b), "ece_after": float(a)}
            for name, b, a in zip(label_names, ece_before, ece_after, strict=True)
        },
    }


@dataclass(frozen=True)
class Calibration:
    """A run's fitted temperatures, one per label, and where they were fitted.

    Attributes:
        temperatures: ``(n_labels,)`` positive; probabilities are ``sigmoid(logit / T)``.
        fitted_on: the data they were fitted on (a file name, or a description).
        num_texts: the rows of that data.
        ece_before, ece_after: the calibration error on that data without and with them.
    """

    temperatures: np.ndarray
    fitted_on: str | None = None
    num_texts: int | None = None
    ece_before: float | None = None
    ece_after: float | None = None

    @classmethod
    def fit(
        cls, targets: np.ndarray, logits: np.ndarray, fitted_on: str | None = None
    ) -> Calibration:
        """Temperatures fitted on ``targets`` and uncalibrated ``logits`` (see
        :func:`fit_temperatures`), with the ECE there before and after."""
        temperatures = fit_temperatures(targets, logits)
        return cls(
            temperatures, fitted_on, int(len(logits)),
            expected_calibration_error(targets, sigmoid(logits)),
            expected_calibration_error(targets, sigmoid(apply_temperatures(logits, temperatures))),
        )  # fmt: skip

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated logits ``logits / T``."""
        return apply_temperatures(logits, self.temperatures)

    def to_dict(self, label_names: list[str]) -> dict[str, Any]:
        """JSON form keyed by label name (so a reordered label file cannot misalign values)."""
        if len(label_names) != len(self.temperatures):
            raise MultihotError(
                f"got {len(label_names)} label names for {len(self.temperatures)} temperatures"
            )
        return {
            "method": "temperature",
            "temperatures": {
                str(n): float(t) for n, t in zip(label_names, self.temperatures, strict=True)
            },
            "fitted_on": self.fitted_on,
            "num_texts": self.num_texts,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
        }

    @classmethod
    def from_dict(cls, data: Any, label_names: list[str]) -> Calibration:
        """Inverse of :meth:`to_dict`; every label needs a finite temperature above zero."""
        if not isinstance(data, dict) or not isinstance(data.get("temperatures"), dict):
            raise MultihotError("expected an object with a 'temperatures' mapping")
        if data.get("method", "temperature") != "temperature":
            raise MultihotError(f"unknown calibration method {data.get('method')!r}")
        given = data["temperatures"]
        missing = [n for n in label_names if n not in given]
        unknown = [n for n in given if n not in set(label_names)]
        if missing or unknown:
            raise MultihotError(f"temperatures vs labels: missing {missing}, unknown {unknown}")
        values = []
        for name in label_names:
            t = given[name]
            ok = (
                isinstance(t, (int, float)) and not isinstance(t, bool) and np.isfinite(t) and t > 0
            )
            if not ok:
                raise MultihotError(
                    f"temperature of label {name!r} must be a number > 0, got {t!r}"
                )
            values.append(float(t))

        def number(key):
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) else None

        num_texts = data.get("num_texts")
        return cls(
            np.array(values), data.get("fitted_on"),
            num_texts if isinstance(num_texts, int) else None,
            number("ece_before"), number("ece_after"),
        )  # fmt: skip
