"""Hyperparameter search with Optuna: trials sample a :class:`~multihot.tuning.space.SearchSpace`,
train, and are scored on validation (a hold-out, or the mean over k folds); bad ones are pruned
from their per-evaluation scores.

The study lives in a storage: by default a journal file (``DIR/study.log``), which Optuna
recommends for several processes on one machine (each append is made under a file lock; SQLite
is for one process only). Any Optuna storage URL works too (``sqlite:///x.db``,
``postgresql://...``, ``redis://...``). So a study survives a crash, and:

- **the budget is the study's**: ``trials=N`` runs trials until the study holds N finished
  (complete or pruned) trials. Running the same search again after a crash completes the budget;
  a larger N extends the study; several workers (the same command in several processes) share
  it, each stopping when the study has N. Failed trials do not count: they are tried again.
  Workers starting a trial at the same moment may together finish one or two more than N.
- a continued study must be the same search: the data's fingerprint, the fixed settings, the
  metric and the folds are recorded in the study, and a run with other ones is refused.

Optuna is an optional dependency (the ``tune`` extra), imported where it is used.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import re
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multihot import __version__
from multihot.artifacts.searchdir import (
    BEST_CONFIG,
    STUDY_LOG,
    check_journal,
    check_search_dir,
    write_best_config,
)
from multihot.classifier import Classifier
from multihot.core.config import RunConfig
from multihot.core.errors import ConfigError, MultihotError
from multihot.data import duplicates
from multihot.data.prepare import DataLike, prepare_data, read_data
from multihot.data.readers import Dataset
from multihot.modeling.encoders import with_default_encoder
from multihot.scoring.metrics import metric_is_better
from multihot.training.session import TrainCallback
from multihot.tuning.cv import cross_validate
from multihot.tuning.space import Choice, Fixed, SearchSpace, default_space

logger = logging.getLogger(__name__)

INSTALL_HINT = "hyperparameter search needs optuna: pip install 'multihot[tune]'"
PRUNER_STARTUP_TRIALS = 3
"""Trials that finish before the median pruner stops any: it needs others to compare with."""
PRUNER_WARMUP_STEPS = 1
"""Evaluations (or folds) of a trial that are never pruned: the first scores are noise."""
MAX_FAILURES_IN_A_ROW = 3
"""A worker stops (with the last error) after this many of its trials failed one after another:
a setting that fails every trial should be one clear error, not an endless loop."""
STUDY_ATTR = "multihot"
"""The study's user attribute that says which search it is (data, fixed settings, metric)."""


@dataclass
class TrialRecord:
    """One trial of the study, for the summary."""

    number: int
    state: str
    """complete, pruned, failed, running or waiting."""
    value: float | None
    """The validation metric (the mean over folds with ``folds``); None unless complete."""
    params: dict[str, Any]
    """The config values the trial trained with, as the space gave them."""
    seconds: float | None
    error: str | None = None
    """Why a failed trial failed."""


@dataclass
class SearchResult:
    """What :func:`search` ends with: the best trial and the study as it stands."""

    best_params: dict[str, Any]
    """The config values of the best trial, as the space gave them."""
    best_value: float
    best_trial: int
    best_config: RunConfig
    """The fixed settings with the best trial's values: what ``best-config.yaml`` holds."""
    metric: str
    direction: str
    """maximize or minimize (for ``hamming_loss``)."""
    study_name: str
    storage: str
    """Where the study is: a journal file, a URL (password hidden), or ``memory``."""
    n_trials: dict[str, int]
    """How many trials of the study are complete, pruned, failed, running."""
    trials: list[TrialRecord]
    config_file: Path | None = None
    """The best configuration written as a config file (with ``output``)."""


