"""``multihot report``: one self-contained HTML file that shows a run on labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import DATA_OPTIONS, BatchSize, Precision, app, err, friendly, load_classifier
from multihot.cli.options import with_options

ReportFile = Annotated[
    Path, typer.Option("--output", "-o", help="The HTML file to write (replaced if it exists).")
]


@app.command()
@friendly
@with_options(DATA_OPTIONS)
def report(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[
        Path | None,
        typer.Argument(help="Labelled data to report on (default: the run's validation data)."),
    ] = None,
    output: ReportFile = Path("report.html"),
    batch_size: BatchSize = 64,
    precision: Precision = "auto",
    flags: dict[str, Any] | None = None,
) -> None:
    """An HTML report: metrics, per-label curves and thresholds, calibration, label pairs,
    training curves and each label's worst mistakes. Nothing in it is fetched from the network."""
    clf = load_classifier(run, flags)
    write_report_file(clf, run, data, output, batch_size, precision)


def write_report_file(clf, run: Path, data: Path | None, output: Path, batch_size, precision):
    """Write ``clf``'s report on ``data`` and say where (``evaluate --report`` shares this);
    the report's inputs (their ``metrics`` are those ``evaluate`` prints)."""
    from multihot.report.build import report_inputs
    from multihot.report.html import write_report

    inputs = report_inputs(clf, run, data, batch_size, precision)
    write_report(inputs, output)
    err.print(f"wrote {output} (open it in a browser)", soft_wrap=True)
    return inputs
