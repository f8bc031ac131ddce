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
        typer.Option("--check-data", help="Also check parity on every text of this file."),
    ] = None,
    text_col: TextCol = None,
) -> None:
    """Export a run to ONNX or a Hugging Face directory; checks parity with PyTorch before writing."""
    from multihot import export as exporting

    if fmt not in exporting.FORMATS:
        raise MultihotError(
            f"--format: expected one of {', '.join(exporting.FORMATS)}, got {fmt!r}"
        )
    if quantize is not None and fmt != "onnx":
        raise MultihotError("--quantize applies to --format onnx only")
    texts = None
    if check_data is not None:
        texts = exporting.read_check_texts(check_data, text_col or run_text_col(run))
    if fmt == "onnx":
        result = exporting.export_onnx(run, output, quantize=quantize, check_texts=texts)
    else:
        result = exporting.export_hf(run, output, check_texts=texts)
    out.print(f"parity: {result.parity.summary()}", soft_wrap=True)
    out.print(f"saved {result.path}")