def search(
    data: DataLike,
    *,
    trials: int,
    val: DataLike | None = None,
    storage: str | Path | None = None,
    study_name: str | None = None,
    space: SearchSpace | dict[str, Any] | str | Path | None = None,
    folds: int | None = None,
    output: str | Path | None = None,
    config: RunConfig | None = None,
    sampler_seed: int | None = None,
    callback: TrainCallback | None = None,
    trial_callback: Callable[[TrialRecord, int], None] | None = None,
    trust_remote_weights: bool = False,
    **overrides: Any,
) -> SearchResult:
    """Search hyperparameters until the study holds ``trials`` finished trials; the best one.

    Each trial samples ``space``, trains with :meth:`multihot.Classifier.train` (nothing is
    saved) and is scored by ``config.train.metric`` on ``val`` (or the stratified hold-out), or,
    with ``folds``, by its mean over :func:`multihot.tuning.cv.cross_validate`'s folds of
    ``data``. The median pruner stops a trial whose score after an evaluation (after a fold, with
    ``folds``) is worse than the median of the other trials' at the same point.

    Args:
        data: the training data (a file or a :class:`~multihot.data.readers.Dataset`).
        trials: run until the study has this many complete or pruned trials (its budget, shared
            by every worker and every invocation; 0 reports on the study as it stands).
        val: validation data; without it the hold-out of ``val_fraction`` (not with ``folds``).
        storage: an Optuna storage URL, or a journal file's path; default ``output/study.log``,
            or a study in memory without ``output``.
        study_name: default the data file's name.
        space: a :class:`SearchSpace`, its dict or a space file (YAML or JSON); default
            :func:`~multihot.tuning.space.default_space` less the fields in ``overrides``.
        folds: score each trial by k-fold cross-validation instead of one validation set.
        output: a directory for the study's journal and ``best-config.yaml``.
        config: the starting settings; the space's values replace them in each trial.
        sampler_seed: seeds the TPE sampler (plus the number of trials already in the study, so
            a continued study or a second worker does not repeat the first trials).
        callback: receives every trial's training progress.
        trial_callback: called with each trial this process finishes and the number of trials
            of the study that count toward the budget.
        trust_remote_weights: as for :meth:`multihot.Classifier.train` (never recorded).
        overrides: flat config keys fixed for every trial (never searched).

    Returns:
        The best trial over the whole study, with its configuration.

    Raises:
        MultihotError: optuna is not installed, the study was started by another search, the
            space or settings are invalid, or trials keep failing.

    Example:
        >>> result = search("train.jsonl", trials=20, output="search/emotions")  # doctest: +SKIP
        >>> result.best_value, result.config_file  # doctest: +SKIP
        (0.5812, PosixPath('search/emotions/best-config.yaml'))
    """
    optuna = import_optuna()
    output = _check_arguments(trials, val, storage, folds, output)
    fixed = {k.replace("-", "_"): v for k, v in overrides.items() if v is not None}
    base = with_default_encoder((config or RunConfig()).override(**fixed))
    space = _resolve_space(space, base, set(fixed))
    metric = base.train.metric
    direction = direction_of(metric)
    train_data = read_data(data, base)
    val_data = read_data(val, base) if val is not None else None
    identity = _identity(train_data, val_data, base, folds)
    if output is not None and trials > 0:
        output.mkdir(parents=True, exist_ok=True)
    backend, described = open_storage(storage, output)
    name = study_name or (Path(data).stem if not isinstance(data, Dataset) else "multihot")
    study = _open_study(
        optuna, backend, described, name, direction, sampler_seed, identity, create=trials > 0
    )
    trial_config = base if "compare_baseline" in fixed else base.override(compare_baseline=False)
    objective = _Objective(
        space, trial_config, train_data, val_data, folds, callback, trust_remote_weights
    )
    _run_trials(optuna, study, objective, trials, described, trial_callback)
    return _result(optuna, study, base, metric, direction, described, output, folds)


def _check_arguments(
    trials: int,
    val: DataLike | None,
    storage: str | Path | None,
    folds: int | None,
    output: str | Path | None,
) -> Path | None:
    """Refuse folds that cannot be, a search directory or storage that is not a search's, and a
    budget that cannot be, before any work; the search directory as a path."""
    if folds is not None and folds < 2:
        raise ConfigError(f"folds: expected at least 2, got {folds}")
    if folds is not None and val is not None:
        raise ConfigError("folds: the folds are cut from the training data; give no val with them")
    # Before any work, and before anything is created: nothing of the user's is written over.
    output = check_search_dir(output, create=False) if output is not None else None
    _check_storage(trials, storage, output)
    return output


