"""``multihot predict``: label new texts; streams files of any size."""

from __future__ import annotations

import sys
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
    out,
    relaunch,
)
from multihot.cli.render import render_prediction
from multihot.core.errors import MultihotError

FORMATS = ("auto", "json", "text")

RunDir = Annotated[Path, typer.Argument(help="Run directory.")]
InputFile = Annotated[
    str | None,
    typer.Argument(
        metavar="INPUT",
        help="Texts: a data file, a .txt file (one per line) or '-' for stdin lines.",
    ),
]
Texts = Annotated[list[str] | None, typer.Option("--text", help="A text to label (repeatable).")]
OutputFile = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Output .jsonl or .csv (default: stdout)."),
]
OutputFormat = Annotated[
    str,
    typer.Option(
        "--format",
        help="Stdout: auto (text on a terminal, else JSON lines), json, or text (the labels "
        "that fired and the near misses, with thresholds). With -o its suffix decides.",
    ),
]
TorchPrecision = Annotated[
    str,
    typer.Option(
        "--precision", help="auto (bf16 where supported), fp32, bf16, fp16; torch backend."
    ),
]
ChunkSize = Annotated[int, typer.Option(help="Texts read at a time (memory stays flat).", min=1)]
Backend = Annotated[
    str, typer.Option(help="torch, or onnx (a graph written by 'multihot export').")
]
OnnxModel = Annotated[
    Path | None,
    typer.Option("--onnx-model", help="ONNX graph for --backend onnx (default: RUN/model.onnx)."),
]
ENGINES = ("local", "ray")
Engine = Annotated[
    str,
    typer.Option(
        help="local (this machine: one process, or --processes N), or ray (Ray Data: the "
        "cluster in RAY_ADDRESS, else Ray started on this machine; reads .parquet or .jsonl, "
        "writes -o FILE.jsonl/.csv/.parquet or -o DIR, a directory of Parquet files).",
    ),
]
Concurrency = Annotated[
    int,
    typer.Option(
        min=1, help="--engine ray: actors, each loading the run once and labelling chunks."
    ),
]

Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="CPU threads per process, torch and ONNX (default: every core this process may "
        "use; --engine ray: 1 per actor, and Ray reserves N CPUs per actor). Outputs are "
        "byte-identical only on the same N: kernels sum in another order on another count.",
    ),
]


@app.command()
@friendly
def predict(
    ctx: typer.Context,
    run: RunDir,
    input_file: InputFile = None,
    text: Texts = None,
    output: OutputFile = None,
    output_format: OutputFormat = "auto",
    batch_size: BatchSize = 64,
    precision: TorchPrecision = "auto",
    chunk_size: ChunkSize = 8192,
    text_col: TextCol = None,
    backend: Backend = "torch",
    onnx_model: OnnxModel = None,
    processes: PredictProcesses = 1,
    engine: Engine = "local",
    concurrency: Concurrency = 1,
    threads: Threads = None,
) -> None:
    """Label new texts with the run's thresholds; streams files of any size."""
    from multihot.core import distributed
    from multihot.core.threads import set_threads
    from multihot.inference.predictor import Predictor

    _check_options(run, input_file, text, output, output_format, backend, onnx_model)
    if engine not in ENGINES:
        raise MultihotError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "ray":
        from multihot.batch.options import BatchOptions, RayOptions  # no pandas, pyarrow, ray

        _check_ray_options(input_file, output, output_format, processes)
        assert input_file is not None and output is not None  # _check_ray_options
        options = BatchOptions(
            run=run,
            backend=backend,
            onnx_model=onnx_model,
            precision=precision,
            text_col=text_col,
            batch_size=batch_size,
            threads=threads,
        )
        job = RayOptions(
            concurrency=concurrency, chunk_size=chunk_size, cpus_per_actor=threads or 1
        )
        _predict_on_ray(input_file, output, options, job)
        return
    if concurrency != 1:
        raise MultihotError("--concurrency applies to --engine ray; here see --processes")
    launched = distributed.is_launched()
    if (processes > 1 or launched) and input_file == "-":
        raise MultihotError("several processes cannot share stdin ('-'); give the texts as a file")
    if output is not None:  # in every process, before any of them waits on the others
        _check_output(output, output_format, run, input_file)
    if processes > 1 and not launched:
        relaunch(ctx, processes)
    main_process = distributed.state().is_main_process if launched else True
    if threads is not None:
        set_threads(threads)
    predictor = Predictor.load(run, backend=backend, onnx_path=onnx_model, precision=precision)
    batches = _text_batches(predictor, input_file, text, text_col, chunk_size)
    results = predictor.iter_predict(batches, batch_size=batch_size, distribute=launched)
    if not main_process:
        for _ in results:  # computes this process's share of each batch; the first one writes
            pass
        return
    _write_predictions(results, predictor, output, output_format)


