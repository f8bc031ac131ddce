"""``multihot predict``: label new texts; streams files of any size."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multihot.cli.app import (
    BatchSize,
    PredictProcesses,
    TextCol,
    app,
    err,
    friendly,
    relaunch,
)  # fmt: skip
from multihot.core.errors import MultihotError


@app.command()
@friendly
def predict(
    ctx: typer.Context,
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    input_file: Annotated[
        str | None,
        typer.Argument(
            metavar="INPUT",
            help="Texts: a data file, a .txt file (one per line) or '-' for stdin lines.",
        ),
    ] = None,
    text: Annotated[
        list[str] | None, typer.Option("--text", help="A text to label (repeatable).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output .jsonl or .csv (default: JSONL on stdout)."),
    ] = None,
    batch_size: BatchSize = 64,
    precision: Annotated[
        str,
        typer.Option(
            "--precision", help="auto (bf16 where supported), fp32, bf16, fp16; torch backend."
        ),
    ] = "auto",
    chunk_size: Annotated[
        int, typer.Option(help="Texts read at a time (memory stays flat).", min=1)
    ] = 8192,
    text_col: TextCol = None,
    backend: Annotated[
        str, typer.Option(help="torch, or onnx (a graph written by 'multihot export').")
    ] = "torch",
    onnx_model: Annotated[
        Path | None,
        typer.Option(
            "--onnx-model", help="ONNX graph for --backend onnx (default: RUN/model.onnx)."
        ),
    ] = None,
    processes: PredictProcesses = 1,
) -> None:
    """Label new texts with the run's thresholds; streams files of any size."""
    from multihot.core import distributed
    from multihot.data.writers import check_output_path, open_writer
    from multihot.inference.predictor import Predictor

    if (input_file is None) == (not text):
        raise MultihotError("give either an INPUT file (or '-') or --text, not both or neither")
    if onnx_model is not None and backend != "onnx":
        raise MultihotError("--onnx-model needs --backend onnx")
    launched = distributed.is_launched()
    if (processes > 1 or launched) and input_file == "-":
        raise MultihotError("several processes cannot share stdin ('-'); give the texts as a file")
    if output is not None:  # in every process, before any of them waits on the others
        check_output_path(output, inputs=[input_file] if input_file not in (None, "-") else [])
    if processes > 1 and not launched:
        relaunch(ctx, processes)
    main_process = distributed.state().is_main_process if launched else True
    predictor = Predictor.load(run, backend=backend, onnx_path=onnx_model, precision=precision)
    if text:
        batches = iter([list(text)])
    else:
        # Checks the file and its text column now, before an output file is opened.
        from multihot.data.readers import iter_text_batches  # pandas: only for files

        batches = iter_text_batches(
            input_file, text_col=text_col or predictor.config.data.text_col, batch_size=chunk_size
        )
    results = predictor.iter_predict(batches, batch_size=batch_size, distribute=launched)
    if not main_process:
        for _ in results:  # computes this process's share of each batch; the first one writes
            pass
        return
    with open_writer(output, predictor.label_names) as writer:
        for texts, probs, labels in results:
            writer.write(texts, probs, labels)
    if output is not None:
        err.print(f"wrote {writer.count} predictions to {output}")
