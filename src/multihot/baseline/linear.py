"""The linear baseline: TF-IDF of word 1-2 grams and one logistic regression per label.

It answers in a minute whether a transformer is worth it on your data. It shares everything
downstream with the transformer models: threshold tuning, metrics, the run directory, and
``multihot predict``. Nothing is pickled: the vocabulary is JSON, the IDF weights and the
coefficients are safetensors, and the vectorizer is rebuilt from them at load time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multihot.artifacts.rundir import (
    check_output_dir,
    check_run_dir,
    dumps,
    library_versions,
    write_atomic,
    write_dir_atomic,
)
from multihot.classifier import (
    Classifier,
    broken,
    check_texts,
    check_weights_metadata,
    finish_validation,
    load_metrics_and_history,
    prepare_data,
    read_run,
    weights_metadata,
)
from multihot.core.config import RunConfig
from multihot.core.errors import ConfigError, RunDirError
from multihot.inference.torch_backend import sigmoid

logger = logging.getLogger(__name__)


@dataclass
class BaselineConfig:
    """The TF-IDF features and the logistic regressions."""

    ngram_max: int = 2
    """Word n-grams from 1 to this length."""
    min_df: int = 2
    """Ignore n-grams in fewer texts than this."""
    max_features: int = 200_000
    """Keep at most this many n-grams (the most frequent)."""
    sublinear_tf: bool = True
    """Use 1 + log(tf) instead of raw term counts."""
    C: float = 4.0
    """Inverse regularisation strength of each logistic regression."""
    max_iter: int = 1000
    """Iterations of the solver per label."""

    def __post_init__(self) -> None:
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
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(
            ngram_range=(1, config.ngram_max), min_df=config.min_df, max_features=config.max_features,
            sublinear_tf=config.sublinear_tf, dtype=np.float64,
        )  # fmt: skip
        features = vectorizer.fit_transform(texts)
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
        from sklearn.preprocessing import normalize

        counts = self.counter.transform(texts)
        if self.config.sublinear_tf:
            counts.data = 1.0 + np.log(counts.data)
        return normalize(counts.multiply(self.idf).tocsr(), norm="l2")

    def logits(self, texts: list[str]) -> np.ndarray:
        """Logits of shape ``(n_texts, num_labels)`` (float32)."""
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        return (self.features(texts) @ self.coef.T + self.intercept).astype(np.float32)

    def save(self, directory: Path, metadata: dict[str, str] | None = None) -> None:
        """Write vocabulary.json and model.safetensors (with ``metadata`` in its header)."""
        from safetensors.numpy import save_file

        (directory / "vocabulary.json").write_text(
            json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8"
        )
        save_file(
            {"idf": self.idf, "coef": self.coef, "intercept": self.intercept},
            str(directory / "model.safetensors"),
            metadata=metadata,
        )

    @classmethod
    def load(cls, directory: Path, config: BaselineConfig) -> TfidfLogistic:
        from safetensors.numpy import load_file

        try:
            vocabulary = json.loads((directory / "vocabulary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunDirError(f"{directory / 'vocabulary.json'}: cannot read ({err})") from None
        try:
            arrays = load_file(str(directory / "model.safetensors"))
            idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        except Exception as err:  # safetensors raises several types for truncated or foreign files
            raise RunDirError(
                f"{directory / 'model.safetensors'}: cannot load weights ({str(err)[:200]})"
            ) from None
        if (
            not isinstance(vocabulary, dict)
            or coef.shape != (len(intercept), len(idf))
            or len(idf) != len(vocabulary)
        ):
            raise RunDirError(f"{directory}: vocabulary.json and model.safetensors do not match")
        return cls(vocabulary, idf, coef, intercept, config)


class BaselineClassifier(Classifier):
    """A :class:`multihot.Classifier` whose scores come from :class:`TfidfLogistic`.

    Training, threshold tuning, evaluation, prediction and the run directory work as for the
    transformer models; ``Classifier.load`` returns this class for a baseline run.

    Example:
        >>> clf = BaselineClassifier.train("train.jsonl", val="dev.jsonl", output="runs/linear")  # doctest: +SKIP
        >>> clf.predict(["thanks so much!"])  # doctest: +SKIP
        [['gratitude']]
    """

    kind = "tfidf-logreg"
    required_files = (
        "config.json",
        "model.safetensors",
        "vocabulary.json",
        "labels.json",
        "thresholds.json",
    )

    def __init__(
        self, model: TfidfLogistic, labels, thresholds, config, metrics=None, history=None
    ):
        self.model = model
        self.tokenizer = None
        self.labels = labels
        self.thresholds = thresholds
        self.config = config
        self.metrics = metrics or {}
        self.history = history or []

    @classmethod
    def train(
        cls,
        train,
        val=None,
        *,
        config=None,
        baseline: BaselineConfig | None = None,
        output=None,
        **overrides,
    ):
        """Fit TF-IDF + logistic regressions on ``train``; tune thresholds on ``val`` (or a hold-out)."""
        baseline = baseline or BaselineConfig()
        config = (config or RunConfig()).override(encoder=cls.kind, **overrides)
        if output is not None:
            check_output_dir(Path(output))
        data = prepare_data(train, val, config)
        started = time.perf_counter()
        model = TfidfLogistic.fit(
            data.train.texts, data.train_targets, baseline, seed=config.train.seed
        )
        probs = sigmoid(model.logits(data.val.texts))
        thresholds, metrics = finish_validation(data.labels, data.val_targets, probs, config.train)
        seconds = round(time.perf_counter() - started, 2)
        overall = {k: v for k, v in metrics["validation"].items() if k != "per_label"}
        metrics["baseline"] = {"seconds": seconds, "num_features": len(model.vocabulary)}
        clf = cls(
            model,
            data.labels,
            thresholds,
            config,
            metrics,
            [{"step": 0, "epoch": 1.0, **overall, "seconds": seconds}],
        )
        if output is not None:
            clf.save(output)
        return clf

    def predict_logits(self, texts, batch_size: int = 64, precision: str = "auto") -> np.ndarray:
        """Logits of shape ``(n_texts, num_labels)``; ``batch_size`` and ``precision`` do not apply."""
        return self.model.logits(check_texts(texts))

    def save(self, path) -> Path:
        """Write the run directory (all or nothing; an existing one is replaced)."""
        path = Path(path)
        check_output_dir(path)

        def fill(tmp: Path) -> None:
            config = {
                "kind": self.kind,
                **self.config.to_dict(),
                "baseline": dataclasses.asdict(self.model.config),
                "num_labels": len(self.labels),
                "versions": library_versions(),
            }
            write_atomic(tmp / "config.json", dumps(config))
            self.model.save(tmp, weights_metadata(self.labels))
            self._write_outcome(tmp)

        write_dir_atomic(path, fill)
        return path

    @classmethod
    def load_run(cls, path: Path, raw: dict) -> BaselineClassifier:
        """Load a baseline run directory whose config.json was already parsed into ``raw``."""
        check_run_dir(path, required=cls.required_files)
        try:
            baseline = BaselineConfig(**raw.get("baseline", {}))
        except (TypeError, ConfigError) as err:
            raise RunDirError(f"{path / 'config.json'}: bad 'baseline' section ({err})") from None
        config, labels, thresholds = read_run(path, raw)
        model = TfidfLogistic.load(path, baseline)
        if model.num_labels != len(labels):
            raise broken(
                path, f"model.safetensors has {model.num_labels} labels, labels.json {len(labels)}"
            )
        check_weights_metadata(path, weights_metadata(labels))
        metrics, history = load_metrics_and_history(path)
        return cls(model, labels, thresholds, config, metrics, history)