def _check_options(run, input_file, text, output, output_format, backend, onnx_model) -> None:
    """Refuse options that do not go together, before anything is loaded."""
    if (input_file is None) == (not text):
        raise MultihotError("give either an INPUT file (or '-') or --text, not both or neither")
    if onnx_model is not None and backend != "onnx":
        raise MultihotError("--onnx-model needs --backend onnx")
    if output_format not in FORMATS:
        raise MultihotError(
            f"--format: expected one of {', '.join(FORMATS)}, got {output_format!r}"
        )
    if output is not None and output_format == "text":
        # A file gets the format its suffix names, for programs; the text form is for reading.
        raise MultihotError(
            f"--format text is for reading, not for -o {output}: leave out -o and redirect "
            "stdout to keep the text form (--format text > predictions.txt)"
        )


def _check_ray_options(input_file, output, output_format: str, processes: int) -> None:
    """Refuse what --engine ray does not do: texts on the command line or stdin, several local
    processes (Ray runs the actors), no -o (the job writes files, not stdout)."""
    if input_file is None or input_file == "-":
        raise MultihotError("--engine ray labels a file (.parquet or .jsonl): give it as INPUT")
    if processes != 1:
        raise MultihotError(
            "--processes is for --engine local; with --engine ray see --concurrency"
        )
    if output is None:
        raise MultihotError("--engine ray writes a file or a directory: give -o")
    if output_format == "json" and output.suffix.lower() != ".jsonl":
        raise MultihotError(
            f"--format json: -o {output} is not a .jsonl file; name one or leave out --format"
        )


def _predict_on_ray(input_file: str, output: Path, options, job) -> None:
    """``predict --engine ray``: :func:`multihot.batch.ray_data.predict_file`."""
    from multihot.batch.ray_data import predict_file  # pandas, pyarrow; ray once it runs

    rows = predict_file(input_file, output, options, job)
    err.print(f"wrote {rows} predictions to {output}")


def _check_output(output: Path, output_format: str, run: Path, input_file: str | None) -> None:
    """Refuse an output file that would overwrite an input, or whose suffix says another format."""
    from multihot.data.writers import check_output_path

    fmt = check_output_path(
        output,
        inputs=[input_file] if input_file not in (None, "-") else [],
        read_dirs=[run],
    )
    if output_format == "json" and fmt != "jsonl":
        raise MultihotError(
            f"--format json: -o {output} writes {fmt} (its suffix decides); name a .jsonl "
            "file or leave out --format"
        )


def _text_batches(predictor, input_file: str | None, text, text_col: str | None, chunk_size: int):
    """The texts to label, in batches: the ``--text`` ones, or the input file's (its text column:
    ``text_col``, else the run's), read lazily."""
    if text:
        return iter([list(text)])
    # Checks the file and its text column now, before an output file is opened.
    from multihot.data.readers import iter_text_batches  # pandas: only for files

    assert input_file is not None  # _check_options: without --text there is an INPUT
    return iter_text_batches(
        input_file, text_col=text_col or predictor.config.data.text_col, batch_size=chunk_size
    )


def _write_predictions(results, predictor, output: Path | None, output_format: str) -> None:
    """The predictions as text blocks on a terminal (or ``--format text``), else JSON lines on
    stdout or the ``-o`` file."""
    from multihot.data.writers import open_writer

    if output is None and (
        output_format == "text" or (output_format == "auto" and sys.stdout.isatty())
    ):
        print_text(results, predictor.label_names, predictor.thresholds.values)
        return
    with open_writer(output, predictor.label_names) as writer:
        for texts, probs, labels in results:
            writer.write(texts, probs, labels)
    if output is not None:
        err.print(f"wrote {writer.count} predictions to {output}")


def print_text(results, label_names: list[str], thresholds) -> None:
    """Each text's block (:func:`multihot.cli.render.render_prediction`), a blank line between."""
    first = True
    for texts, probs, labels in results:
        for text, row, fired in zip(texts, probs, labels, strict=True):
            if not first:
                out.print()
            first = False
            block = render_prediction(
                text, label_names, row, thresholds, fired, text_width=max(out.width, 40)
            )
            out.print(block, soft_wrap=True)
