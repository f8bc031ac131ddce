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
from typer.core import TyperOption

from multihot.cli.options import config_options
from multihot.core.config import DataConfig, RunConfig, load_config_file
from multihot.core.errors import MultihotError

_display_type_rich = TyperOption.display_type_rich


def _flag_without_type(self: TyperOption, ctx) -> str | None:
    """Typer prints a type beside every option, flags included (``--json <bool>``, even
    ``--help <bool>``); a flag takes no value, so it gets none."""
    return None if self.is_flag else _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]  # see above

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


def friendly(fn):
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


DATA_OPTIONS = config_options(DataConfig, "Data columns", show_defaults=False)
"""``--text-col``, ``--labels-col``, ``--label-cols``, ``--label-sep``: where the data files
hold texts and labels (the run's own columns when not given)."""
TextCol = Annotated[str | None, typer.Option("--text-col", help="Text column (default: text).")]
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
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="YAML or JSON file with the same keys as the flags."),
]
TrustRemoteWeights = Annotated[
    bool,
    typer.Option(
        "--trust-remote-weights",
        help="Accept an encoder with only pickled weights (pytorch_model.bin), read with "
        "torch.load(weights_only=True). Default: safetensors only.",
    ),
]
Precision = Annotated[
    str, typer.Option("--precision", help="auto (bf16 where supported), fp32, bf16, fp16.")
]


def command_line(ctx: typer.Context, drop: tuple[str, ...]) -> list[str]:
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


def relaunch(ctx: typer.Context, processes: int) -> None:
    """Run this very command again in ``processes`` processes under ``accelerate launch``; exit."""
    from multihot.core import distributed

    command = distributed.launch_command(processes, command_line(ctx, drop=("processes",)))
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


# ------------------------------------------------------------------------------------- helpers
def load_config(path: Path | None) -> RunConfig | None:
    """The settings of a ``--config`` file; None without one."""
    return RunConfig.from_dict(load_config_file(path), source=str(path)) if path else None


def load_classifier(run: Path, flags: dict[str, Any]):
    """Load a run; data-column flags override the columns it was trained with."""
    from multihot.classifier import Classifier

    clf = Classifier.load(run)
    clf.config = clf.config.override(**flags)
    return clf


def run_text_col(run: Path) -> str:
    """The text column a run was trained with (``text`` when its config says nothing)."""
    from multihot.artifacts.rundir import read_config

    data = read_config(run).get("data", {})
    return data.get("text_col") or "text"


def main() -> None:
    ended_well = False
    try:
        app()
        ended_well = True
    except SystemExit as exit_:  # typer ends with SystemExit, on success too
        ended_well = exit_.code in (None, 0)
        raise
    finally:
        if "torch" in sys.modules:  # without torch loaded there is no process group to leave
            from multihot.core import distributed

            distributed.leave(synchronize=ended_well)


if __name__ == "__main__":  # pragma: no cover
    main()
