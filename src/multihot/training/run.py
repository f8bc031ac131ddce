"""A whole training run: resolve the config, prepare the data, train each member, assemble the model,
tune the thresholds on validation, save the run directory. :meth:`multihot.Classifier.train` is
this module's :func:`train_run`; :func:`resume_run` continues one a kill interrupted.

A run with an output directory keeps checkpoints there (:mod:`multihot.training.checkpoint`), so a
killed run continues where it stopped and ends as the uninterrupted run would have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from multihot.artifacts.rundir import check_output_dir
from multihot.artifacts.runs import INIT_FROM
from multihot.artifacts.transformer import save_transformer_run
from multihot.artifacts.validation import ValidationPredictions
from multihot.baseline.train import fit_baseline
from multihot.core import distributed
from multihot.core.config import AUTO_STEPS, BASELINE_KIND, RunConfig, TrainConfig, auto_epochs
from multihot.core.errors import ConfigError, RunDirError
from multihot.data.batching import TokenizedDataset
from multihot.data.encoding import Cut, Reading, tokenize, tokenize_and_cut
from multihot.data.labels import LabelSet
from multihot.data.prepare import DataLike, PreparedData, prepare_data
from multihot.data.preprocess import check_lowercase, prepare_texts
from multihot.data.texthashes import TextHashes
from multihot.inference.torch_backend import TorchBackend
from multihot.modeling.encoders import (
    build_encoder,
    encoder_from_config,
    is_scratch,
    load_pretrained,
    position_limit,
    with_default_encoder,
)
from multihot.modeling.ensemble import SeedEnsemble
from multihot.modeling.families import check_settings
from multihot.modeling.model import MultiLabelModel
from multihot.scoring.calibration import Calibration, calibrated, calibration_summary
from multihot.scoring.metrics import by_length
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import Thresholds, finish_validation
from multihot.training.checkpoint import RunCheckpoints, recorded_inputs
from multihot.training.init_from import StartingRun, init_config
from multihot.training.losses import build_loss, compute_pos_weight
from multihot.training.result import TrainResult
from multihot.training.session import TrainCallback, fit
from multihot.training.tracking import Tracking, check_trackers, flat_hparams

logger = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """What a training run ends with: the model and everything a run directory holds."""

    model: MultiLabelModel | SeedEnsemble
    tokenizer: Any
    encoder_config: dict[str, Any]
    labels: LabelSet
    thresholds: Thresholds
    config: RunConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    validation: ValidationPredictions | None = None
    """The validation rows and the model's logits for them (what the thresholds were tuned on)."""
    calibration: Calibration | None = None
    """Fitted on the validation rows (``calibrate``); every probability is computed with it."""
    init_from: dict[str, Any] | None = None
    """Where training started, when from another run (:meth:`StartingRun.record`)."""
    training_texts: TextHashes | None = None
    """The hashes of the texts the model learnt from (:func:`training_texts`)."""


@dataclass
class _Setup:
    """What every member of a run shares: the data, the tokenizer, the loss."""

    config: RunConfig
    data: PreparedData
    tokenizer: Any
    encoder_config: dict[str, Any]
    train_set: TokenizedDataset
    val_set: TokenizedDataset
    loss_fn: Any
    checkpoints: RunCheckpoints | None
    trust_remote_weights: bool
    name: str = "multihot"
    """The run's name (its output directory's), for the trackers."""
    start: StartingRun | None = None
    """The run whose weights each member starts from (``init_from``), or None."""


