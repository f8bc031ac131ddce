"""``multihot evaluate``: overall and per-label metrics of a run on labelled data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import (
    DATA_OPTIONS,
    BatchSize,
    Precision,
    app,
    friendly,
    load_classifier,
)
from multihot.cli.options import with_options
from multihot.cli.tables import print_report


@app.command()
@friendly
@with_options(DATA_OPTIONS)
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[Path, typer.Argument(help="Labelled data file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    save: Annotated[
        bool, typer.Option("--save", help="Also record them in the run's metrics.json.")
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option("--report", help="Also write the HTML report on DATA to this file."),
    ] = None,
    batch_size: BatchSize = 64,
    precision: Precision = "auto",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a --report file that exists though multihot did not write it."
        ),
    ] = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Overall and per-label metrics of a run on labelled data, with its saved thresholds."""
    # Not at the top: importing the report verb registers it, and --help lists verbs in that order.
    from multihot.cli.report import check_report_output, write_report_file

    if html is not None:
        check_report_output(html, run, data, force)
    clf = load_classifier(run, flags)
    if html is None:
        metrics = clf.evaluate(data, batch_size=batch_size, precision=precision)
    else:  # the report's inputs hold the same metrics: predict the data once
        metrics = write_report_file(clf, run, data, html, batch_size, precision, force).metrics
    if save:
        clf.metrics.setdefault("evaluations", {})[str(data)] = metrics
        clf.save_metrics(run)
    if as_json:
        from multihot.core.files import dumps

        sys.stdout.write(dumps(metrics))
    else:
        print_report(metrics, title=str(data))