def _identity(
    train: Dataset, val: Dataset | None, base: RunConfig, folds: int | None
) -> dict[str, Any]:
    """What makes a study this search (recorded in it; a continued study must match): the data's
    fingerprint, how trials are validated, the metric and the fixed settings."""
    return {
        "data_sha256": prepare_data(train, val, base).fingerprint(),
        "validation": "folds" if folds else ("val" if val is not None else "hold-out"),
        "folds": folds,
        "metric": base.train.metric,
        "config": base.to_dict(),
    }


def _run_trials(
    optuna,
    study,
    objective: _Objective,
    trials: int,
    shown: str,
    trial_callback: Callable[[TrialRecord, int], None] | None,
) -> None:
    """Run trials until the study holds ``trials`` counted ones (shared with any other worker);
    raise after :data:`MAX_FAILURES_IN_A_ROW` of this worker's trials failed one after another."""
    _fail_abandoned(optuna, study)
    done = _counted(optuna, study)
    logger.info(
        "study %r in %s: %d of %d trials finished%s",
        study.study_name,
        shown,
        done,
        trials,
        "" if done >= trials else f"; running trials until the study has {trials}",
    )
    failures = 0
    while _counted(optuna, study) < trials:
        with duplicates.reported():  # said once above, over all the data, not in every trial
            frozen = _run_trial(optuna, study, objective)
        record = _record(optuna, frozen)
        failures = failures + 1 if record.state == "failed" else 0
        if trial_callback is not None:
            trial_callback(record, _counted(optuna, study))
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise MultihotError(
                f"{failures} trials in a row failed; the last, trial {record.number}: "
                f"{record.error}"
            )


def import_optuna():
    """The optuna module, or a :class:`MultihotError` saying how to install it."""
    try:
        import optuna  # optional: optuna (the search extra)
    except ImportError:
        raise MultihotError(INSTALL_HINT) from None
    return optuna


def direction_of(metric: str) -> str:
    """``minimize`` for a lower-is-better metric (``hamming_loss``), else ``maximize``.

    Example:
        >>> direction_of("macro_f1"), direction_of("hamming_loss")
        ('maximize', 'minimize')
    """
    return "minimize" if metric_is_better(metric, 0.0, 1.0) else "maximize"


# ------------------------------------------------------------------------------------- storage
def journal_path(storage: str | Path | None, output: Path | None) -> Path | None:
    """The journal file a storage names (the default ``output/study.log`` without one); None for
    a URL or a study in memory."""
    if storage is None:
        return output / STUDY_LOG if output is not None else None
    return None if "://" in str(storage) else Path(storage)


def _check_storage(trials: int, storage: str | Path | None, output: Path | None) -> None:
    """Refuse a budget below 0, a storage file that is not a journal, and ``trials=0`` (which
    shows a study) where there is no study to show, before anything is created."""
    if trials < 0:
        raise ConfigError(f"trials: expected at least 0, got {trials}")
    journal = journal_path(storage, output)
    if journal is not None:
        check_journal(journal)
    if trials == 0 and (storage is None and output is None):
        raise ConfigError("trials: 0 shows a stored study, and none is given; give at least 1")
    if trials == 0 and journal is not None and not journal.exists():
        raise ConfigError(
            f"trials: 0 shows an existing study, and there is none: {journal} does not exist; "
            "give at least 1 to start one"
        )