def train_run(
    train: DataLike,
    val: DataLike | None = None,
    *,
    config: RunConfig | None = None,
    output: str | Path | None = None,
    callback: TrainCallback | None = None,
    trust_remote_weights: bool = False,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    init_from: str | Path | None = None,
    drop_labels: bool = False,
) -> TrainedRun:
    """Train, tune thresholds and (with ``output``) save a run; see :meth:`multihot.Classifier.train`.
    With ``init_from``, the model starts from that run's (:mod:`multihot.training.init_from`)."""
    checkpoints = RunCheckpoints(output) if output is not None else None
    config, saved, start = _starting_config(
        checkpoints, config, overrides or {}, resume, init_from, drop_labels
    )
    # Before anything is written (fit checks them too, for callers of fit alone).
    distributed.check_batch_split(config.train.batch_size, distributed.state().num_processes)
    check_trackers(config.train)
    data = prepare_data(train, val, config)
    if start is not None:
        start.check_labels(data.labels)
    config = _resolve_epochs(config, len(data.train))
    setup, encoder = _set_up(config, data, checkpoints, trust_remote_weights, start)
    if checkpoints is not None:
        invocation = {
            "config": setup.config.to_dict(),
            **recorded_inputs(train, val, data.fingerprint(), setup.tokenizer),
        }
        if start is not None:
            invocation[INIT_FROM] = start.invocation()
        if saved is not None:  # resuming
            checkpoints.check_same_inputs(saved, invocation)
        else:
            checkpoints.start(invocation)
    members, results = [], []
    for member in range(setup.config.model.ensemble):
        model, result = _train_member(setup, member, encoder if member == 0 else None, callback)
        members.append(model)
        results.append(result)
    run = _assemble(setup, members, results)
    run.training_texts = training_texts(data, start)
    if start is not None:
        run.init_from = start.record(data.labels)
    if config.train.compare_baseline:
        run.metrics["linear_baseline"] = compare_with_baseline(data, config)
    if output is not None:
        # Launched over several processes, every one ends with the same model; one writes it.
        # The save replaces the whole directory: the checkpoints go with it.
        state = distributed.state()
        if state.is_main_process:
            save_run(run, output)
        state.wait_for_everyone()
    return run


def _set_up(
    config: RunConfig,
    data: PreparedData,
    checkpoints: RunCheckpoints | None,
    trust_remote_weights: bool,
    start: StartingRun | None = None,
) -> tuple[_Setup, Any]:
    """The first member's encoder (seeded), the tokenizer, the texts tokenized and the loss; the
    encoder's shape and the tokenizer are ``start``'s when the run starts from another."""
    from accelerate.utils import set_seed  # heavy: accelerate

    set_seed(config.train.seed)
    m = config.model
    scratch = is_scratch(m.encoder_name)
    if start is not None:
        encoder, tokenizer, encoder_config = start.encoder(), start.tokenizer, start.encoder_config
    else:
        encoder, tokenizer, encoder_config = build_encoder(
            m.encoder_name,
            # A scratch vocabulary is built from the texts as the encoder will read them.
            prepare_texts(data.train.texts, m.preprocess or []) if scratch else [],
            m.vocab_size,
            m.max_length,
            m.dropout,
            trust_remote_weights=trust_remote_weights,
        )
    # Every setting that depends on the encoder, before anything is written (checkpoints.start).
    check_settings(encoder, config)
    check_lowercase(m, tokenizer, scratch)
    config = _cap_max_length(config, encoder, tokenizer)
    reading = Reading.of(config.model)
    train_ids, cut = tokenize_and_cut(tokenizer, data.train.texts, reading)
    _say_cut(cut, reading)
    setup = _Setup(
        config,
        data,
        tokenizer,
        encoder_config,
        TokenizedDataset(train_ids, data.train_targets, data.train_known),
        TokenizedDataset(
            tokenize(tokenizer, data.val.texts, reading), data.val_targets, data.val_known
        ),
        _loss(config, data),
        checkpoints,
        trust_remote_weights,
        checkpoints.run.name if checkpoints is not None else "multihot",
        start,
    )
    return setup, encoder


def resume_run(
    run: str | Path, *, callback: TrainCallback | None = None, trust_remote_weights: bool = False
) -> TrainedRun:
    """Continue the interrupted run in ``run`` with the data files it recorded; see
    :meth:`multihot.Classifier.resume`."""
    saved = RunCheckpoints(run).invocation()
    if saved.get("in_memory") or not isinstance(saved.get("train"), str):
        raise RunDirError(
            f"{run}: trained on data given in memory, not read from files; resume it with "
            f"Classifier.train(train, val, output={str(run)!r}, resume=True)"
        )
    return train_run(
        saved["train"],
        saved.get("val"),
        output=run,
        callback=callback,
        trust_remote_weights=trust_remote_weights,
        resume=True,
    )


def save_run(run: TrainedRun, path: str | Path) -> Path:
    """Write ``run`` as a run directory (all or nothing)."""
    return save_transformer_run(
        path,
        model=run.model,
        tokenizer=run.tokenizer,
        encoder_config=run.encoder_config,
        config=run.config,
        labels=run.labels,
        thresholds=run.thresholds,
        metrics=run.metrics,
        history=run.history,
        calibration=run.calibration,
        validation=run.validation,
        init_from=run.init_from,
        training_texts=run.training_texts,
    )


