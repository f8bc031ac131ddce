"""``multihot report``: one self-contained HTML file that shows a run on labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import DATA_OPTIONS, BatchSize, Precision, app, err, friendly, load_classifier
from multihot.cli.options import with_options

ReportFile = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        help="The HTML file to write (.html or .htm; an earlier multihot page there is replaced).",
    ),
]
Force = Annotated[
    bool,
    typer.Option(
        "--force", help="Replace an existing HTML file there even though multihot did not write it."
    ),
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
    force: Force = False,
    *,
    flags: dict[str, Any],
) -> None:
    """An HTML report: metrics, per-label curves and thresholds, calibration, label pairs,
    training curves and each label's worst mistakes. Nothing in it is fetched from the network."""
    check_report_output(output, run, data, force)
    clf = load_classifier(run, flags)
    write_report_file(clf, run, data, output, batch_size, precision, force)


def check_report_output(output: Path, run: Path, data: Path | None, force: bool) -> None:
    """Refuse, before any work, a report file that would replace the data, a file of the run
    directory, or a file multihot did not write (without ``force``)."""
    from multihot.data.writers import check_html_output

    check_html_output(
        output, inputs=[data] if data is not None else [], read_dirs=[run], force=force
    )


def write_report_file(
    clf, run: Path, data: Path | None, output: Path, batch_size, precision, force: bool = False
):
    """Write ``clf``'s report on ``data`` and say where (``evaluate --report`` shares this);
    the report's inputs (their ``metrics`` are those ``evaluate`` prints)."""
    from multihot.report.build import report_inputs
    from multihot.report.html import write_report

    inputs = report_inputs(clf, run, data, batch_size, precision)
    write_report(inputs, output, force=force)
    err.print(f"wrote {output} (open it in a browser)", soft_wrap=True)
    return inputs