def open_storage(storage: str | Path | None, output: Path | None) -> tuple[Any, str]:
    """``(Optuna storage, how to show it)`` for a URL, a journal file's path, or the default.

    A path (anything without ``://``) is a journal file: the storage Optuna recommends for
    several processes on one machine. ``redis://`` is a journal in Redis; any other URL is a
    database (SQLAlchemy's URL form; SQLite for one process only).
    """
    optuna = import_optuna()
    if storage is None:
        if output is None:
            return optuna.storages.InMemoryStorage(), "memory"
        storage = output / STUDY_LOG
    journal = journal_path(storage, output)
    if journal is not None:  # Optuna appends to any file: a user's text would get a record
        check_journal(journal)
    text = str(storage)
    shown = re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", text)
    try:
        if text.startswith(("redis://", "rediss://", "unix://")):
            from optuna.storages.journal import JournalRedisBackend  # optional: optuna

            return optuna.storages.JournalStorage(JournalRedisBackend(text)), shown
        if "://" in text:
            return optuna.storages.RDBStorage(text), shown
        # optional: optuna
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = Path(text)
        if not path.parent.is_dir():
            raise ConfigError(f"storage: {path.parent} is not a directory")
        # The default lock is a symlink, which Windows allows only with a privilege.
        lock = JournalFileOpenLock(text) if os.name == "nt" else None
        return optuna.storages.JournalStorage(JournalFileBackend(text, lock_obj=lock)), shown
    except MultihotError:
        raise
    except Exception as err:  # no driver, a malformed URL, no server, no access
        raise ConfigError(f"storage {shown}: cannot be opened: {err}") from None


def _open_study(
    optuna, storage, shown: str, name: str, direction: str, seed, identity, create: bool = True
):
    """Create the study (``create``) or load it, refusing one that another search started."""
    if not create and name not in optuna.get_all_study_names(storage):
        raise ConfigError(
            f"study {name!r} in {shown}: not found; trials 0 shows an existing study: give at "
            "least 1 to start one, or the --study-name of one there"
        )
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_STEPS
    )
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=direction,
            sampler=_sampler(optuna, None),
            pruner=pruner,
            load_if_exists=True,
        )
    except ValueError as err:
        raise ConfigError(f"study {name!r} in {shown}: {err}") from None
    recorded = study.user_attrs.get(STUDY_ATTR)
    if recorded is None:
        if study.trials:
            raise ConfigError(
                f"study {name!r} in {shown} was not made by multihot search; give another "
                "--study-name"
            )
        study.set_user_attr(STUDY_ATTR, {**identity, "multihot": __version__})
    else:
        _check_same_search(recorded, identity, name, shown)
    if seed is not None:
        # Offset by the trials there are: a continued study, or a second worker started later,
        # does not draw the same first trials again.
        study.sampler = _sampler(optuna, seed + len(study.trials))
    return study


def _sampler(optuna, seed: int | None):
    """TPE over the parameters jointly (``group`` splits a conditional space into the parts that
    occur together); ``constant_liar`` keeps parallel workers from proposing the same point."""
    with warnings.catch_warnings():  # multivariate, group and constant_liar are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, constant_liar=True, seed=seed
        )


def _check_same_search(recorded: dict[str, Any], now: dict[str, Any], name: str, shown: str):
    """Refuse to continue a study with other data, validation, metric or fixed settings."""
    differ = []
    if recorded.get("data_sha256") != now["data_sha256"]:
        differ.append("the data (training or validation rows) differ")
    for key in ("validation", "folds", "metric"):
        if recorded.get(key) != now[key]:
            differ.append(f"{key} {now[key]!r} (the study has {recorded.get(key)!r})")
    then = _flat(recorded.get("config", {}))
    for key, value in _flat(now["config"]).items():
        if then.get(key) != value:
            differ.append(f"{key}={value!r} (the study has {then.get(key)!r})")
    if differ:
        raise ConfigError(
            f"study {name!r} in {shown} was started by another search: {'; '.join(differ)}; "
            "continue it with the same data and settings, or give another --study-name"
        )


