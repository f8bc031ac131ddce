"""The ``multihot`` command: one thin verb per library function.

Every verb checks its arguments, calls the library and prints with rich. A :class:`MultihotError`
(bad file, column, row, run directory) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from multihot.cli.options import config_options, with_options
from multihot.core.config import DataConfig, ModelConfig, TrainConfig
from multihot.core.errors import MultihotError

app = typer.Typer(
    name="multihot",
    help="Multi-label text classification: train, evaluate, tune thresholds, predict, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _setup_logging(verbose: bool) -> None:
    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    root = logging.getLogger("multihot")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if int(os.environ.get("RANK", "0")):  # a process of a launched job other than the main one
        root.setLevel(logging.WARNING)
    root.propagate = False
    # Libraries underneath are chatty at INFO; keep their warnings only.
    for name in ("transformers", "accelerate", "tokenizers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _friendly(fn):
    """Turn user errors into one line and exit 2, whatever the verb."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MultihotError as e:
            # A Text, not markup: messages quote file contents, where "[/x]" or ":joy:" is data.
            message = Text.assemble(("error:", "bold red"), " ", str(e))
            err.print(message, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    _setup_logging(verbose)


def _split_cols(value: str | None) -> list[str] | None:
    return None if value is None else [c.strip() for c in value.split(",") if c.strip()]


def _data_overrides(text_col, labels_col, label_cols, label_sep) -> dict[str, Any]:
    return {
        "text_col": text_col,
        "labels_col": labels_col,
        "label_cols": _split_cols(label_cols),
        "label_sep": label_sep,
    }


TextCol = Annotated[str | None, typer.Option("--text-col", help="Text column (default: text).")]
LabelsCol = Annotated[
    str | None, typer.Option("--labels-col", help="Column of label-name lists (default: labels).")
]
LabelCols = Annotated[
    str | None, typer.Option("--label-cols", help="Comma-separated 0/1 label columns.")
]
LabelSep = Annotated[
    str | None, typer.Option("--label-sep", help="Delimiter inside the labels column.")
]
TrainFile = Annotated[Path, typer.Argument(help="Training data (.csv .tsv .jsonl .json .parquet).")]
ValFile = Annotated[
    Path | None, typer.Option("--val", help="Validation data; default: a stratified hold-out.")
]
ThresholdStrategy = Annotated[str | None, typer.Option(help="fixed, global or per-label.")]
MinSupport = Annotated[
    int | None, typer.Option(help="Fewer validation positives: global threshold.")
]
Top1Fallback = Annotated[
    bool | None,
    typer.Option("--top1-fallback/--no-top1-fallback", help="Always give the top label."),
]
ValFraction = Annotated[float | None, typer.Option(help="Hold-out fraction without --val.")]
Seed = Annotated[int | None, typer.Option(help="Random seed.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")]
Precision = Annotated[
    str, typer.Option("--precision", help="auto (bf16 where supported), fp32, bf16, fp16.")
]


def _command_line(ctx: typer.Context, drop: tuple[str, ...]) -> list[str]:
    """The arguments that invoked this verb (root options, verb, its options), less ``drop``.

    Rebuilt from the parsed values, so it is the same whether the verb came from a shell or from a
    test's CliRunner; values left at their default are left out.
    """

    def render(context: Any) -> list[str]:
        args: list[str] = []
        for param in context.command.params:
            value = context.params.get(param.name)
            if param.name in drop or value is None:
                continue
            # By kind name: typer carries its own copy of click, so isinstance on click's fails.
            if param.param_type_name == "argument":
                args.append(str(value))
            elif param.param_type_name == "option":
                if param.is_flag:
                    if value != param.default:
                        args.append(param.opts[0] if value else param.secondary_opts[0])
                elif param.multiple:
                    for item in value:
                        args += [param.opts[0], str(item)]
                elif value != param.default:
                    args += [param.opts[0], str(value)]
        return args

    root = ctx.parent
    return [*(render(root) if root is not None else []), ctx.info_name or "", *render(ctx)]


def _relaunch(ctx: typer.Context, processes: int) -> None:
    """Run this very command again in ``processes`` processes under ``accelerate launch``; exit."""
    from multihot.core import distributed

    command = distributed.launch_command(processes, _command_line(ctx, drop=("processes",)))
    err.print(f"launching {processes} processes: accelerate launch ... -m multihot {ctx.info_name}")
    raise typer.Exit(distributed.run_launch(command))


Processes = Annotated[
    int,
    typer.Option(
        "--processes",
        min=1,
        help="Run data-parallel in N processes (one per GPU, or sharing the CPU's cores) by way "
        "of 'accelerate launch'; the same as launching 'multihot' with it.",
    ),
]
PredictProcesses = Annotated[
    int,
    typer.Option(
        "--processes",
        min=1,
        help="Spread the texts over N processes (one per GPU, or sharing the CPU's cores) by way "
        "of 'accelerate launch'; output stays in input order, written by the first process.",
    ),
]


# --------------------------------------------------------------------------------------- train
TRAIN_OPTIONS = [
    *config_options(ModelConfig, "Model"),
    *config_options(TrainConfig, "Training"),
    *config_options(DataConfig, "Data columns"),
]


@app.command()
@_friendly
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
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run directory (default: runs/<train name>)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML or JSON file with the same keys as the flags."),
    ] = None,
    trust_remote_weights: Annotated[
        bool,
        typer.Option(
            "--trust-remote-weights",
            help="Accept an encoder with only pickled weights (pytorch_model.bin), read with "
            "torch.load(weights_only=True). Default: safetensors only.",
        ),
    ] = False,
    processes: Processes = 1,
    flags: dict[str, Any] | None = None,
) -> None:
    """Train a model and tune its thresholds; leaves a run directory.

    The run directory keeps a checkpoint at every evaluation while training: after a kill,
    'multihot train --resume RUN' continues where it stopped.
    """
    from multihot.core import distributed

    if resume is not None:
        _refuse_settings_with_resume(resume, train_file, val, output, config, flags)
    elif train_file is None:
        raise MultihotError("missing TRAIN_FILE (or --resume RUN to continue an interrupted run)")
    else:
        from multihot.artifacts.rundir import check_output_dir

        output = output or Path("runs") / train_file.stem
        check_output_dir(output)  # before relaunching: one error, not one per process
    if processes > 1 and not distributed.is_launched():
        _relaunch(ctx, processes)
    if resume is not None:
        clf, output = _resume(resume, trust_remote_weights), resume
    else:
        clf = _train(train_file, val, output, config, flags, trust_remote_weights)
    if not distributed.state().is_main_process:
        return  # the main process reports
    _print_train_report(clf)
    out.print(f"saved {output}")


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


