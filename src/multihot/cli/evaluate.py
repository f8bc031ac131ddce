"""``multihot evaluate``: overall and per-label metrics of a run on labelled data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from multihot.cli.app import (
    BatchSize,
    LabelCols,
    LabelsCol,
    LabelSep,
    Precision,
    TextCol,
    app,
    friendly,
    load_classifier,
)  # fmt: skip
from multihot.cli.report import print_report


@app.command()
@friendly
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[Path, typer.Argument(help="Labelled data file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    save: Annotated[
        bool, typer.Option("--save", help="Also record them in the run's metrics.json.")
    ] = False,
    batch_size: BatchSize = 64,
    precision: Precision = "auto",
    text_col: TextCol = None,
    labels_col: LabelsCol = None,
    label_cols: LabelCols = None,
    label_sep: LabelSep = None,
) -> None:
    """Overall and per-label metrics of a run on labelled data, with its saved thresholds."""
    clf = load_classifier(run, text_col, labels_col, label_cols, label_sep)
    metrics = clf.evaluate(data, batch_size=batch_size, precision=precision)
    if save:
        clf.metrics.setdefault("evaluations", {})[str(data)] = metrics
        clf.save_metrics(run)
    if as_json:
        from multihot.core.files import dumps

        sys.stdout.write(dumps(metrics))
    else:
        print_report(metrics, title=str(data))
