"""``multihot tune-thresholds``: re-tune a run's thresholds on other labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import (
    DATA_OPTIONS,
    BatchSize,
    MinSupport,
    Precision,
    Top1Fallback,
    app,
    friendly,
    load_classifier,
    out,
)
from multihot.cli.options import with_options
from multihot.cli.tables import print_calibration, print_report, print_threshold_changes

RunDir = Annotated[Path, typer.Argument(help="Run directory.")]
TuningData = Annotated[Path, typer.Argument(help="Labelled data to tune on (not the test set).")]
Strategy = Annotated[
    str | None, typer.Option(help="fixed, global or per-label (default: the run's).")
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Show the report and what would change; save nothing."),
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Tune even when no label has --min-support positives in DATA."),
]
Calibrate = Annotated[
    bool,
    typer.Option(
        "--calibrate",
        help="First fit a temperature and a bias per label on DATA (saved in "
        "RUN/calibration.json and applied to every probability), then tune the thresholds on "
        "the calibrated probabilities.",
    ),
]
CalibrationMethod = Annotated[
    str,
    typer.Option(
        "--calibration-method",
        help="platt (a temperature and a bias per label) or temperature (the temperature alone).",
    ),
]


@app.command("tune-thresholds")
@friendly
@with_options(DATA_OPTIONS)
def tune_thresholds(
    run: RunDir,
    data: TuningData,
    strategy: Strategy = None,
    min_support: MinSupport = None,
    top1_fallback: Top1Fallback = None,
    dry_run: DryRun = False,
    force: Force = False,
    calibrate: Calibrate = False,
    calibration_method: CalibrationMethod = "platt",
    batch_size: BatchSize = 64,
    precision: Precision = "auto",
    *,
    flags: dict[str, Any],
) -> None:
    """Re-tune the run's thresholds on other labelled data and save them into the run.

    The thresholds replaced are kept in RUN/thresholds.previous.json.
    """
    clf = load_classifier(run, flags)
    before = clf.thresholds.values.copy()
    tuning = dict(
        strategy=strategy,
        min_support=min_support,
        top1_fallback=top1_fallback,
        batch_size=batch_size,
        precision=precision,
        force=force,
    )
    if calibrate:
        metrics = clf.calibrate(data, method=calibration_method, **tuning)
    else:
        metrics = clf.tune_thresholds(data, **tuning)
    print_report(metrics, title=f"{data} (tuned here)")
    if calibrate:
        print_calibration(metrics["calibration"])
    print_threshold_changes(clf.label_names, before, clf.thresholds.values)
    _save(clf, run, calibrate, dry_run)


def _save(clf, run: Path, calibrate: bool, dry_run: bool) -> None:
    """Save the thresholds (with ``calibrate``, the calibration and thresholds) into the run and
    say where the previous ones are; with ``dry_run``, say what was left unchanged."""
    from multihot.artifacts.rundir import CALIBRATION, PREVIOUS_THRESHOLDS, THRESHOLDS

    if dry_run:
        changed = f"{run / THRESHOLDS}" + (f" and {run / CALIBRATION}" if calibrate else "")
        out.print(f"dry run: {changed} not changed")
        return
    if calibrate:
        clf.save_calibration(run)
        out.print(f"saved {run / CALIBRATION}", soft_wrap=True)
    else:
        clf.save_thresholds(run)
    out.print(
        f"saved {run / THRESHOLDS}; the previous thresholds are in {run / PREVIOUS_THRESHOLDS} "
        f"(to undo: mv {run / PREVIOUS_THRESHOLDS} {run / THRESHOLDS})",
        soft_wrap=True,
    )