def training_texts(data: PreparedData, start: StartingRun | None = None) -> TextHashes:
    """The hashes of the texts a run learns from: its training rows (validation rows are kept
    in validation.jsonl) and, started from another run, that run's recorded ones, since the
    starting weights learnt from them."""
    hashes = TextHashes.of(data.train.texts)
    if start is None:
        return hashes
    if start.training_texts is None:
        logger.warning(
            "init_from %s: the run does not record its training texts (saved before runs kept "
            "them); this run records only its own",
            start.path,
        )
        return hashes
    return hashes.union(start.training_texts)


# ------------------------------------------------------------------------------ the run's config
def resolve_config(config: RunConfig | None, overrides: dict[str, Any]) -> RunConfig:
    """``config`` (default: the defaults) with ``overrides``; the default encoder
    (:func:`~multihot.modeling.encoders.default_encoder`) and preparation steps when none are
    given, and the learning rate and pooling the encoder needs."""
    config = (config or RunConfig()).override(**overrides)
    config = with_default_encoder(config).with_default_preprocess()
    return config.override(
        **pretrained_defaults(config)
        if not is_scratch(config.model.encoder_name)
        else scratch_defaults(config)
    )


SCRATCH_DEFAULTS = {"lr": 4e-4, "layer_lr_decay": 1.0, "pooling": "mean"}
"""What ``lr``, ``layer_lr_decay`` and ``pooling`` default to for a scratch encoder (head_lr:
lr)."""
PRETRAINED_POOLING = "label-attention"
"""The pooling dev picked for a pretrained encoder: all-MiniLM-L6-v2 on GoEmotions, 1 epoch, dev
macro F1 0.5543 against cls 0.5529, mean 0.5502, attention + FC 256 + ReLU 0.5481, pooler 0.5428
and max 0.5427 (``benchmarks/architectures.py``; the top three are within noise of each other)."""
PRETRAINED_DEFAULTS = {"lr": 1e-4, "head_lr_factor": 10.0, "layer_lr_decay": 0.8}
"""For a pretrained encoder: the best of four settings on GoEmotions dev with all-MiniLM-L6-v2
(10k training texts, 1 epoch; dev macro F1 0.375 at lr 5e-5, 0.465 with head_lr 1e-3, 0.476 at
lr 1e-4, 0.479 at lr 1e-4, head_lr 1e-3, layer_lr_decay 0.8). head_lr is lr times the factor."""


def scratch_defaults(config: RunConfig) -> dict[str, Any]:
    """The optimiser settings left unset, for random weights: far larger steps than fine-tuning."""
    unset = {k for k in ("lr", "layer_lr_decay") if getattr(config.train, k) is None}
    unset |= {"pooling"} if config.model.pooling is None else set()
    return {k: v for k, v in SCRATCH_DEFAULTS.items() if k in unset}


def pretrained_defaults(config: RunConfig) -> dict[str, Any]:
    """The optimiser settings left unset, for a pretrained encoder: gentle steps for its trained
    weights, lower still for its lower layers, larger ones for the new head."""
    t = config.train
    lr = t.lr if t.lr is not None else PRETRAINED_DEFAULTS["lr"]
    chosen: dict[str, Any] = {"lr": lr}
    if t.head_lr is None:
        chosen["head_lr"] = lr * PRETRAINED_DEFAULTS["head_lr_factor"]
    if t.layer_lr_decay is None:
        chosen["layer_lr_decay"] = PRETRAINED_DEFAULTS["layer_lr_decay"]
    if config.model.pooling is None:
        chosen["pooling"] = PRETRAINED_POOLING
    return chosen


def _resolve_epochs(config: RunConfig, num_texts: int) -> RunConfig:
    """``config`` with ``epochs`` set: as given, or :func:`auto_epochs` for the training data."""
    t = config.train
    if t.epochs is not None:
        return config
    epochs = auto_epochs(num_texts, t.batch_size, t.grad_accum)
    logger.info(
        "training for up to %d epochs (about %d optimiser steps on %d texts)%s",
        epochs,
        AUTO_STEPS,
        num_texts,
        f"; early stopping after {t.patience} evaluations without improvement"
        if t.patience
        else "",
    )
    return config.override(epochs=epochs)


def _say_cut(cut: Cut, reading: Reading) -> None:
    """Warn once when the reading leaves part of the training texts unread: how many texts, how
    many tokens, and what reads more."""
    message = cut.message(reading)
    if message and distributed.state().is_main_process:
        logger.warning("training data: %s", message)


