"""The library's front door: :class:`Classifier` trains, predicts, evaluates, tunes, saves, loads.

Each method is a few lines over the library: training is :mod:`multihot.training.run`, the linear
baseline :mod:`multihot.baseline.linear`, prediction a backend of :mod:`multihot.inference`,
thresholds :mod:`multihot.scoring.thresholds`, and the run directory :mod:`multihot.artifacts.runs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts import runs
from multihot.artifacts.trainingtexts import read_training_texts
from multihot.artifacts.transformer import save_transformer_run
from multihot.artifacts.validation import ValidationPredictions
from multihot.baseline.linear import BaselineConfig, TfidfLogistic
from multihot.baseline.train import train_baseline
from multihot.core.config import RunConfig
from multihot.core.errors import DataError, MultihotError
from multihot.data.encoding import Reading
from multihot.data.labels import LabelSet
from multihot.data.prepare import DataLike, read_data
from multihot.data.readers import Dataset
from multihot.data.texthashes import TextHashes
from multihot.inference.explain import Explanation
from multihot.inference.explain import explain as explain_text
from multihot.inference.predictor import load_backend
from multihot.inference.torch_backend import TorchBackend
from multihot.scoring.calibration import Calibration, calibration_summary
from multihot.scoring.metrics import by_length
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import (
    Thresholds,
    check_enough_positives,
    log_fallback,
    tune_thresholds,
)
from multihot.training.run import TrainedRun, resume_run, train_run
from multihot.training.session import TrainCallback


class Classifier:
    """A trained multi-label text classifier with its per-label thresholds.

    A transformer (``model`` a :class:`multihot.modeling.model.MultiLabelModel` or a seed
    ensemble, with its ``tokenizer`` and ``encoder_config``) or a linear baseline (``model`` a
    :class:`multihot.baseline.linear.TfidfLogistic`, no tokenizer), or, with no tokenizer, a
    backend :func:`multihot.inference.predictor.load_backend` built.

    Example:
        >>> clf = Classifier.train("train.jsonl", val="dev.jsonl", encoder="scratch-mini", epochs=3)  # doctest: +SKIP
        >>> clf.predict_proba(["so happy for you!"]).shape  # doctest: +SKIP
        (1, 28)
        >>> clf.predict(["so happy for you!"])  # doctest: +SKIP
        [['joy']]
        >>> clf.save("runs/emotions"); clf = Classifier.load("runs/emotions")  # doctest: +SKIP
    """

    def __init__(
        self,
        model,
        tokenizer,
        labels: LabelSet,
        thresholds: Thresholds,
        config: RunConfig,
        encoder_config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        validation: ValidationPredictions | None = None,
        calibration: Calibration | None = None,
        init_from: dict[str, Any] | None = None,
        training_texts: TextHashes | None = None,
    ):
        # Without a tokenizer, ``model`` computes logits itself: a TfidfLogistic, or a backend
        # that loading built already (a TorchBackend is not wrapped twice).
        if tokenizer is None:
            self.backend = model
        else:
            self.backend = TorchBackend(model, tokenizer, encoder_config, Reading.of(config.model))
        self.labels = labels
        self.thresholds = thresholds
        self.config = config
        self.metrics = metrics or {}
        self.history = history or []
        if calibration is not None:
            self.calibration = calibration
        self.validation = validation
        """The validation rows and uncalibrated logits training tuned the thresholds on (saved as
        validation.jsonl); None for a loaded run (:func:`multihot.artifacts.validation.read_validation`
        reads them)."""
        self.init_from = init_from
        """Where training started when it continued another run (``train(..., init_from=RUN)``):
        that run's path and model id, and the labels added and dropped; None otherwise."""
        self.training_texts = training_texts
        """The hashes of the texts the model learnt from (saved as training-texts.safetensors,
        what ``multihot suggest`` skips); None for a run saved before they were kept."""

    @property
    def kind(self) -> str:
        """The run directory's kind: :data:`~multihot.core.config.TRANSFORMER_KIND` or
        :data:`~multihot.core.config.BASELINE_KIND` (the linear baseline)."""
        return self.backend.kind

    @property
    def model(self):
        return self.backend.model if isinstance(self.backend, TorchBackend) else self.backend

    @property
    def tokenizer(self):
        return getattr(self.backend, "tokenizer", None)

    @property
    def encoder_config(self) -> dict[str, Any] | None:
        return getattr(self.backend, "encoder_config", None)

    @property
    def label_names(self) -> list[str]:
        return self.labels.names

    @property
    def calibration(self) -> Calibration | None:
        """The calibration every probability is computed with (None: uncalibrated)."""
        return self.backend.calibration

    @calibration.setter
    def calibration(self, value: Calibration | None) -> None:
        self.backend.calibration = value

    # ----------------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        train: DataLike,
        val: DataLike | None = None,
        *,
        config: RunConfig | None = None,
        output: str | Path | None = None,
        callback: TrainCallback | None = None,
        trust_remote_weights: bool = False,
        resume: bool = False,
        init_from: str | Path | None = None,
        drop_labels: bool = False,
        **overrides: Any,
    ) -> Classifier:
        """Train on ``train``, select and tune thresholds on ``val`` (or a stratified hold-out).

        Args:
            train: a data file (csv, tsv, jsonl, json, parquet) or a :class:`Dataset`.
            val: the same for validation; without it ``val_fraction`` of train is held out.
            config: the full configuration; ``overrides`` (flat keys such as ``encoder="scratch-mini"``,
                ``epochs=3``) replace its values.
            output: a run directory to save to when training is done: new, empty, or a multihot
                run to replace. While training, it holds checkpoints (``checkpoints/``, one at
                every evaluation) from which a killed run can be resumed; until the final save
                replaces it, it refuses to load.
            callback: receives progress (see :class:`multihot.training.session.TrainCallback`).
            trust_remote_weights: accept a Hugging Face encoder whose weights exist only pickled
                (``pytorch_model.bin``), read with ``torch.load(weights_only=True)``; not saved in
                the config, so a config file can never turn it on.
            resume: continue the interrupted run in ``output`` from its last checkpoint. It needs
                the same data; its config is the run's own (``config`` and ``overrides`` may only
                repeat it). :meth:`resume` does this with the data files the run recorded.
            init_from: a finished run directory to continue: the model starts from its encoder,
                pooling and head instead of the pretrained encoder, and takes its tokenizer and
                model settings (a model setting given that differs from the run's is refused). The
                labels are the data's: the run's keep their weights, new ones get fresh rows.
                Training settings, optimizer and schedule are this run's own; config.json
                records where it started (see :mod:`multihot.training.init_from`).
            drop_labels: with ``init_from``, leave behind the run's labels that the data lacks
                (otherwise they are refused).

        Example:
            >>> clf = Classifier.train("more.jsonl", init_from="runs/emotions", output="runs/round2")  # doctest: +SKIP
        """
        run = train_run(
            train,
            val,
            config=config,
            output=output,
            callback=callback,
            trust_remote_weights=trust_remote_weights,
            resume=resume,
            overrides=overrides,
            init_from=init_from,
            drop_labels=drop_labels,
        )
        return cls._from_run(run)

    @classmethod
    def resume(
        cls,
        run: str | Path,
        *,
        callback: TrainCallback | None = None,
        trust_remote_weights: bool = False,
    ) -> Classifier:
        """Continue the interrupted training run in ``run`` from its last checkpoint, with the
        config and data files it recorded; ends as the uninterrupted run would have.

        Raises:
            RunDirError: ``run`` has no checkpoint (complete, or stopped before the first one), or
                was trained on in-memory data (use :meth:`train` with ``resume=True``).

        Example:
            >>> clf = Classifier.resume("runs/emotions")  # doctest: +SKIP
        """
        trained = resume_run(run, callback=callback, trust_remote_weights=trust_remote_weights)
        return cls._from_run(trained)

    @classmethod
    def train_baseline(
        cls,
        train: DataLike,
        val: DataLike | None = None,
        *,
        baseline: BaselineConfig | None = None,
        output: str | Path | None = None,
        **overrides: Any,
    ) -> Classifier:
        """TF-IDF word n-grams and one logistic regression per label, with the same thresholds,
        report and run directory (see :func:`multihot.baseline.linear.train_baseline`).

        Example:
            >>> clf = Classifier.train_baseline("train.jsonl", "dev.jsonl", output="runs/linear")  # doctest: +SKIP
            >>> clf.predict(["thanks so much!"])  # doctest: +SKIP
            [['gratitude']]
        """
        run = train_baseline(train, val, baseline=baseline, output=output, **overrides)
        return cls(
            run.model,
            None,
            run.labels,
            run.thresholds,
            run.config,
            metrics=run.metrics,
            history=run.history,
            validation=run.validation,
            training_texts=run.training_texts,
        )

    @classmethod
    def _from_run(cls, run: TrainedRun) -> Classifier:
        return cls(
            run.model,
            run.tokenizer,
            run.labels,
            run.thresholds,
            run.config,
            run.encoder_config,
            run.metrics,
            run.history,
            run.validation,
            run.calibration,
            run.init_from,
            run.training_texts,
        )

    # --------------------------------------------------------------------------------- prediction
    def predict_logits(
        self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """Logits of shape ``(n_texts, num_labels)``, rows in input order."""
        return self.backend.predict_logits(texts, batch_size, precision)

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """Probabilities of shape ``(n_texts, num_labels)``; column ``j`` is ``label_names[j]``.

        ``precision="auto"`` uses bf16 where the processor supports it (about 1e-2 from fp32);
        pass ``"fp32"`` for exact reference values.
        """
        return sigmoid(self.predict_logits(texts, batch_size, precision))

    def predict(
        self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"
    ) -> list[list[str]]:
        """Label names per text, with the saved thresholds applied."""
        return self.labels.decode(
            self.thresholds.apply(self.predict_proba(texts, batch_size, precision))
        )

    def iter_predict(
        self, batches: Iterable[Sequence[str]], batch_size: int = 64, precision: str = "auto"
    ) -> Iterator[tuple[list[str], np.ndarray, list[list[str]]]]:
        """Stream ``(texts, probs, labels)`` per input batch, so inputs of any size keep memory flat."""
        for texts in batches:
            probs = self.predict_proba(texts, batch_size, precision)
            yield list(texts), probs, self.labels.decode(self.thresholds.apply(probs))

    # --------------------------------------------------------------------------------- evaluation
    def labelled(self, data: DataLike) -> tuple[Dataset, np.ndarray]:
        """Labelled data read with the run's data settings, and its targets ``(n_texts,
        n_labels)`` in the order of :attr:`label_names`; a label the model lacks is an error."""
        dataset = read_data(data, self.config)
        for name in dataset.label_names or []:
            if name not in self.labels:
                raise DataError(
                    f"{dataset.source}: column {name!r}: label {name!r} is not one of the model's labels"
                )
        return dataset, self.labels.encode(dataset.labels, dataset.source)

    def _known(self, dataset: Dataset) -> np.ndarray | None:
        """The pairs of ``dataset`` that are labelled (partial labels), or None when all are."""
        return self.labels.encode_known(dataset.known, dataset.source)

    def evaluate(
        self, data: DataLike, batch_size: int = 64, precision: str = "auto"
    ) -> dict[str, Any]:
        """Overall and per-label metrics on labelled data, with the saved thresholds, and by
        text length (:meth:`score`)."""
        dataset, targets = self.labelled(data)
        probs = self.predict_proba(dataset.texts, batch_size, precision)
        return self.score(dataset.texts, targets, probs, self._known(dataset))

    def score(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        probs: np.ndarray,
        known: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """The metrics of ``probs`` against ``targets`` with the saved thresholds
        (:meth:`multihot.scoring.thresholds.Thresholds.metrics`), and ``by_length``: the same by
        length of text in tokens (:func:`multihot.scoring.metrics.length_buckets`; in words for
        a linear baseline, which reads every word). ``known``: the labelled pairs, with partial
        labels (the others count nowhere)."""
        metrics = self.thresholds.metrics(targets, probs, self.labels.names, known=known)
        reading = getattr(self.backend, "reading", None)
        metrics["by_length"] = by_length(
            self.tokenizer, reading, texts, targets, self.thresholds.apply(probs), known
        )
        return metrics

    def tune_thresholds(
        self,
        data: DataLike,
        strategy: str | None = None,
        min_support: int | None = None,
        top1_fallback: bool | None = None,
        batch_size: int = 64,
        precision: str = "auto",
        force: bool = False,
    ) -> dict[str, Any]:
        """Tune thresholds on labelled data (defaults: the run's settings); returns the metrics there.

        Labels with fewer than ``min_support`` positives in ``data`` get the global value tuned
        there (per-label strategy), and a warning names them.

        Raises:
            DataError: no label has ``min_support`` positives in ``data``, so nothing can be tuned
                on it but noise (``force=True`` tunes anyway). The thresholds are left unchanged.
        """
        dataset, targets = self.labelled(data)
        min_support = self._check_tunable(targets, dataset.source, strategy, min_support, force)
        probs = self.predict_proba(dataset.texts, batch_size, precision)
        return self._tune(
            dataset.texts,
            targets,
            probs,
            dataset.source,
            strategy,
            min_support,
            top1_fallback,
            self._known(dataset),
        )

    def _check_tunable(self, targets, source, strategy, min_support, force) -> int:
        """The ``min_support`` in force, after refusing data too thin to tune on."""
        t = self.config.train
        min_support = t.min_support if min_support is None else min_support
        if (strategy or t.thresholds) != "fixed" and not force:
            check_enough_positives(targets, self.labels.names, min_support, source)
        return min_support

    def _tune(
        self, texts, targets, probs, source, strategy, min_support, top1_fallback, known=None
    ) -> dict[str, Any]:
        asked = {"strategy": strategy, "min_support": min_support, "top1_fallback": top1_fallback}
        settings = self.config.train.threshold_settings()
        settings.update({k: v for k, v in asked.items() if v is not None})
        self.thresholds = tune_thresholds(targets, probs, known=known, **settings)
        log_fallback(self.thresholds, self.labels.names, min_support, source)
        metrics = self.score(texts, targets, probs, known)
        self.metrics["thresholds_tuned_on"] = {"data": source, **metrics}
        return metrics

    def uncalibrated_logits(
        self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """:meth:`predict_logits` without the run's calibration."""
        calibration, self.calibration = self.calibration, None
        try:
            return self.predict_logits(texts, batch_size, precision)
        finally:
            self.calibration = calibration

    def calibrate(
        self,
        data: DataLike,
        method: str = "platt",
        strategy: str | None = None,
        min_support: int | None = None,
        top1_fallback: bool | None = None,
        batch_size: int = 64,
        precision: str = "auto",
        force: bool = False,
    ) -> dict[str, Any]:
        """Fit a temperature and a bias per label on labelled data (``method="temperature"``: the
        temperature alone; see :mod:`multihot.scoring.calibration`), then re-tune the thresholds
        there on the calibrated probabilities (the other arguments: as for
        :meth:`tune_thresholds`).

        Every probability the classifier returns is calibrated afterwards (Python, CLI, ONNX
        export, server, once saved). Calibration keeps each label's order of texts, so AUC and
        average precision do not change; the thresholds must move, which is why they are re-tuned.

        Returns:
            The metrics on ``data`` with the new thresholds, and ``calibration``: ECE overall and
            per label before and after (:func:`multihot.scoring.calibration.calibration_summary`).

        Raises:
            DataError: as :meth:`tune_thresholds`; nothing is changed then.

        Example:
            >>> clf.calibrate("dev.jsonl")["calibration"]["ece_after"]  # doctest: +SKIP
            0.012
        """
        dataset, targets = self.labelled(data)
        known = self._known(dataset)
        min_support = self._check_tunable(targets, dataset.source, strategy, min_support, force)
        logits = self.uncalibrated_logits(dataset.texts, batch_size, precision)
        calibration = Calibration.fit(targets, logits, dataset.source, method, known=known)
        probs = sigmoid(calibration.apply(logits))
        summary = calibration_summary(targets, sigmoid(logits), probs, self.labels.names, known)
        self.calibration = calibration
        metrics = self._tune(
            dataset.texts,
            targets,
            probs,
            dataset.source,
            strategy,
            min_support,
            top1_fallback,
            known,
        )
        metrics["calibration"] = summary
        self.metrics["calibration"] = {"data": dataset.source, **summary}
        return metrics

    # ------------------------------------------------------------------------------- explanation
    def explain(
        self, text: str, label: str | Sequence[str] | None = None, **options: Any
    ) -> Explanation:
        """Which tokens drove each label of ``text``: the label-attention weights when the model
        pools with ``label-attention``, exact contributions for the linear baseline, integrated
        gradients otherwise (the explain extra), with a deletion check per label (see
        :func:`multihot.inference.explain.explain`; ``options``: its ``top_k``, ``method``,
        ``n_steps``, ``seed``). Default labels: those that fire, or the most probable one.

        Example:
            >>> e = clf.explain("thank you so much!")  # doctest: +SKIP
            >>> e.labels[0].label, e.labels[0].top_tokens(2)  # doctest: +SKIP
            ('gratitude', ['thank', 'you'])
        """
        return explain_text(self.backend, text, self.labels, self.thresholds, label, **options)

    # ---------------------------------------------------------------------------------- artifacts
    def save(self, path: str | Path) -> Path:
        """Write the run directory (all or nothing): new, empty, or a multihot run to replace."""
        common: dict[str, Any] = dict(
            config=self.config,
            labels=self.labels,
            thresholds=self.thresholds,
            metrics=self.metrics,
            history=self.history,
            calibration=self.calibration,
            validation=self.validation,
            training_texts=self.training_texts,
        )
        if isinstance(self.backend, TfidfLogistic):
            model = self.backend
            return runs.save_linear_run(
                path,
                vocabulary=model.vocabulary,
                arrays=model.arrays(),
                baseline=model.config_dict(),
                **common,
            )
        encoder_config = self.encoder_config
        if encoder_config is None:  # loading rebuilds the encoder from it
            raise MultihotError(
                "cannot save a transformer model without its encoder_config "
                "(Classifier(..., encoder_config=...)): the run could not be loaded"
            )
        return save_transformer_run(
            path,
            model=self.model,
            tokenizer=self.tokenizer,
            encoder_config=encoder_config,
            init_from=self.init_from,
            **common,
        )

    def save_thresholds(self, path: str | Path) -> None:
        """Replace only thresholds.json (the old one kept as thresholds.previous.json) and
        metrics.json of an existing run directory."""
        runs.save_thresholds(path, self.labels, self.thresholds, self.metrics)

    def save_calibration(self, path: str | Path) -> None:
        """Replace calibration.json, thresholds.json (the old one kept as
        thresholds.previous.json) and metrics.json of an existing run directory."""
        runs.save_calibration(path, self.labels, self.calibration)
        self.save_thresholds(path)

    def save_metrics(self, path: str | Path) -> None:
        """Replace only metrics.json of an existing run directory."""
        runs.save_metrics(path, self.metrics)

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Load a run directory, of any kind, written by :meth:`save` (weights from safetensors
        only), after checking its files against each other."""
        files = runs.read_run_files(path)
        return cls(
            load_backend(files),
            None,
            files.labels,
            files.thresholds,
            files.config,
            metrics=files.metrics,
            history=files.history,
            init_from=files.raw.get(runs.INIT_FROM),
            training_texts=read_training_texts(files.path),
        )