def _train(train_file: Path, val, output: Path, config, flags, trust_remote_weights: bool):
    """Train with the settings of ``config`` (a file), overridden by the flags given."""
    from multihot.classifier import Classifier
    from multihot.cli.progress import RichProgress
    from multihot.core.config import RunConfig, load_config_file

    base = RunConfig.from_dict(load_config_file(config), source=str(config)) if config else None
    run_config = (base or RunConfig()).override(**flags)
    return Classifier.train(
        train_file, val, config=run_config, output=output,
        callback=RichProgress(err, metric=run_config.train.metric),
        trust_remote_weights=trust_remote_weights,
    )  # fmt: skip


def _print_train_report(clf) -> None:
    # A single model has one best evaluation; each member of an ensemble has its own.
    best = clf.metrics.get("members") or [clf.metrics["best"]]
    epochs = ", ".join(f"{b['epoch']:g}" for b in best)
    members = f" of its {len(best)} members" if len(best) > 1 else ""
    _print_report(
        clf.metrics["validation"],
        title=f"validation ({best[0]['metric']} best at epoch {epochs}{members})",
    )


# ------------------------------------------------------------------------------------ baseline
@app.command()
@_friendly
def baseline(
    train_file: TrainFile,
    val: ValFile = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run directory (default: runs/<train name>-baseline)."),
    ] = None,
    c: Annotated[
        float, typer.Option("--C", help="Inverse regularisation of each logistic regression.")
    ] = 4.0,
    ngram_max: Annotated[int, typer.Option(help="Word n-grams from 1 to this length.")] = 2,
    min_df: Annotated[int, typer.Option(help="Ignore n-grams in fewer texts.")] = 2,
    max_features: Annotated[int, typer.Option(help="Keep at most this many n-grams.")] = 200_000,
    thresholds: ThresholdStrategy = None,
    min_support: MinSupport = None,
    top1_fallback: Top1Fallback = None,
    val_fraction: ValFraction = None,
    seed: Seed = None,
    text_col: TextCol = None,
    labels_col: LabelsCol = None,
    label_cols: LabelCols = None,
    label_sep: LabelSep = None,
) -> None:
    """TF-IDF (word 1-2 grams) + one logistic regression per label, with the same thresholds and report."""
    from multihot.baseline.linear import BaselineConfig
    from multihot.classifier import Classifier

    output = output or Path("runs") / f"{train_file.stem}-baseline"
    clf = Classifier.train_baseline(
        train_file, val, output=output,
        baseline=BaselineConfig(ngram_max=ngram_max, min_df=min_df, max_features=max_features, C=c),
        thresholds=thresholds, min_support=min_support, top1_fallback=top1_fallback,
        val_fraction=val_fraction, seed=seed,
        **_data_overrides(text_col, labels_col, label_cols, label_sep),
    )  # fmt: skip
    info = clf.metrics["baseline"]
    _print_report(
        clf.metrics["validation"],
        title=f"validation (baseline, {info['num_features']} n-grams, {info['seconds']:.1f}s)",
    )
    out.print(f"saved {output}")