def _cap_max_length(config: RunConfig, encoder, tokenizer) -> RunConfig:
    """``config`` with ``max_length`` no longer than a pretrained encoder reads, saying so."""
    if is_scratch(config.model.encoder_name):
        return config  # built for max_length
    limit = position_limit(encoder, tokenizer)
    if limit is None or config.model.max_length <= limit:
        return config
    logger.warning(
        "max_length %d is more than encoder %s reads (%d tokens, special tokens included); "
        "texts are cut at %d tokens",
        config.model.max_length,
        config.model.encoder,
        limit,
        limit,
    )
    return config.override(max_length=limit)


def _starting_config(
    checkpoints: RunCheckpoints | None,
    config: RunConfig | None,
    overrides: dict[str, Any],
    resume: bool,
    init_from: str | Path | None = None,
    drop_labels: bool = False,
) -> tuple[RunConfig, dict[str, Any] | None, StartingRun | None]:
    """The config to train with, what the interrupted run recorded when resuming, and the run
    that training starts from (``init_from``; on resume, the one the interrupted run recorded)."""
    if not resume:
        start = None
        if init_from is not None:
            start = StartingRun.read(init_from, drop_labels=drop_labels)
            start.check_output(checkpoints.run if checkpoints is not None else None)
            config = resolve_config(init_config(start, config, overrides), {})
        else:
            config = resolve_config(config, overrides)
        if checkpoints is not None:
            check_output_dir(checkpoints.run)
            checkpoints.refuse_unfinished()
        return config, None, start
    if checkpoints is None:
        raise ConfigError("resume: needs output, the run directory to resume")
    saved = checkpoints.invocation()
    start = StartingRun.resumed(saved.get(INIT_FROM), init_from, checkpoints.run)
    return _resumed_config(checkpoints, saved, config, overrides), saved, start


def _resumed_config(
    checkpoints: RunCheckpoints,
    saved: dict[str, Any],
    given: RunConfig | None,
    overrides: dict[str, Any],
) -> RunConfig:
    """The interrupted run's config (``saved``: its invocation); ``given`` and ``overrides`` may
    only repeat it."""
    config = checkpoints.config(saved)
    asked = resolve_config(given or config, overrides)
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


def _loss(config: RunConfig, data: PreparedData):
    t = config.train
    return build_loss(
        t.loss,
        compute_pos_weight(data.train_targets, t.pos_weight, data.labels.names, data.train_known),
        label_smoothing=t.label_smoothing,
        focal_gamma=t.focal_gamma,
        asl_gamma_neg=t.asl_gamma_neg,
        asl_gamma_pos=t.asl_gamma_pos,
        asl_clip=t.asl_clip,
    )


# ---------------------------------------------------------------------------------- the members
def _train_member(
    setup: _Setup, member: int, encoder, callback: TrainCallback | None
) -> tuple[MultiLabelModel, TrainResult]:
    """Train ensemble member ``member`` (seed ``seed + member``), or take its result from a
    checkpoint when it had finished before an interruption; returns its best weights."""
    from accelerate.utils import set_seed  # heavy: accelerate

    config, checkpoints = setup.config, setup.checkpoints
    m, t = config.model, config.train
    member_config = replace(m, pooling=m.member_pooling(member))
    done = checkpoints.load_member(member) if checkpoints is not None else None
    if done is not None:
        logger.info("member %d of the ensemble had finished; not trained again", member)
        result = done
    else:
        if encoder is None:  # the first member gets the encoder built with the tokenizer
            set_seed(t.seed + member)
            encoder = (
                # Started from a run, the encoder's weights come with start.initialise.
                encoder_from_config(setup.encoder_config)
                if is_scratch(m.encoder_name) or setup.start is not None
                else load_pretrained(
                    m.encoder_name, trust_remote_weights=setup.trust_remote_weights
                )[0]
            )
        model = MultiLabelModel(encoder, len(setup.data.labels), member_config)
        if setup.start is not None:
            setup.start.initialise(model, member, setup.data.labels)
        tokenizer = setup.tokenizer
        result = fit(
            model,
            setup.loss_fn,
            setup.train_set,
            setup.val_set,
            replace(t, seed=t.seed + member),
            tokenizer=tokenizer,
            label_names=setup.data.labels.names,
            callback=callback,
            checkpoint=checkpoints.member_state(member) if checkpoints else None,
            resume=checkpoints is not None and checkpoints.has_state(member),
            tracking=Tracking(
                setup.name + (f"-member{member}" if m.ensemble > 1 else ""),
                flat_hparams(config.to_dict()),
            ),
            batch_tokens=m.batch_tokens,
        )
        if checkpoints is not None:
            checkpoints.save_member(member, result)
    # The best weights go into a fresh module: the trained one may have been changed in place by
    # the distributed wrapper (FSDP2 turns its parameters into shards).
    best = MultiLabelModel(
        encoder_from_config(setup.encoder_config), len(setup.data.labels), member_config
    )
    if result.state_dict:  # empty on the other processes of an FSDP job: they never save
        best.load_state_dict(result.state_dict)
    result.state_dict = {}
    return best, result


