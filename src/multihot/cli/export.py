"""``multihot export``: a run to ONNX or a Hugging Face directory, checked before it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multihot.cli.app import (
    TextCol,
    app,
    friendly,
    out,
    run_text_col,
)
from multihot.core.errors import MultihotError


@app.command()
@friendly
def export(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="onnx (any transformer run) or hf (pooler + linear BERT)."),
    ] = "onnx",
    quantize: Annotated[
        str | None, typer.Option(help="int8: dynamic quantization of an ONNX graph.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Default: RUN/model.onnx, RUN/model.int8.onnx (--quantize int8) or RUN/hf.",
        ),
    ] = None,
    check_data: Annotated[
        Path | None,
        typer.Option(
            "--check-data",
            help="Also check parity on every text of this file (fp32; int8 of a run without "
            "validation rows).",
        ),
    ] = None,
    text_col: TextCol = None,
    max_f1_drop: Annotated[
        float | None,
        typer.Option(
            "--max-f1-drop",
            help="int8: how far validation macro F1 may fall below fp32's (default 0.005).",
        ),
    ] = None,
    keep_float: Annotated[
        str | None,
        typer.Option(
            "--int8-keep-float",
            metavar="REGEX",
            help="int8: weight MatMuls whose ONNX node names match stay float32, "
            "e.g. 'output/dense'.",
        ),
    ] = None,
) -> None:
    """Export a run to ONNX or a Hugging Face directory; checks it before writing.

    fp32 and hf exports must give PyTorch's probabilities. An int8 graph is judged on the run's
    validation rows: its macro F1, with thresholds re-tuned for it (and the calibration refitted,
    when the run is calibrated), within --max-f1-drop of the fp32 graph's; both are saved in it.
    """
    from multihot import export as exporting

    if fmt not in exporting.FORMATS:
        raise MultihotError(
            f"--format: expected one of {', '.join(exporting.FORMATS)}, got {fmt!r}"
        )
    if quantize is not None and fmt != "onnx":
        raise MultihotError("--quantize applies to --format onnx only")
    if quantize != "int8" and (max_f1_drop is not None or keep_float is not None):
        raise MultihotError("--max-f1-drop and --int8-keep-float apply to --quantize int8 only")
    texts = None
    if check_data is not None:
        texts = exporting.read_check_texts(check_data, text_col or run_text_col(run))
    if fmt == "onnx":
        drop = exporting.MAX_F1_DROP if max_f1_drop is None else max_f1_drop
        settings = exporting.Int8Settings(keep_float=keep_float, max_f1_drop=drop)
        result = exporting.export_onnx(
            run, output, quantize=quantize, check_texts=texts, int8=settings
        )
    else:
        result = exporting.export_hf(run, output, check_texts=texts)
    _print_check(result, quantize)
    out.print(f"saved {result.path}")


def _print_check(result, quantize: str | None) -> None:
    """The figures the export was judged by."""
    if result.parity is not None:
        out.print(f"parity: {result.parity.summary()}", soft_wrap=True)
        if quantize == "int8":
            out.print(
                "int8: the run has no validation rows (validation.jsonl), so the graph was "
                "checked by probability difference and keeps the run's thresholds",
                soft_wrap=True,
            )
    accuracy = result.accuracy
    if accuracy is not None:
        out.print(f"int8 check: {accuracy.summary()}", soft_wrap=True)
        refit = " and calibration" if accuracy.calibration_refitted else ""
        out.print(f"int8: thresholds{refit} tuned for it saved in the graph", soft_wrap=True)
