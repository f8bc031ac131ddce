"""The linear baseline: TF-IDF of word 1-2 grams and one logistic regression per label.

A text is read as the run's ``preprocess`` steps prepare it (:mod:`multihot.data.preprocess`),
lower-cased and split into words as scikit-learn's default ``token_pattern`` does; optionally the
English stop words are dropped and each word is stemmed (Snowball, :class:`BaselineConfig`'s
``stop_words`` and ``stem``) before the n-grams are made. Only this baseline stems: a transformer's
tokenizer knows real words, not stems, and reads inflections and function words itself.

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
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.runs import broken
from multihot.core.config import BASELINE_KIND, ModelConfig, check_types
from multihot.core.errors import ConfigError, DataError
from multihot.data.encoding import check_texts
from multihot.data.preprocess import prepare_text
from multihot.scoring.calibration import Calibration, calibrated
from multihot.scoring.probabilities import sigmoid

logger = logging.getLogger(__name__)

STOP_WORDS = ("english",)
"""The stop word lists ``stop_words`` names: english is scikit-learn's."""
WORD = re.compile(r"(?u)\b\w\w+\b")
"""A word, as scikit-learn's default ``token_pattern`` finds one: two or more letters or digits."""


def stem_languages() -> list[str]:
    """The languages ``stem`` takes: PyStemmer's Snowball algorithms (english, porter, french, ...)."""
    return sorted(_pystemmer().algorithms())


def _pystemmer():
    """The PyStemmer module (it ships no type information)."""
    # startup: only a baseline that stems pays for importing PyStemmer
    import Stemmer  # type: ignore[import-not-found]

    return Stemmer


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
    stem: str | None = None
    """Stem each word (Snowball, PyStemmer) in this language before the n-grams are made, so
    running, runs and run are one feature: english, porter, french, german, ... (see
    :func:`stem_languages`); a stem is stemmed again until it stays, so a model reads its own
    words back as they are. Default: words as written (lower-cased)."""
    stop_words: str | None = None
    """english: drop scikit-learn's English stop words (the, of, and, ...) before the n-grams are
    made, as its vectorizer does (with ``stem``, every word whose stem is a stop word's: called,
    as call is one); default: every word is kept."""
    preprocess: list[str] | None = None
    """The text preparation steps (:mod:`multihot.data.preprocess`) run before the vectorizer:
    fitting records the run's ``preprocess`` here, so a loaded model reads texts as it was fitted
    on them. None (a model saved before the setting existed) is no step."""

    def __post_init__(self) -> None:
        check_types(self)  # a string from a config file fails here by name, not in a comparison
        if self.stem is not None:
            self.stem = self.stem.strip().lower()
            languages = stem_languages()
            if self.stem not in languages:
                raise ConfigError(
                    f"baseline stem: expected a Snowball language, one of {', '.join(languages)}; "
                    f"got {self.stem!r}"
                )
        if self.stop_words is not None:
            self.stop_words = self.stop_words.strip().lower()
            if self.stop_words not in STOP_WORDS:
                raise ConfigError(
                    f"baseline stop_words: expected {' or '.join(STOP_WORDS)} (scikit-learn's "
                    f"list), got {self.stop_words!r}"
                )
        if self.preprocess is not None:
            try:
                self.preprocess = ModelConfig(preprocess=self.preprocess).preprocess
            except ConfigError as err:
                raise ConfigError(f"baseline {err}") from None
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
            ngram_range=(1, config.ngram_max),
            vocabulary=vocabulary,
            dtype=np.float64,
            **_reading(config),
        )

    @classmethod
    def fit(
        cls,
        texts: list[str],
        targets: np.ndarray,
        config: BaselineConfig,
        seed: int = 0,
        known: np.ndarray | None = None,
    ) -> TfidfLogistic:
        """One regression per label on ``targets`` ``(n_texts, num_labels)``; with ``known`` (the
        labelled pairs, partial labels) each on the texts labelled for its label."""
        from sklearn.linear_model import LogisticRegression  # heavy: sklearn (see __init__)

        vectorizer, features, config = _vectorize(texts, config)
        num_labels = targets.shape[1]
        coef = np.zeros((num_labels, features.shape[1]))
        intercept = np.zeros(num_labels)
        for j in range(num_labels):
            x, column = features, targets[:, j]
            if known is not None:
                x, column = features[known[:, j]], column[known[:, j]]
            if not len(column) or column.min() == column.max():
                # A label that is always (or never, or nowhere known) on: a constant, very
                # confident logit.
                intercept[j] = 10.0 if len(column) and column[0] else -10.0
                continue
            clf = LogisticRegression(
                C=config.C, max_iter=config.max_iter, solver="liblinear", random_state=seed
            )
            clf.fit(x, column)
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
            **_reading(config),
        )
        return vectorizer, vectorizer.fit_transform(texts)

    # scikit-learn raises ValueError when no n-gram is left (or min_df exceeds the texts).
    if config.min_df > 1:
        with contextlib.suppress(ValueError):
            return (*fit(config.min_df), config)
    try:
        fitted = fit(1)
    except ValueError:
        but = " but stop words" if config.stop_words is not None else ""
        raise DataError(
            f"baseline: the {len(texts)} training texts hold no word of two or more letters or "
            f"digits{but}, which is what the TF-IDF baseline reads; give texts with words"
        ) from None
    if config.min_df > 1:
        logger.warning(
            "baseline: no n-gram is in %d or more of the %d training texts; keeping every "
            "n-gram (min_df 1)",
            config.min_df,
            len(texts),
        )
    return (*fitted, dataclasses.replace(config, min_df=1))