# ------------------------------------------------------------------------------------ evaluate
@app.command()
@_friendly
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
    clf = _load(run, text_col, labels_col, label_cols, label_sep)
    metrics = clf.evaluate(data, batch_size=batch_size, precision=precision)
    if save:
        clf.metrics.setdefault("evaluations", {})[str(data)] = metrics
        clf.save_metrics(run)
    if as_json:
        from multihot.core.files import dumps

        sys.stdout.write(dumps(metrics))
    else:
        _print_report(metrics, title=str(data))


# ------------------------------------------------------------------------------------- predict
@app.command()
@_friendly
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
        _relaunch(ctx, processes)
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


# ----------------------------------------------------------------------------- tune-thresholds
@app.command("tune-thresholds")
@_friendly
def tune_thresholds(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[Path, typer.Argument(help="Labelled data to tune on (not the test set).")],
    strategy: Annotated[
        str | None, typer.Option(help="fixed, global or per-label (default: the run's).")
    ] = None,
    min_support: MinSupport = None,
    top1_fallback: Top1Fallback = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the report and what would change; save nothing."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Tune even when no label has --min-support positives in DATA."
        ),
    ] = False,
    batch_size: BatchSize = 64,
    precision: Precision = "auto",
    text_col: TextCol = None,
    labels_col: LabelsCol = None,
    label_cols: LabelCols = None,
    label_sep: LabelSep = None,
) -> None:
    """Re-tune the run's thresholds on other labelled data and save them into the run.

    The thresholds replaced are kept in RUN/thresholds.previous.json.
    """
    from multihot.artifacts.rundir import PREVIOUS_THRESHOLDS, THRESHOLDS

    clf = _load(run, text_col, labels_col, label_cols, label_sep)
    before = clf.thresholds.values.copy()
    metrics = clf.tune_thresholds(
        data,
        strategy=strategy,
        min_support=min_support,
        top1_fallback=top1_fallback,
        batch_size=batch_size,
        precision=precision,
        force=force,
    )
    _print_report(metrics, title=f"{data} (tuned here)")
    _print_threshold_changes(clf.label_names, before, clf.thresholds.values)
    if dry_run:
        out.print(f"dry run: {run / THRESHOLDS} not changed")
        return
    clf.save_thresholds(run)
    out.print(
        f"saved {run / THRESHOLDS}; the previous thresholds are in {run / PREVIOUS_THRESHOLDS} "
        f"(to undo: mv {run / PREVIOUS_THRESHOLDS} {run / THRESHOLDS})",
        soft_wrap=True,
    )