def _assemble(
    setup: _Setup, members: list[MultiLabelModel], results: list[TrainResult]
) -> TrainedRun:
    """One model (or a seed ensemble), its history, and thresholds tuned on validation."""
    t = setup.config.train
    model: MultiLabelModel | SeedEnsemble
    best: dict[str, Any]
    if len(members) == 1:
        model, history = members[0], results[0].history
        best = {"best": _best_record(results[0], t.metric)}
    else:
        model = SeedEnsemble(members)
        history = [{"member": i, **record} for i, r in enumerate(results) for record in r.history]
        best = {
            "members": [
                {"member": i, "seed": t.seed + i, **_best_record(r, t.metric)}
                for i, r in enumerate(results)
            ]
        }
    # Thresholds are tuned on the probabilities that prediction gives, not on those of the
    # evaluation during training: prediction runs another copy of the model (SDPA attention, the
    # last layer for [CLS] alone with cls/pooler pooling) that rounds differently in bf16.
    backend = TorchBackend(
        model, setup.tokenizer, setup.encoder_config, Reading.of(setup.config.model)
    )
    data = setup.data
    val_logits = backend.predict_logits(data.val.texts)
    calibration, val_probs, thresholds, metrics = finish_on_validation(
        data.labels.names, data.val_targets, val_logits, t, data.val_known
    )
    metrics["validation"]["by_length"] = by_length(
        setup.tokenizer,
        backend.reading,
        data.val.texts,
        data.val_targets,
        thresholds.apply(val_probs),
        data.val_known,
    )
    metrics.update(
        best,
        precision=results[0].precision,
        stopped_early=any(r.stopped_early for r in results),
    )
    return TrainedRun(
        model,  # the backend's, moved to its device and put in eval mode
        setup.tokenizer,
        setup.encoder_config,
        data.labels,
        thresholds,
        setup.config,
        metrics,
        history,
        ValidationPredictions(list(data.val.texts), data.val_targets, val_logits, data.val_known),
        calibration,
    )


def finish_on_validation(
    names: list[str],
    targets: np.ndarray,
    logits: np.ndarray,
    t: TrainConfig,
    known: np.ndarray | None = None,
) -> tuple[Calibration | None, np.ndarray, Thresholds, dict[str, Any]]:
    """What training does with the validation rows once the weights are fixed: the calibration
    (when ``t.calibrate``), the probabilities it gives, thresholds tuned on them, and the metrics.

    The calibration is a temperature and a bias per label fitted on these rows (Platt scaling);
    it keeps each label's order of texts, so it moves the thresholds, not the decisions on these
    rows. Labels with fewer than ``t.min_support`` positives here share one fit on their rows
    pooled (their thresholds fall back to the global one, tuned on the same calibrated scale).

    With partial labels, ``known`` (the labelled pairs) leaves the unknown pairs out of all three."""
    calibration = None
    if t.calibrate:
        calibration = Calibration.fit(
            targets, logits, "validation", "platt", max(1, t.min_support), known
        )
    probs = sigmoid(calibrated(logits, calibration))
    thresholds, metrics = finish_validation(names, targets, probs, known, **t.threshold_settings())
    if calibration is not None:
        metrics["calibration"] = {
            "data": calibration.fitted_on,
            **calibration_summary(targets, sigmoid(logits), probs, names, known),
        }
    return calibration, probs, thresholds, metrics


def compare_with_baseline(data: PreparedData, config: RunConfig) -> dict[str, Any]:
    """The linear baseline fitted on the same train and validation rows, thresholds tuned the same
    way: its validation scores (overall), and its seconds. A baseline that cannot be fitted is
    reported, not raised: the model it is compared with is trained already."""
    try:
        baseline = fit_baseline(data, config.override(encoder=BASELINE_KIND))
    except (ValueError, MemoryError) as err:
        logger.warning("the linear baseline could not be fitted for comparison: %s", err)
        return {"error": str(err)}
    scores = {k: v for k, v in baseline.metrics["validation"].items() if k != "per_label"}
    return {**scores, "seconds": baseline.metrics["baseline"]["seconds"]}


def _best_record(result: TrainResult, metric: str) -> dict[str, Any]:
    return {"step": result.best["step"], "epoch": result.best["epoch"], "metric": metric}
