"""``multihot train``: train a model and tune its thresholds, or resume an interrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import (
    ConfigFile,
    Processes,
    TrustRemoteWeights,
    ValFile,
    app,
    err,
    friendly,
    load_config,
    out,
    relaunch,
)
from multihot.cli.options import config_options, with_options
from multihot.cli.tables import print_train_report
from multihot.core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from multihot.core.errors import ConfigError, MultihotError

STEM_REFUSAL = (
    "stem: only the linear baseline stems words (multihot baseline --stem); a transformer's "
    "tokenizer splits real words into word pieces it learned, and stems are not words it has seen"
)
"""Why ``multihot train --stem`` is refused (the flag exists to say so)."""

InitFrom = Annotated[
    Path | None,
    typer.Option(
        "--init-from",
        metavar="RUN",
        help="Start from the finished run RUN's encoder, pooling and head instead of the "
        "pretrained encoder: a new run on TRAIN_FILE with RUN's tokenizer and model settings "
        "(model flags that differ from RUN's are refused) and its own training settings. The "
        "labels are TRAIN_FILE's: RUN's keep their weights, new ones get fresh ones.",
    ),
]
DropLabels = Annotated[
    bool,
    typer.Option(
        "--drop-labels",
        help="With --init-from: leave behind RUN's labels that TRAIN_FILE lacks (refused otherwise).",
    ),
]

TRAIN_OPTIONS = [
    *config_options(ModelConfig, "Model"),
    *config_options(TrainConfig, "Training"),
    *config_options(DataConfig, "Data columns"),
]


@app.command()
@friendly
@with_options(TRAIN_OPTIONS)
def train(
    ctx: typer.Context,
    train_file: Annotated[
        Path | None,
        typer.Argument(help="Training data (.csv .tsv .jsonl .json .parquet); not with --resume."),
    ] = None,
    val: ValFile = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN",
            help="Continue the interrupted run in RUN from its last checkpoint, with its own data "
            "and settings (give no other flags but --trust-remote-weights).",
        ),
    ] = None,
    init_from: InitFrom = None,
    drop_labels: DropLabels = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run directory (default: runs/<train name>)."),
    ] = None,
    config: ConfigFile = None,
    trust_remote_weights: TrustRemoteWeights = False,
    processes: Processes = 1,
    stem: Annotated[
        str | None,
        typer.Option(
            metavar="LANGUAGE",
            help="Refused: only the linear baseline stems words (multihot baseline --stem).",
            rich_help_panel="Model",
        ),
    ] = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Train a model and tune its thresholds; leaves a run directory.

    The run directory keeps a checkpoint at every evaluation while training: after a kill,
    'multihot train --resume RUN' continues where it stopped. 'multihot train MORE --init-from
    RUN -o NEW' trains a new run on more (or relabelled) data, starting from RUN's model.
    """
    from multihot.core import distributed

    if stem is not None:
        raise ConfigError(STEM_REFUSAL)
    if drop_labels and init_from is None:
        raise ConfigError("--drop-labels: only with --init-from RUN")
    if resume is not None:
        given = {**flags, "init_from": init_from, "drop_labels": drop_labels or None}
        _refuse_settings_with_resume(resume, train_file, val, output, config, given)
        output = resume
    elif train_file is None:
        raise MultihotError("missing TRAIN_FILE (or --resume RUN to continue an interrupted run)")
    else:
        from multihot.artifacts.rundir import check_output_dir

        output = output or Path("runs") / train_file.stem
        check_output_dir(output)  # before relaunching: one error, not one per process
    if processes > 1 and not distributed.is_launched():
        relaunch(ctx, processes)
    if resume is not None:
        clf = _resume(resume, trust_remote_weights)
    else:
        assert train_file is not None  # without --resume, a missing TRAIN_FILE raised above
        clf = _train(
            train_file, val, output, config, flags, trust_remote_weights, init_from, drop_labels
        )
    if not distributed.state().is_main_process:
        return  # the main process reports
    print_train_report(clf)
    curves = _plot_training_curves(clf.history, output)
    out.print(f"saved {output}" + (f" (training curves: {curves})" if curves else ""))


def _plot_training_curves(history: list, run: Path) -> Path | None:
    """RUN/training-curves.png when matplotlib (the report extra) is installed; None otherwise."""
    from multihot.artifacts.rundir import TRAINING_CURVES

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from multihot.report.plots import save_training_curves

    path = Path(run) / TRAINING_CURVES
    save_training_curves(history, path)
    return path


def _refuse_settings_with_resume(resume: Path, train_file, val, output, config, flags) -> None:
    given = {"TRAIN_FILE": train_file, "--val": val, "--output": output, "--config": config}
    given.update({f"--{k.replace('_', '-')}": v for k, v in flags.items()})
    conflicting = [name for name, value in given.items() if value is not None]
    if conflicting:
        raise MultihotError(
            f"--resume continues {resume} with the data and settings it started with; "
            f"drop {', '.join(conflicting)}"
        )


def _resume(run: Path, trust_remote_weights: bool):
    from multihot.classifier import Classifier
    from multihot.cli.progress import RichProgress
    from multihot.training.checkpoint import RunCheckpoints

    callback = RichProgress(err, metric=RunCheckpoints(run).config().train.metric)
    return Classifier.resume(run, callback=callback, trust_remote_weights=trust_remote_weights)


def _train(
    train_file: Path,
    val,
    output: Path,
    config,
    flags,
    trust_remote_weights: bool,
    init_from: Path | None = None,
    drop_labels: bool = False,
):
    """Train with the settings of ``config`` (a file), overridden by the flags given (passed
    apart, so that --init-from knows which model settings were asked for)."""
    from multihot.classifier import Classifier
    from multihot.cli.progress import RichProgress

    file_config = load_config(config)
    given = {name: value for name, value in flags.items() if value is not None}
    metric = (file_config or RunConfig()).override(**given).train.metric
    return Classifier.train(
        train_file,
        val,
        config=file_config,
        output=output,
        callback=RichProgress(err, metric=metric),
        trust_remote_weights=trust_remote_weights,
        init_from=init_from,
        drop_labels=drop_labels,
        **given,
    )