# --------------------------------------------------------------------------------------- trials
class PruningCallback:
    """A :class:`~multihot.training.session.TrainCallback` that reports every evaluation's metric
    to an Optuna trial and stops training (``optuna.TrialPruned``) when the pruner says so.

    The exception leaves :meth:`multihot.Classifier.train` as it came; a trial trains with no
    output directory, so nothing is left behind. ``inner`` (a progress bar) gets every call, and
    its ``on_train_end`` before the exception, so no bar is left running.
    """

    def __init__(self, trial, metric: str, inner: TrainCallback | None = None):
        self.trial, self.metric, self.inner = trial, metric, inner
        self.evaluations = 0

    def on_train_start(self, total_steps: int, steps_per_epoch: int) -> None:
        if self.inner is not None:
            self.inner.on_train_start(total_steps, steps_per_epoch)

    def on_step(self, step: int, loss: float, samples_per_second: float) -> None:
        if self.inner is not None:
            self.inner.on_step(step, loss, samples_per_second)

    def on_evaluate(self, record: dict[str, Any]) -> None:
        if self.inner is not None:
            self.inner.on_evaluate(record)
        # The evaluation's index, not the optimiser step: trials with other batch sizes take
        # other numbers of steps, and the pruner compares trials at the same step.
        step, self.evaluations = self.evaluations, self.evaluations + 1
        value = record.get(self.metric)
        if value is None:
            return
        self.trial.report(value, step)
        if self.trial.should_prune():
            if self.inner is not None:
                self.inner.on_train_end()
            raise import_optuna().TrialPruned(
                f"{self.metric} {value:.4f} at evaluation {step + 1}, below the other trials'"
            )

    def on_train_end(self) -> None:
        if self.inner is not None:
            self.inner.on_train_end()


class _Objective:
    """One trial: sample, train (or cross-validate), return the validation metric."""

    def __init__(
        self,
        space: SearchSpace,
        base: RunConfig,
        train: Dataset,
        val: Dataset | None,
        folds: int | None,
        callback: TrainCallback | None,
        trust_remote_weights: bool,
    ):
        self.space, self.base, self.train, self.val = space, base, train, val
        self.folds, self.callback = folds, callback
        self.trust_remote_weights = trust_remote_weights
        self.metric = base.train.metric

    def __call__(self, trial) -> float:
        trial.set_user_attr("worker", worker_id())
        values = self.space.sample(trial, self.base)
        trial.set_user_attr("overrides", values)
        config = self.base.override(**values)
        value = self._cross_validate(trial, config) if self.folds else self._train(trial, config)
        if value is None or not math.isfinite(value):
            raise MultihotError(f"{self.metric} is undefined on the validation data")
        return float(value)

    def _train(self, trial, config: RunConfig) -> float | None:
        callback = PruningCallback(trial, self.metric, self.callback)
        clf = Classifier.train(
            self.train,
            self.val,
            config=config,
            callback=callback,
            trust_remote_weights=self.trust_remote_weights,
        )
        return clf.metrics["validation"][self.metric]

    def _cross_validate(self, trial, config: RunConfig) -> float | None:
        scores: list[float] = []

        def fold_done(index: int, fold) -> None:
            value = fold.metrics.get(self.metric)
            if value is None:
                return
            scores.append(value)
            # The mean so far: the pruner compares it with the other trials' after as many folds.
            trial.report(sum(scores) / len(scores), index)
            if trial.should_prune():
                raise import_optuna().TrialPruned(
                    f"{self.metric} {scores[-1]:.4f} on fold {index + 1}, below the other trials'"
                )

        result = cross_validate(
            self.train,
            folds=self.folds,
            config=config,
            callback=self.callback,
            fold_callback=fold_done,
            trust_remote_weights=self.trust_remote_weights,
        )
        return result.mean(self.metric)


