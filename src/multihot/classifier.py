"""The library's front door: :class:`Classifier` trains, predicts, evaluates, tunes, saves, loads."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.rundir import (
    PREVIOUS_THRESHOLDS,
    THRESHOLDS,
    WEIGHTS,
    check_output_dir,
    check_run_dir,
    convert_hint,
    dumps,
    history_text,
    is_pickle,
    library_versions,
    read_history,
    read_json,
    write_atomic,
    write_dir_atomic,
)
from multihot.core import distributed
from multihot.core.config import ModelConfig, RunConfig, TrainConfig
from multihot.core.errors import ConfigError, DataError, MultihotError, RunDirError
from multihot.core.precision import default_device, inference_copy, resolve_precision
from multihot.data.batching import TokenizedDataset, tokenize
from multihot.data.labels import LabelSet, warn_case_collisions
from multihot.data.readers import Dataset, is_empty_text, read_dataset
from multihot.data.splits import stratified_split
from multihot.inference.torch_backend import predict_logits, sigmoid
from multihot.modeling.encoders import (
    build_encoder,
    encoder_from_config,
    is_scratch,
    load_pretrained,
)
from multihot.modeling.ensemble import SeedEnsemble
from multihot.modeling.model import MultiLabelModel
from multihot.scoring.thresholds import Thresholds
from multihot.training.checkpoint import RunCheckpoints, fingerprint, tokenizer_fingerprint
from multihot.training.loop import TrainCallback, TrainResult, fit, tune_for_config
from multihot.training.losses import build_loss, compute_pos_weight

logger = logging.getLogger(__name__)

DataLike = str | Path | Dataset


class Classifier:
    """A trained multi-label text classifier with its per-label thresholds.

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
        model: MultiLabelModel | SeedEnsemble,
        tokenizer,
        labels: LabelSet,
        thresholds: Thresholds,
        config: RunConfig,
        encoder_config: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.labels = labels
        self.thresholds = thresholds
        self.config = config
        self.encoder_config = encoder_config
        self.metrics = metrics or {}
        self.history = history or []
        self.device = default_device()
        self.model.to(self.device).eval()
        self._inference_models: dict[str, tuple[Any, str]] = {}

    @property
    def label_names(self) -> list[str]:
        return self.labels.names

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
        **overrides: Any,
    ) -> Classifier:
        """Train on ``train``, select and tune thresholds on ``val`` (or a stratified hold-out).

        Args:
            train: a data file (csv, tsv, jsonl, json, parquet) or a :class:`Dataset`.
            val: the same for validation; without it ``val_fraction`` of train is held out.
            config: the full configuration; ``overrides`` (flat keys such as ``encoder="scratch-mini"``,
                ``epochs=3``) replace its values.
            output: a run directory to save to when training is done. While training, it holds
                checkpoints (``checkpoints/``, one at every evaluation) from which a killed run
                can be resumed; until the final save replaces it, it refuses to load.
            callback: receives progress (see :class:`multihot.training.loop.TrainCallback`).
            trust_remote_weights: accept a Hugging Face encoder whose weights exist only pickled
                (``pytorch_model.bin``), read with ``torch.load(weights_only=True)``; not saved in
                the config, so a config file can never turn it on.
            resume: continue the interrupted run in ``output`` from its last checkpoint. It needs
                the same data; its config is the run's own (``config`` and ``overrides`` may only
                repeat it). :meth:`resume` does this with the data files the run recorded.
        """
        from accelerate.utils import set_seed

        checkpoints = RunCheckpoints(output) if output is not None else None
        if resume:
            if checkpoints is None:
                raise ConfigError("resume: needs output, the run directory to resume")
            saved = checkpoints.invocation()
            config = _resumed_config(checkpoints, saved, config, overrides)
        else:
            config = _resolved_config(config, overrides)
            if checkpoints is not None:
                check_output_dir(checkpoints.run)
                checkpoints.refuse_unfinished()
        # Before anything is written (fit checks it too, for callers of fit alone).
        distributed.check_batch_split(config.train.batch_size, distributed.state().num_processes)
        data = prepare_data(train, val, config)
        labels, train_targets, val_targets = data.labels, data.train_targets, data.val_targets

        set_seed(config.train.seed)
        m = config.model
        encoder, tokenizer, encoder_config = build_encoder(
            m.encoder,
            data.train.texts,
            m.vocab_size,
            m.max_length,
            m.dropout,
            trust_remote_weights=trust_remote_weights,
        )
        if checkpoints is not None:
            invocation = {
                "config": config.to_dict(),
                "train": _source(train),
                "val": _source(val),
                "in_memory": isinstance(train, Dataset) or isinstance(val, Dataset),
                "data_sha256": data.fingerprint(),
                "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
            }
            if resume:
                _check_same_inputs(saved, invocation, checkpoints)
            else:
                checkpoints.start(invocation)
        train_set = TokenizedDataset(
            tokenize(tokenizer, data.train.texts, m.max_length), train_targets
        )
        val_set = TokenizedDataset(tokenize(tokenizer, data.val.texts, m.max_length), val_targets)
        t = config.train
        loss_fn = build_loss(
            t.loss,
            compute_pos_weight(train_targets, t.pos_weight, labels.names),
            label_smoothing=t.label_smoothing,
            focal_gamma=t.focal_gamma,
            asl_gamma_neg=t.asl_gamma_neg,
            asl_gamma_pos=t.asl_gamma_pos,
            asl_clip=t.asl_clip,
        )

        members, results = [], []
        for member in range(m.ensemble):
            seed = t.seed + member
            done = checkpoints.load_member(member) if checkpoints is not None else None
            if member and done is None:  # the first member keeps the encoder built above
                set_seed(seed)
                encoder = (
                    encoder_from_config(encoder_config)
                    if is_scratch(m.encoder)
                    else load_pretrained(m.encoder, trust_remote_weights=trust_remote_weights)[0]
                )
            elif member:  # finished before an interruption: only its shape is needed
                encoder = encoder_from_config(encoder_config)
            model = MultiLabelModel(
                encoder, len(labels), replace(m, pooling=m.member_pooling(member))
            )
            if done is not None:
                logger.info("member %d of the ensemble had finished; not trained again", member)
                result = done
            else:
                result = fit(
                    model,
                    loss_fn,
                    train_set,
                    val_set,
                    replace(t, seed=seed),
                    pad_token_id=tokenizer.pad_token_id,
                    label_names=labels.names,
                    callback=callback,
                    mask_token_id=tokenizer.mask_token_id,
                    special_ids=tokenizer.all_special_ids,
                    checkpoint=checkpoints.member_state(member) if checkpoints else None,
                    resume=checkpoints is not None and checkpoints.has_state(member),
                )
                if checkpoints is not None:
                    checkpoints.save_member(member, result)
            # The best weights go into a fresh module: the trained one may have been changed in
            # place by the distributed wrapper (FSDP2 turns its parameters into shards).
            model = MultiLabelModel(
                encoder_from_config(encoder_config),
                len(labels),
                replace(m, pooling=m.member_pooling(member)),
            )
            if result.state_dict:  # empty on the other processes of an FSDP job: they never save
                model.load_state_dict(result.state_dict)
            result.state_dict = {}
            members.append(model)
            results.append(result)
        if len(members) == 1:
            model, result = members[0], results[0]
            history = result.history
            best = {"best": _best_record(result, t.metric)}
        else:
            model = SeedEnsemble(members)
            history = [
                {"member": i, **record} for i, r in enumerate(results) for record in r.history
            ]
            best = {
                "members": [
                    {"member": i, "seed": t.seed + i, **_best_record(r, t.metric)}
                    for i, r in enumerate(results)
                ]
            }
        clf = cls(
            model, tokenizer, labels, Thresholds.fixed(len(labels)), config, encoder_config,
            history=history,
        )  # fmt: skip
        # Thresholds are tuned on the probabilities that prediction gives, not on those of the
        # evaluation during training: prediction runs another copy of the model (SDPA attention,
        # the last layer for [CLS] alone with cls/pooler pooling) that rounds differently in bf16.
        val_probs = clf.predict_proba(data.val.texts)
        clf.thresholds, clf.metrics = finish_validation(labels, val_targets, val_probs, t)
        clf.metrics.update(
            best,
            precision=results[0].precision,
            stopped_early=any(r.stopped_early for r in results),
        )
        if output is not None:
            # Launched over several processes, every one ends with the same model; one writes it.
            # The save replaces the whole directory: the checkpoints go with it.
            state = distributed.state()
            if state.is_main_process:
                clf.save(output)
            state.wait_for_everyone()
        return clf

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
        saved = RunCheckpoints(run).invocation()
        if saved.get("in_memory") or not isinstance(saved.get("train"), str):
            raise RunDirError(
                f"{run}: trained on data given in memory, not read from files; resume it with "
                f"Classifier.train(train, val, output={str(run)!r}, resume=True)"
            )
        return cls.train(
            saved["train"],
            saved.get("val"),
            output=run,
            callback=callback,
            trust_remote_weights=trust_remote_weights,
            resume=True,
        )

    # --------------------------------------------------------------------------------- prediction
    def predict_logits(
        self, texts: Sequence[str], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """Logits of shape ``(n_texts, num_labels)``, rows in input order."""
        texts = check_texts(texts)
        ids = tokenize(self.tokenizer, texts, self.config.model.max_length)
        precision = resolve_precision(precision, self.device)
        if precision not in self._inference_models:
            self._inference_models[precision] = inference_copy(self.model, self.device, precision)
        model, autocast_to = self._inference_models[precision]
        return predict_logits(
            model,
            ids,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=batch_size,
            device=self.device,
            precision=autocast_to,
        )

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
    def _targets(self, data: DataLike) -> tuple[Dataset, np.ndarray]:
        dataset = _read(data, self.config)
        for name in dataset.label_names or []:
            if name not in self.labels:
                raise DataError(
                    f"{dataset.source}: column {name!r}: label {name!r} is not one of the model's labels"
                )
        return dataset, self.labels.encode(dataset.labels, dataset.source)

    def evaluate(
        self, data: DataLike, batch_size: int = 64, precision: str = "auto"
    ) -> dict[str, Any]:
        """Overall and per-label metrics on labelled data, with the saved thresholds."""
        dataset, targets = self._targets(data)
        probs = self.predict_proba(dataset.texts, batch_size, precision)
        return self.thresholds.metrics(targets, probs, self.labels.names)

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
        dataset, targets = self._targets(data)
        t = self.config.train
        strategy = strategy or t.thresholds
        min_support = t.min_support if min_support is None else min_support
        support = targets.sum(axis=0).astype(int)
        if strategy != "fixed" and not force and not (support >= max(min_support, 1)).any():
            most = int(support.argmax())
            raise DataError(
                f"{dataset.source}: too few positives to tune thresholds on: no label has "
                f"{max(min_support, 1)} (min_support) positive texts (the most is {support[most]}, "
                f"{self.labels.names[most]!r}, in {len(targets)} texts); tuned here they would be "
                "noise. Give more labelled data, or force it (--force)"
            )
        probs = self.predict_proba(dataset.texts, batch_size, precision)
        self.thresholds = tune_for_config(
            targets, probs, t,
            strategy=strategy, min_support=min_support, top1_fallback=top1_fallback,
        )  # fmt: skip
        fallback = [self.labels.names[i] for i in self.thresholds.fallback_labels]
        if fallback:
            logger.warning(
                "%s: %d of %d labels have fewer than %d positive texts and use the global "
                "threshold %.3f: %s",
                dataset.source, len(fallback), len(self.labels), min_support,
                self.thresholds.global_value, ", ".join(fallback),
            )  # fmt: skip
        metrics = self.thresholds.metrics(targets, probs, self.labels.names)
        self.metrics["thresholds_tuned_on"] = {"data": dataset.source, **metrics}
        return metrics

    # ---------------------------------------------------------------------------------- artifacts
    def save(self, path: str | Path) -> Path:
        """Write the run directory (all or nothing; an existing one is replaced)."""
        from safetensors.torch import save_model

        path = Path(path)
        check_output_dir(path)

        def fill(tmp: Path) -> None:
            config = {
                "kind": "transformer",
                **self.config.to_dict(),
                "encoder_config": self.encoder_config,
                "num_labels": len(self.labels),
                "versions": library_versions(),
            }
            write_atomic(tmp / "config.json", dumps(config))
            metadata = weights_metadata(self.labels, self.config.model, self.encoder_config)
            save_model(self.model, str(tmp / WEIGHTS), metadata=metadata)
            self.tokenizer.save_pretrained(str(tmp / "tokenizer"))
            self._write_outcome(tmp)

        write_dir_atomic(path, fill)
        return path

    def save_thresholds(self, path: str | Path) -> None:
        """Replace only thresholds.json and metrics.json of an existing run directory.

        The thresholds replaced are kept in ``thresholds.previous.json`` (one generation), so a
        re-tuning can be undone by moving that file back. Each file is replaced in one step: a
        kill leaves the old thresholds or the new ones.
        """
        path = check_run_dir(Path(path), required=("config.json",))
        current = path / THRESHOLDS
        if current.is_file():
            write_atomic(path / PREVIOUS_THRESHOLDS, current.read_text(encoding="utf-8"))
        write_atomic(current, dumps(self.thresholds.to_dict(self.labels.names)))
        self.save_metrics(path)

    def save_metrics(self, path: str | Path) -> None:
        """Replace only metrics.json of an existing run directory."""
        path = check_run_dir(Path(path), required=("config.json",))
        write_atomic(path / "metrics.json", dumps(self.metrics))

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Load a run directory written by :meth:`save` (weights from safetensors only).

        A run of ``multihot baseline`` loads as a :class:`multihot.baseline.linear.BaselineClassifier`.
        """
        from safetensors.torch import load_model
        from transformers import AutoTokenizer

        path = check_run_dir(Path(path), required=("config.json",))
        raw = read_json(path / "config.json")
        if raw.get("kind") == "tfidf-logreg":
            from multihot.baseline.linear import BaselineClassifier

            return BaselineClassifier.load_run(path, raw)
        check_run_dir(path)
        if "encoder_config" not in raw:
            raise RunDirError(f"{path / 'config.json'}: missing 'encoder_config'")
        encoder_config = raw["encoder_config"]
        config, labels, thresholds = read_run(path, raw)
        check_weights_metadata(path, weights_metadata(labels, config.model, encoder_config))
        model = build_model(encoder_config, len(labels), config.model)
        weights = path / WEIGHTS
        try:
            load_model(model, str(weights), strict=True)
        except RuntimeError as err:  # torch: names or shapes differ from the model's
            if "state_dict" not in str(err):
                raise RunDirError(f"{weights}: cannot load weights ({_first_line(err)})") from None
            # The first line only says "Error(s) in loading state_dict"; the next one says which.
            detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])
            raise broken(
                path,
                f"cannot load weights into the model that config.json and labels.json describe "
                f"({detail[:300]})",
            ) from None
        except Exception as err:  # safetensors raises several types for truncated or foreign files
            if is_pickle(weights):
                raise RunDirError(
                    f"{weights}: a pickled PyTorch checkpoint, not safetensors; "
                    f"{convert_hint(weights, path)}"
                ) from None
            raise RunDirError(f"{weights}: cannot load weights ({_first_line(err)})") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
        except Exception as err:
            raise RunDirError(
                f"{path / 'tokenizer'}: cannot load tokenizer ({str(err).splitlines()[0][:200]})"
            ) from None
        metrics, history = load_metrics_and_history(path)
        return cls(model, tokenizer, labels, thresholds, config, encoder_config, metrics, history)

    def _write_outcome(self, directory: Path) -> None:
        """The files every kind of run has: labels, thresholds, metrics, history."""
        write_atomic(directory / "labels.json", dumps(self.labels.names))
        write_atomic(
            directory / "thresholds.json", dumps(self.thresholds.to_dict(self.labels.names))
        )
        write_atomic(directory / "metrics.json", dumps(self.metrics))
        write_atomic(directory / "history.jsonl", history_text(self.history))


def build_model(
    encoder_config: dict[str, Any], num_labels: int, config: ModelConfig
) -> MultiLabelModel | SeedEnsemble:
    """A randomly initialised model of the shape ``config`` describes, ready for saved weights."""
    members = [
        MultiLabelModel(
            encoder_from_config(encoder_config),
            num_labels,
            replace(config, pooling=config.member_pooling(i)),
        )
        for i in range(config.ensemble)
    ]
    return members[0] if len(members) == 1 else SeedEnsemble(members)


def _resolved_config(config: RunConfig | None, overrides: dict[str, Any]) -> RunConfig:
    config = (config or RunConfig()).override(**overrides)
    if config.train.lr is None:
        # Random weights need far larger steps than fine-tuning a pretrained encoder.
        config = config.override(lr=4e-4 if is_scratch(config.model.encoder) else 5e-5)
    return config


def _resumed_config(
    checkpoints: RunCheckpoints,
    saved: dict[str, Any],
    given: RunConfig | None,
    overrides: dict[str, Any],
) -> RunConfig:
    """The interrupted run's config (``saved``: its invocation); ``given`` and ``overrides`` may
    only repeat it."""
    config = checkpoints.config(saved)
    asked = _resolved_config(given or config, overrides)
    if asked != config:
        flat = {k: v for section in config.to_dict().values() for k, v in section.items()}
        differ = [
            f"{key}={value!r} (the run has {flat[key]!r})"
            for section in asked.to_dict().values()
            for key, value in section.items()
            if value != flat[key]
        ]
        raise ConfigError(
            f"{checkpoints.run}: a resumed run keeps its own settings; these differ: "
            + ", ".join(differ)
        )
    return config


def _check_same_inputs(
    saved: dict[str, Any], now: dict[str, Any], checkpoints: RunCheckpoints
) -> None:
    if saved.get("data_sha256") != now["data_sha256"]:
        raise RunDirError(
            f"{checkpoints.run}: the training or validation data differ from the interrupted "
            f"run's (recorded: train {saved.get('train')}, val {saved.get('val')}); resume with "
            f"the same data"
        )
    if saved.get("tokenizer_sha256") != now["tokenizer_sha256"]:
        raise RunDirError(
            f"{checkpoints.run}: the tokenizer built now differs from the interrupted run's "
            f"(another encoder directory, or another tokenizers version?); it cannot be resumed"
        )


def _source(data: DataLike | None) -> str | None:
    """A data file as an absolute path, so a run resumes from any directory (None: in memory)."""
    return None if data is None or isinstance(data, Dataset) else str(Path(data).resolve())


def _best_record(result: TrainResult, metric: str) -> dict[str, Any]:
    return {"step": result.best["step"], "epoch": result.best["epoch"], "metric": metric}


# Keys of config.json that describe the run rather than configure it.
RUN_INFO_KEYS = ("kind", "encoder_config", "baseline", "num_labels", "versions")


RUN_KINDS = ("transformer", "tfidf-logreg")
CONFIG_SECTIONS = ("model", "train", "data")
WEIGHTS_META = "multihot"
"""The key of the weights file's metadata that records what the weights were trained as."""


def broken(path: Path, problem: str) -> RunDirError:
    """The one error for a run directory whose files do not agree with each other."""
    return RunDirError(f"{path}: broken run directory: {problem}")


def read_run(path: Path, raw: dict[str, Any]) -> tuple[RunConfig, LabelSet, Thresholds]:
    """The config, labels and thresholds of a run directory, checked against each other.

    Args:
        path: the run directory.
        raw: its config.json, parsed.

    Raises:
        RunDirError: a file is corrupt, config.json lacks a section, or the files disagree (label
            count, label names of the thresholds).
    """
    try:
        config = RunConfig.from_dict(
            {k: v for k, v in raw.items() if k not in RUN_INFO_KEYS},
            source=str(path / "config.json"),
        )
    except MultihotError as err:
        raise RunDirError(str(err)) from None
    # A section left out would silently become the defaults (another pooling, another length).
    missing = [name for name in CONFIG_SECTIONS if not isinstance(raw.get(name), dict)]
    if missing:
        raise broken(path, f"config.json has no {', '.join(repr(m) for m in missing)} section")
    kind = raw.get("kind", "transformer")
    if kind not in RUN_KINDS:
        raise broken(path, f"config.json: unknown kind {kind!r}; expected one of {RUN_KINDS}")
    names = read_json(path / "labels.json", list)
    try:
        labels = LabelSet(names)
    except MultihotError as err:
        raise broken(path, f"labels.json: {err}") from None
    if raw.get("num_labels") != len(labels):
        raise broken(
            path,
            f"config.json says num_labels {raw.get('num_labels')!r}, labels.json has "
            f"{len(labels)} labels",
        )
    try:
        thresholds = Thresholds.from_dict(read_json(path / "thresholds.json"), labels.names)
    except RunDirError:
        raise
    except MultihotError as err:
        raise broken(path, f"thresholds.json does not fit labels.json: {err}") from None
    return config, labels, thresholds


def weights_metadata(
    labels: LabelSet, config: ModelConfig | None = None, encoder_config: dict | None = None
) -> dict[str, str]:
    """What the weights were trained as, for their safetensors header: the label names in column
    order and, for a transformer, each member's pooling, the head and a hash of the encoder's
    config. Pooling has no weights and a reordered labels.json has the same shapes: only this
    record catches them."""
    record: dict[str, Any] = {"labels": labels.names}
    if config is not None:
        record["poolings"] = [config.member_pooling(i) for i in range(config.ensemble)]
        record["head"] = config.head
    if encoder_config is not None:
        record["encoder_config_sha256"] = _sha256_json(encoder_config)
    return {WEIGHTS_META: json.dumps(record, ensure_ascii=False)}


_RECORDED = {
    "labels": "labels.json (names or order)",
    "poolings": "config.json's pooling",
    "head": "config.json's head",
    "encoder_config_sha256": "config.json's encoder_config",
}


def check_weights_metadata(path: Path, expected: dict[str, str]) -> None:
    """Raise the broken-run error when the weights were saved for other labels or another model
    than the run's files describe (``expected``: :func:`weights_metadata` of those). Weights saved
    before this record was kept are not checked."""
    from safetensors import safe_open

    try:
        with safe_open(str(path / WEIGHTS), framework="np") as fh:
            raw = (fh.metadata() or {}).get(WEIGHTS_META)
    except Exception:  # not a safetensors file: loading the weights says so
        return
    if raw is None:
        return
    try:
        saved = json.loads(raw)
    except ValueError:
        raise broken(path, f"{WEIGHTS}: corrupt {WEIGHTS_META!r} metadata") from None
    now = json.loads(expected[WEIGHTS_META])
    for key, description in _RECORDED.items():
        if key in saved and key in now and saved[key] != now[key]:
            raise broken(path, f"{WEIGHTS} was trained with other {description} than the run has")


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:200] if str(err).strip() else type(err).__name__


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def load_metrics_and_history(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    metrics = read_json(path / "metrics.json") if (path / "metrics.json").exists() else {}
    return metrics, read_history(path / "history.jsonl")


@dataclass
class PreparedData:
    """Training and validation data with their targets over one label set."""

    labels: LabelSet
    train: Dataset
    train_targets: np.ndarray
    val: Dataset
    val_targets: np.ndarray

    def fingerprint(self) -> str:
        """A hash of the texts and targets, train and validation, and the label names."""
        texts = itertools.chain(self.labels.names, self.train.texts, self.val.texts)
        return fingerprint(texts, self.train_targets, self.val_targets)


def prepare_data(train: DataLike, val: DataLike | None, config: RunConfig) -> PreparedData:
    """Read the data, fix the label set (train and val together), and hold out val if there is none."""
    train_data = _read(train, config)
    val_data = _read(val, config) if val is not None else None
    names: set[str] = {n for labels in train_data.labels for n in labels}
    names.update(train_data.label_names or [])
    if val_data is not None:
        names.update(n for labels in val_data.labels for n in labels)
        names.update(val_data.label_names or [])
    if not names:
        raise DataError(f"{train_data.source}: no labels: expected at least one label name")
    labels = LabelSet(train_data.label_names if _same_names(train_data, names) else sorted(names))
    sources = [train_data.source] + ([val_data.source] if val_data is not None else [])
    warn_case_collisions(labels.names, " and ".join(dict.fromkeys(sources)))
    train_targets = labels.encode(train_data.labels, train_data.source)
    for name, count in zip(labels.names, train_targets.sum(axis=0), strict=True):
        if count == 0:
            logger.warning(
                "%s: label %r has no positive example in training", train_data.source, name
            )
    if val_data is not None:
        return PreparedData(
            labels,
            train_data,
            train_targets,
            val_data,
            labels.encode(val_data.labels, val_data.source),
        )
    train_idx, val_idx = stratified_split(
        train_targets, config.train.val_fraction, config.train.seed
    )
    logger.info(
        "no validation data: held out %d of %d training texts", len(val_idx), len(train_targets)
    )
    return PreparedData(
        labels,
        train_data.subset(train_idx),
        train_targets[train_idx],
        train_data.subset(val_idx),
        train_targets[val_idx],
    )


def finish_validation(
    labels: LabelSet, targets: np.ndarray, probs: np.ndarray, config: TrainConfig
):
    """Thresholds tuned on validation, and the validation metrics with them."""
    thresholds = tune_for_config(targets, probs, config)
    return thresholds, {"validation": thresholds.metrics(targets, probs, labels.names)}


def _read(data: DataLike, config: RunConfig) -> Dataset:
    if isinstance(data, Dataset):
        return data
    d = config.data
    return read_dataset(
        data,
        text_col=d.text_col,
        labels_col=d.labels_col,
        label_cols=d.label_cols,
        label_sep=d.label_sep,
    )


def _same_names(data: Dataset, names: set[str]) -> bool:
    """Keep the column order of 0/1 label columns when they name every label."""
    return data.label_names is not None and set(data.label_names) == names


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, once every one is a text that training would accept.

    The one check of texts given for prediction, whatever the backend: an empty or whitespace-only
    text is refused here as :func:`multihot.data.readers.read_dataset` refuses it in training data
    (:func:`multihot.data.readers.is_empty_text`), rather than labelled from padding alone.

    Raises:
        MultihotError: a single string, or a text (numbered from 1) that is not a string or is
            empty.

    Example:
        >>> check_texts(("so happy", "ugh"))
        ['so happy', 'ugh']
    """
    if isinstance(texts, str):
        raise MultihotError("expected a list of texts, got a single string; wrap it in a list")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise MultihotError(f"text {i + 1}: expected a string, got {type(text).__name__}")
        if is_empty_text(text):
            raise MultihotError(
                f"text {i + 1}: empty text; expected at least one character that is not "
                "whitespace, as in training data"
            )
    return texts
