"""``multihot search``: Optuna hyperparameter search; the best configuration as a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from multihot.cli.app import (
    TrainFile,
    TrustRemoteWeights,
    ValFile,
    app,
    err,
    friendly,
    load_config,
    out,
)
from multihot.cli.options import config_options, with_options
from multihot.cli.tables import fmt
from multihot.core.config import DataConfig, ModelConfig, RunConfig, TrainConfig

SEARCH_OPTIONS = [
    *config_options(ModelConfig, "Model (fixed in every trial: never searched)"),
    *config_options(TrainConfig, "Training (fixed in every trial: never searched)"),
    *config_options(DataConfig, "Data columns"),
]
Trials = Annotated[
    int,
    typer.Option(
        "--trials",
        min=0,
        help="The study's budget: run trials until it holds N finished (complete or pruned) "
        "ones. The same command again completes an interrupted study, a larger N extends "
        "it, and workers running the same command at once share the N. 0 shows an existing "
        "study (refused where there is none).",
    ),
]
SearchDir = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Search directory: the study's journal (study.log) and best-config.yaml "
        "(default: search/<train name>); new, empty, or an earlier search's.",
    ),
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        metavar="URL",
        help="Where the study lives: a journal file's path (new, or an earlier search's: "
        "any other file is refused), or an Optuna storage URL "
        "(postgresql://..., mysql://..., redis://...; sqlite:///study.db for one worker "
        "only). Default: OUT_DIR/study.log, shared safely by workers on this machine.",
    ),
]
StudyName = Annotated[
    str | None,
    typer.Option("--study-name", help="The study in the storage (default: the data's name)."),
]
Space = Annotated[
    Path | None,
    typer.Option(
        "--space",
        help="YAML or JSON: config fields to search, each {low: .., high: .., log: true}, "
        "{choices: [...]} or a fixed value. Default: learning rate, epochs, batch size, "
        "dropout, pooling, head, loss and its parameters.",
    ),
]
Folds = Annotated[
    int | None,
    typer.Option(
        "--folds",
        min=2,
        help="Score each trial by the mean over K stratified folds of TRAIN_FILE instead of "
        "one validation set (K times the training; not with --val).",
    ),
]
StartingConfig = Annotated[
    Path | None,
    typer.Option(
        "--config", help="YAML or JSON file of starting settings (the space replaces them)."
    ),
]
SamplerSeed = Annotated[
    int | None,
    typer.Option("--sampler-seed", help="Seed the sampler (a repeatable single-worker search)."),
]


@app.command()
@friendly
@with_options(SEARCH_OPTIONS)
def search(
    train_file: TrainFile,
    trials: Trials,
    val: ValFile = None,
    output: SearchDir = None,
    storage: Storage = None,
    study_name: StudyName = None,
    space: Space = None,
    folds: Folds = None,
    config: StartingConfig = None,
    sampler_seed: SamplerSeed = None,
    trust_remote_weights: TrustRemoteWeights = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Search hyperparameters with Optuna; the best configuration for 'multihot train --config'.

    Each trial trains with values from the space and is scored by --metric on validation;
    trials falling behind the others are pruned early. The study survives a crash: run the
    same command again to continue it, or in several shells at once to search in parallel.
    The model, training and data flags are fixed in every trial, never searched.
    """
    from multihot.cli.progress import NestedProgress
    from multihot.tuning.search import import_optuna
    from multihot.tuning.search import search as run_search

    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the bars and lines below say it all
    output = output or Path("search") / train_file.stem
    base = load_config(config)
    metric = (base or RunConfig()).override(**flags).train.metric
    with NestedProgress(err, total=trials, unit="trials", metric=metric) as progress:
        result = run_search(
            train_file,
            trials=trials,
            val=val,
            storage=storage,
            study_name=study_name,
            space=space,
            folds=folds,
            output=output,
            config=base,
            sampler_seed=sampler_seed,
            callback=progress,
            trial_callback=_trial_printer(progress, metric),
            trust_remote_weights=trust_remote_weights,
            **flags,
        )
    print_search_report(result)
    assert result.config_file is not None  # written whenever an output is given, as here
    _print_next_step(result.config_file, train_file, val)


def _trial_printer(progress, metric: str):
    """A ``trial_callback`` that moves the bar and prints one line per finished trial."""

    def trial_done(record, finished: int) -> None:
        progress.on_train_end()  # a trial that failed mid-training left its bar
        value = "" if record.value is None else f" {metric} {fmt(record.value)}"
        why = f": {record.error}" if record.error else ""
        progress.progress.update(progress.outer, completed=finished)
        err.print(
            f"trial {record.number} {record.state}{value}{why}  {_params(record.params)}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )

    return trial_done


def _print_next_step(config_file: Path, train_file: Path, val: Path | None) -> None:
    """Where the best configuration is, and the command that trains with it."""
    out.print(f"best config: {config_file}", soft_wrap=True)
    with_val = f" --val {val}" if val is not None else ""
    out.print(
        f"train it: multihot train {train_file}{with_val} --config {config_file}",
        soft_wrap=True,
    )


def _params(params: dict[str, Any]) -> str:
    return "  ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def print_search_report(result) -> None:
    """Every trial of the study (number, state, value, its values), the best marked."""
    table = Table(
        title=f"study {result.study_name!r} ({result.storage}): {result.metric}, "
        f"{result.direction}",
        title_justify="left",
    )
    for col in ("", "trial", "state", result.metric, "seconds", "values"):
        table.add_column(col, justify="left" if col in ("", "state", "values") else "right")
    for record in result.trials:
        best = record.number == result.best_trial
        table.add_row(
            "best" if best else "",
            str(record.number),
            record.state,
            fmt(record.value),
            fmt(record.seconds, 0),
            "  ".join(filter(None, [_params(record.params), record.error and f"({record.error})"])),
            style="bold" if best else None,
        )
    out.print(table)
    counts = result.n_trials
    out.print(
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed"
        + (f", {counts['running']} running" if counts["running"] else "")
        + f"; best: trial {result.best_trial}, {result.metric} {fmt(result.best_value)}"
        f"  {_params(result.best_params)}"
    )
