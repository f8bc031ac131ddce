"""The linear baseline: TF-IDF of word 1-2 grams and one logistic regression per label.

It answers in a minute whether a transformer is worth it on your data. It shares everything
downstream with the transformer models: threshold tuning, metrics, the run directory (a run of
kind :data:`~multihot.core.config.BASELINE_KIND`), and prediction (:class:`TfidfLogistic` is a
backend like the others).
Nothing is pickled: the vocabulary is JSON, the IDF weights and the coefficients are safetensors,
and the vectorizer is rebuilt from them at load time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.runs import broken
from multihot.core.config import BASELINE_KIND, check_types
from multihot.core.errors import ConfigError, DataError
from multihot.data.encoding import check_texts
from multihot.scoring.calibration import Calibration, calibrated
from multihot.scoring.probabilities import sigmoid

logger = logging.getLogger(__name__)


@dataclass
class BaselineConfig:
    """The TF-IDF features and the logistic regressions."""

    ngram_max: int = 2
    """Word n-grams from 1 to this length."""
    min_df: int = 2
    """Ignore n-grams in fewer texts than this; where that leaves none (a handful of texts), every
    n-gram is kept and the model saved says ``min_df`` 1."""
    max_features: int = 200_000
    """Keep at most this many n-grams (the most frequent)."""
    sublinear_tf: bool = True
    """Use 1 + log(tf) instead of raw term counts."""
    C: float = 4.0
    """Inverse regularisation strength of each logistic regression."""
    max_iter: int = 1000
    """Iterations of the solver per label."""

    def __post_init__(self) -> None:
        check_types(self)  # a string from a config file fails here by name, not in a comparison
        if self.ngram_max < 1 or self.min_df < 1 or self.max_features < 1 or self.max_iter < 1:
            raise ConfigError(
                "baseline: ngram_max, min_df, max_features and max_iter must be at least 1"
            )
        if self.C <= 0:
            raise ConfigError(f"baseline C: expected a positive number, got {self.C}")


class TfidfLogistic:
    """TF-IDF features and a linear layer; :meth:`logits` has shape ``(n_texts, num_labels)``.

    Example:
        >>> texts = ["so happy", "so sad", "happy day", "sad day"] * 3
        >>> targets = np.array([[1, 0], [0, 1], [1, 0], [0, 1]] * 3, dtype=np.float32)
        >>> model = TfidfLogistic.fit(texts, targets, BaselineConfig(min_df=1))
        >>> (model.logits(["happy"])[0] > 0).tolist()
        [True, False]
    """

    def __init__(
        self,
        vocabulary: dict[str, int],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        config: BaselineConfig,
    ):
        # heavy: sklearn; ONNX prediction imports this module (the baseline backend) without it
        from sklearn.feature_extraction.text import CountVectorizer

        self.vocabulary = vocabulary
        self.idf = idf.astype(np.float64)
        self.coef = coef.astype(np.float64)
        self.intercept = intercept.astype(np.float64)
        self.config = config
        self.num_labels = len(intercept)
        # A CountVectorizer with a fixed vocabulary needs no fitting: counts, then our own IDF.
        self.counter = CountVectorizer(
            ngram_range=(1, config.ngram_max), vocabulary=vocabulary, dtype=np.float64
        )

    @classmethod
    def fit(
        cls, texts: list[str], targets: np.ndarray, config: BaselineConfig, seed: int = 0
    ) -> TfidfLogistic:
        from sklearn.linear_model import LogisticRegression  # heavy: sklearn (see __init__)

        vectorizer, features, config = _vectorize(texts, config)
        num_labels = targets.shape[1]
        coef = np.zeros((num_labels, features.shape[1]))
        intercept = np.zeros(num_labels)
        for j in range(num_labels):
            column = targets[:, j]
            if column.min() == column.max():
                # A label that is always (or never) on: a constant, very confident logit.
                intercept[j] = 10.0 if column[0] else -10.0
                continue
            clf = LogisticRegression(
                C=config.C, max_iter=config.max_iter, solver="liblinear", random_state=seed
            )
            clf.fit(features, column)
            coef[j], intercept[j] = clf.coef_[0], clf.intercept_[0]
        vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        logger.info("baseline: %d n-grams, %d labels", len(vocabulary), num_labels)
        return cls(vocabulary, vectorizer.idf_, coef, intercept, config)

    def features(self, texts: list[str]):
        from sklearn.preprocessing import normalize  # heavy: sklearn (see __init__)

        counts = self.counter.transform(texts)
        if self.config.sublinear_tf:
            counts.data = 1.0 + np.log(counts.data)
        return normalize(counts.multiply(self.idf).tocsr(), norm="l2")

    def logits(self, texts: list[str]) -> np.ndarray:
        """Logits of shape ``(n_texts, num_labels)`` (float32)."""
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        return (self.features(texts) @ self.coef.T + self.intercept).astype(np.float32)

    kind = BASELINE_KIND
    calibration: Calibration | None = None
    """Temperatures applied to every logit the prediction methods return (not :meth:`logits`)."""

    def predict_logits(self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"):
        """:meth:`logits` of checked texts, calibrated when the run is; ``batch_size`` and
        ``precision`` do not apply."""
        return self._calibrated(self.logits(check_texts(texts)))

    def _calibrated(self, logits: np.ndarray) -> np.ndarray:
        return calibrated(logits, self.calibration)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"):
        """Probabilities of shape ``(n_texts, num_labels)``."""
        return sigmoid(self.predict_logits(texts))

    def encode(self, texts: Sequence[str]) -> list[str]:
        """The checked texts: a linear model computes from the text itself."""
        return check_texts(texts)

    def predict_proba_encoded(
        self, texts: list[str], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """:meth:`predict_proba` of texts already encoded (:meth:`encode`)."""
        return sigmoid(self._calibrated(self.logits(texts)))

    def config_dict(self) -> dict[str, Any]:
        """The settings, as config.json's ``baseline`` section holds them."""
        return dataclasses.asdict(self.config)

    def arrays(self) -> dict[str, np.ndarray]:
        """What is saved besides the vocabulary (see :meth:`from_arrays`)."""
        return {"idf": self.idf, "coef": self.coef, "intercept": self.intercept}

    @classmethod
    def from_arrays(
        cls,
        vocabulary: Any,
        arrays: dict[str, np.ndarray],
        config: BaselineConfig,
        source: Path,
        num_labels: int,
    ) -> TfidfLogistic:
        """The model :meth:`arrays` and the vocabulary describe; a broken-run error naming
        ``source`` when they do not fit each other or ``num_labels``."""
        try:
            idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        except KeyError as err:
            raise broken(source, f"model.safetensors has no {err.args[0]!r} array") from None
        if (
            not isinstance(vocabulary, dict)
            or coef.shape != (len(intercept), len(idf))
            or len(idf) != len(vocabulary)
        ):
            raise broken(source, "vocabulary.json and model.safetensors do not match")
        if len(intercept) != num_labels:
            raise broken(
                source, f"model.safetensors has {len(intercept)} labels, labels.json {num_labels}"
            )
        return cls(vocabulary, idf, coef, intercept, config)