def _reading(config: BaselineConfig) -> dict[str, Any]:
    """How the vectorizers read a text, as their keyword arguments: nothing (scikit-learn's own
    lower case and words) unless ``config`` has preparation steps (a :class:`_Prepared`
    preprocessor), stop words or a stemmer (a :class:`_Words` tokenizer). Both are the
    vectorizer's own pieces, so what it builds from them (an explanation's words) reads alike."""
    reading: dict[str, Any] = {}
    if config.preprocess:
        reading["preprocessor"] = _Prepared(tuple(config.preprocess))
    if config.stem is not None or config.stop_words is not None:
        reading["tokenizer"] = _Words(config.stem, config.stop_words)
        reading["token_pattern"] = None  # the tokenizer finds the words (scikit-learn warns)
    return reading


class _Prepared:
    """A text after the preparation ``steps``, lower-cased (what scikit-learn's preprocessor
    does, which this one replaces)."""

    def __init__(self, steps: tuple[str, ...]):
        self.steps = steps

    def __call__(self, text: str) -> str:
        return prepare_text(text, self.steps).lower()


class _Words:
    """The words of a lower-cased text (:data:`WORD`), stemmed, stop words dropped: the n-grams
    are made of what is left, as scikit-learn makes them after dropping stop words.

    A stem is stemmed again until it stays (Snowball's ``agree`` -> ``agre`` -> ``agr``), and
    with a stemmer a word is a stop word when its stem is a stop word's (``called``, as ``call``;
    scikit-learn asks for stop words processed as the tokens are). So the words of the words
    joined with spaces are the same words, which is what an explanation relies on: it scores and
    deletes these words and reads the rest again.
    """

    def __init__(self, stem: str | None, stop_words: str | None):
        self.stem = stem
        self._local = threading.local()  # a PyStemmer stemmer is not safe to share between threads
        self.stop_words: frozenset[str] = frozenset()
        if stop_words is not None:
            # heavy: sklearn (see TfidfLogistic.__init__)
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

            self.stop_words = frozenset(self._stems(sorted(ENGLISH_STOP_WORDS)))

    def _stems(self, words: list[str]) -> list[str]:
        """``words`` stemmed until they stay (as they are without a stemmer)."""
        if self.stem is None:
            return words
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = _pystemmer().Stemmer(self.stem)
        stems = stemmer.stemWords(words)
        for _ in range(_MAX_RESTEMS):
            again = stemmer.stemWords(stems)
            if again == stems:
                break
            stems = again
        return stems

    def __call__(self, text: str) -> list[str]:
        stems = self._stems(WORD.findall(text))
        return [stem for stem in stems if stem not in self.stop_words and WORD.fullmatch(stem)]


_MAX_RESTEMS = 8
"""Stemming a stem changes it once at most in practice; this bounds it whatever a language does."""