def _run_trial(optuna, study, objective: _Objective):
    """Ask for a trial, run it, tell the study how it ended; the finished trial (frozen).

    A user error (a combination of values the config refuses, a metric undefined on the data) or
    running out of GPU memory fails the trial and the search goes on; anything else fails it and
    is raised (an interrupt, a bug).
    """
    import torch  # heavy: torch (for its out-of-memory error only)

    trial = study.ask()
    try:
        value = objective(trial)
    except optuna.TrialPruned as err:
        logger.info("trial %d pruned: %s", trial.number, err)
        return study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except (MultihotError, torch.cuda.OutOfMemoryError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        trial.set_user_attr("error", message)
        logger.warning("trial %d failed: %s", trial.number, message)
        return study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except BaseException:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    finally:
        gc.collect()  # the trial's model and optimizer, before the next one is built
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return study.tell(trial, value)


def worker_id() -> str:
    """``host:pid`` of this process, recorded on each of its trials."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _fail_abandoned(optuna, study) -> None:
    """Mark failed the trials left running by a worker of this machine that no longer exists (a
    killed search); a journal file has no heartbeat to tell Optuna so."""
    if os.name != "posix":  # os.kill(pid, 0) only asks on POSIX; on Windows it terminates
        return
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            logger.info("trial %d: its worker (pid %s) is gone; marked failed", trial.number, pid)
        except (ValueError, RuntimeError):  # another worker marked it first
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _counted(optuna, study) -> int:
    """The trials that count toward the budget: complete or pruned."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


# --------------------------------------------------------------------------------------- result
STATES = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def _record(optuna, trial) -> TrialRecord:
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialRecord(
        number=trial.number,
        state=STATES.get(trial.state.name, trial.state.name.lower()),
        value=trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
        params=dict(trial.user_attrs.get("overrides", trial.params)),
        seconds=seconds,
        error=trial.user_attrs.get("error"),
    )


def _result(
    optuna,
    study,
    base: RunConfig,
    metric: str,
    direction: str,
    shown: str,
    output: Path | None,
    folds: int | None,
) -> SearchResult:
    records = [_record(optuna, t) for t in study.get_trials(deepcopy=False)]
    counts = {
        state: sum(r.state == state for r in records)
        for state in ("complete", "pruned", "failed", "running")
    }
    if not counts["complete"]:
        raise MultihotError(
            f"study {study.study_name!r} in {shown} has no complete trial yet "
            f"({counts['pruned']} pruned, {counts['failed']} failed); run more trials"
        )
    best = study.best_trial
    params = dict(best.user_attrs.get("overrides", best.params))
    best_config = base.override(**params)
    result = SearchResult(
        best_params=params,
        best_value=float(best.value),
        best_trial=best.number,
        best_config=best_config,
        metric=metric,
        direction=direction,
        study_name=study.study_name,
        storage=shown,
        n_trials=counts,
        trials=records,
    )
    if output is not None:
        scored = f"mean over {folds} folds" if folds else "on validation"
        comment = (
            f"multihot search: the best of {counts['complete']} complete trials of study "
            f"{study.study_name!r} ({shown})\n"
            f"trial {best.number}: {metric} {best.value:.4f} ({scored}), with "
            + ", ".join(f"{k}={v!r}" for k, v in params.items())
            + "\n"
            f"train with it: multihot train DATA --config {output / BEST_CONFIG}"
        )
        result.config_file = write_best_config(output / BEST_CONFIG, best_config, comment)
    return result


def _resolve_space(space, base: RunConfig, fixed: set[str]) -> SearchSpace:
    """The space to search: given (checked against ``base``) or the default less ``fixed``."""
    if space is None:
        resolved = default_space(base).without(fixed)
    else:
        if isinstance(space, SearchSpace):
            resolved, source = space, "space"
        elif isinstance(space, dict):
            resolved, source = SearchSpace.from_dict(space, base), "space"
        else:
            resolved, source = SearchSpace.from_file(space, base), str(space)
        both = sorted(set(resolved.params) & fixed)
        if both:
            raise ConfigError(
                f"{source}: {', '.join(both)}: fixed (given as options) and searched; drop one"
            )
    if not any(_varies(p) for p in resolved.params.values()):
        raise ConfigError("the search space has nothing to search: every field in it is fixed")
    return resolved


def _varies(param) -> bool:
    if isinstance(param, Fixed):
        return False
    return not (isinstance(param, Choice) and len(param.choices) == 1)


def _flat(sections: dict[str, Any]) -> dict[str, Any]:
    return {k: v for section in sections.values() for k, v in section.items()}