def _vectorize(texts: list[str], config: BaselineConfig):
    """The fitted TF-IDF vectorizer, the features of ``texts`` and the config it was fitted with.

    ``min_df`` prunes rare n-grams from thousands of texts; from a handful (a small fold, a
    first try) it can prune every one, and then every n-gram is kept instead (``min_df`` 1), as
    the model saved says.

    Raises:
        DataError: the texts hold no word the vectorizer reads (two or more letters or digits).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # heavy: sklearn (see __init__)

    def fit(min_df: int):
        vectorizer = TfidfVectorizer(
            ngram_range=(1, config.ngram_max),
            min_df=min_df,
            max_features=config.max_features,
            sublinear_tf=config.sublinear_tf,
            dtype=np.float64,
        )
        return vectorizer, vectorizer.fit_transform(texts)

    # scikit-learn raises ValueError when no n-gram is left (or min_df exceeds the texts).
    if config.min_df > 1:
        with contextlib.suppress(ValueError):
            return (*fit(config.min_df), config)
    try:
        fitted = fit(1)
    except ValueError:
        raise DataError(
            f"baseline: the {len(texts)} training texts hold no word of two or more letters or "
            "digits, which is what the TF-IDF baseline reads; give texts with words"
        ) from None
    if config.min_df > 1:
        logger.warning(
            "baseline: no n-gram is in %d or more of the %d training texts; keeping every "
            "n-gram (min_df 1)",
            config.min_df,
            len(texts),
        )
    return (*fitted, dataclasses.replace(config, min_df=1))
