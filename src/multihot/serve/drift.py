"""What the served labels are compared with: per label, how often the run predicted it on its own
validation rows and its mean probability there.

The server counts the same two things over the texts it answers (``/metrics``:
``multihot_label_predicted_total`` and the ``multihot_label_probability`` summary); a label whose
served rate moves far from its validation rate tells that the texts, or the model's view of them,
have changed. The rates are computed once, when the server starts, from the run's validation
logits (:func:`multihot.artifacts.validation.read_validation`) as the model serves them:
calibrated when the run is, with the run's thresholds.

Example:
    >>> rates = validation_rates(Predictor.load("runs/emotions").files)  # doctest: +SKIP
    >>> rates.to_dict(["joy", "anger"])  # doctest: +SKIP
    {'texts': 500, 'labels': {'joy': {'predicted_rate': 0.31, 'mean_probability': 0.29}, ...}}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from multihot.artifacts.validation import read_validation
from multihot.core.errors import RunDirError
from multihot.scoring.calibration import calibrated
from multihot.scoring.probabilities import sigmoid

if TYPE_CHECKING:
    from multihot.artifacts.runs import RunFiles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelRates:
    """Per label, over some texts: the share it was predicted for and its mean probability.

    Attributes:
        texts: how many texts.
        predicted_rate: ``(num_labels,)``, in ``[0, 1]``.
        mean_probability: ``(num_labels,)``, in ``[0, 1]``.
    """

    texts: int
    predicted_rate: np.ndarray
    mean_probability: np.ndarray

    @classmethod
    def of(cls, probs: np.ndarray, decisions: np.ndarray) -> LabelRates:
        """The rates of ``probs`` and ``decisions``, both ``(n_texts, num_labels)``, n > 0."""
        return cls(
            len(probs),
            decisions.mean(axis=0, dtype=np.float64),
            probs.mean(axis=0, dtype=np.float64),
        )

    def to_dict(self, label_names: list[str]) -> dict[str, Any]:
        """``{"texts": n, "labels": {name: {"predicted_rate", "mean_probability"}}}``."""
        per_label = zip(
            label_names, self.predicted_rate.tolist(), self.mean_probability.tolist(), strict=True
        )
        return {
            "texts": self.texts,
            "labels": {
                name: {"predicted_rate": rate, "mean_probability": mean}
                for name, rate, mean in per_label
            },
        }


def validation_rates(files: RunFiles | None) -> LabelRates | None:
    """The rates on the run's validation rows, as the run predicts them: its validation logits,
    calibrated when the run is, its thresholds (with their top-1 fallback, if any).

    None when there are none to give: a predictor not loaded from a run directory, a run saved
    before runs kept their validation rows, a run validated on no rows, or a validation file that
    cannot be read (logged: the model itself is still served).
    """
    if files is None:
        return None
    try:
        validation = read_validation(files.path, files.labels)
    except RunDirError as err:
        logger.warning("no validation rates for /v1/model and /metrics: %s", err)
        return None
    if validation is None or not validation.texts:
        return None
    probs = sigmoid(calibrated(validation.logits, files.calibration))
    return LabelRates.of(probs, files.thresholds.apply(probs))