def _print_threshold_changes(names: list[str], before, after) -> None:
    from rich.table import Table

    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if abs(a - b) > 1e-9]
    if not changed:
        out.print("thresholds unchanged")
        return
    table = Table(title=f"thresholds changed: {len(changed)} of {len(names)}", title_justify="left")
    for col in ("label", "before", "after"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for i in changed:
        table.add_row(names[i], _fmt(float(before[i]), 3), _fmt(float(after[i]), 3))
    out.print(table)


# -------------------------------------------------------------------------------------- export
@app.command()
@_friendly
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
        texts = exporting.read_check_texts(check_data, text_col or _run_text_col(run))
    if fmt == "onnx":
        result = exporting.export_onnx(run, output, quantize=quantize, check_texts=texts)
    else:
        result = exporting.export_hf(run, output, check_texts=texts)
    out.print(f"parity: {result.parity.summary()}", soft_wrap=True)
    out.print(f"saved {result.path}")


# ------------------------------------------------------------------------------------- helpers
def _load(run: Path, text_col, labels_col, label_cols, label_sep):
    """Load a run; data-column flags override the columns it was trained with."""
    from multihot.classifier import Classifier

    clf = Classifier.load(run)
    clf.config = clf.config.override(**_data_overrides(text_col, labels_col, label_cols, label_sep))
    return clf


def _run_text_col(run: Path) -> str:
    """The text column a run was trained with (``text`` when its config says nothing)."""
    from multihot.artifacts.rundir import check_run_dir, read_json

    data = read_json(check_run_dir(run, required=("config.json",)) / "config.json").get("data", {})
    return data.get("text_col") or "text"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_report(metrics: dict[str, Any], title: str) -> None:
    from rich.table import Table

    overall = Table(title=f"overall: {title}", show_header=True, title_justify="left")
    for col in ("", "micro", "macro", "weighted", "samples"):
        overall.add_column(col, justify="right" if col else "left")
    for name in ("f1", "precision", "recall"):
        overall.add_row(
            name,
            *(
                _fmt(metrics.get(f"{avg}_{name}"))
                for avg in ("micro", "macro", "weighted", "samples")
            ),
        )
    overall.add_row(
        "roc_auc", _fmt(metrics.get("micro_roc_auc")), _fmt(metrics.get("macro_roc_auc")), "", ""
    )
    overall.add_row(
        "avg precision", _fmt(metrics.get("micro_ap")), _fmt(metrics.get("macro_ap")), "", ""
    )
    out.print(overall)
    out.print(
        f"hamming loss {_fmt(metrics.get('hamming_loss'))}   subset accuracy {_fmt(metrics.get('subset_accuracy'))}   "
        f"texts {metrics.get('num_texts')}   labels {metrics.get('num_labels')}"
    )
    per_label = Table(title="per label", title_justify="left")
    for col in ("label", "precision", "recall", "f1", "support", "auc", "threshold"):
        per_label.add_column(col, justify="left" if col == "label" else "right")
    for name, m in metrics.get("per_label", {}).items():
        per_label.add_row(
            name,
            _fmt(m["precision"], 3),
            _fmt(m["recall"], 3),
            _fmt(m["f1"], 3),
            str(m["support"]),
            _fmt(m["roc_auc"], 3),
            _fmt(m["threshold"], 3),
        )
    out.print(per_label)


def main() -> None:
    try:
        app()
    finally:  # typer ends with SystemExit, on success too
        if "torch" in sys.modules:  # without torch loaded there is no process group to leave
            from multihot.core import distributed

            distributed.leave()


if __name__ == "__main__":  # pragma: no cover
    main()
