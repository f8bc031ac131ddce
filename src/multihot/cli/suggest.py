"""``multihot suggest``: the unlabelled texts whose labels should help the model most, with its
labels for them as a pre-annotation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from multihot.cli.app import BatchSize, Precision, TextCol, app, err, friendly, out
from multihot.cli.tables import fmt

RunDir = Annotated[Path, typer.Argument(help="Run directory.")]
Pool = Annotated[
    str,
    typer.Argument(
        metavar="POOL",
        help="Unlabelled texts: a data file (labels in it are ignored), a .txt file (one per "
        "line) or '-' for stdin lines.",
    ),
]
Count = Annotated[int, typer.Option("-n", "--number", min=1, help="Texts in the batch.")]
OutputFile = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the batch here (default: stdout)."),
]
OutputFormat = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="jsonl (one object per text: text, score, labels, near misses, probabilities), "
        "label-studio (import JSON with the labels as predictions) or csv. Default: from the "
        "-o suffix (.json label-studio, .csv csv), else jsonl.",
    ),
]
Strategy = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help="threshold (probabilities near their thresholds, rare labels first; the default), "
        "ensemble (members that disagree; an ensemble run) or random (seeded).",
    ),
]
Diversity = Annotated[
    str | None,
    typer.Option(
        "--diversity",
        help="kcenter (spread the batch over the model's vectors of the best 10 x N texts) or "
        "none (the N best). Default: kcenter, none for --strategy random.",
    ),
]
Labelled = Annotated[
    list[Path] | None,
    typer.Option(
        "--labelled",
        help="Data already labelled (repeatable): its texts are skipped too and its positives "
        "weight the labels. The run's training texts (as it records them) and validation texts "
        "are always skipped; a run saved before runs recorded their training texts needs its "
        "training data here.",
    ),
]
IdCol = Annotated[
    str, typer.Option("--id-col", help="Column of POOL naming each text, when present.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of --strategy random.")]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing -o file.")]


@app.command()
@friendly
def suggest(
    run: RunDir,
    pool: Pool,
    number: Count,
    output: OutputFile = None,
    output_format: OutputFormat = None,
    strategy: Strategy = None,
    diversity: Diversity = None,
    labelled: Labelled = None,
    text_col: TextCol = None,
    id_col: IdCol = "id",
    seed: Seed = 0,
    batch_size: BatchSize = 64,
    precision: Precision = "auto",
    force: Force = False,
) -> None:
    """Pick the N texts of POOL most worth labelling next, with the model's labels for them
    (those above threshold, and the near misses) for an annotator to correct.

    Texts repeated in POOL count once, and texts already labelled are skipped: the run's
    training and validation texts and the texts of the data given with --labelled.
    """
    from multihot.data.writers import check_new_file
    from multihot.quality.suggest import DEFAULT_STRATEGY, FORMATS, check_choices, format_for
    from multihot.quality.suggest import suggest as pick_batch

    form = output_format or (format_for(output) if output is not None else "jsonl")
    if form not in FORMATS:
        raise typer.BadParameter(f"{form!r}: expected {', '.join(FORMATS)}", param_hint="--format")
    strategy = strategy or DEFAULT_STRATEGY
    check_choices(number, strategy, diversity)  # before the model loads
    if output is not None:  # no model loaded, nothing read, for an output that cannot be written
        inputs: list[str | Path] = [*([pool] if pool != "-" else []), *(labelled or [])]
        check_new_file(output, inputs=inputs, read_dirs=[run], force=force)
    batch = pick_batch(
        run,
        pool,
        number,
        strategy=strategy,
        diversity=diversity,
        labelled=labelled or None,
        text_col=text_col,
        id_col=id_col,
        seed=seed,
        batch_size=batch_size,
        precision=precision,
    )
    summary = (
        f"{len(batch)} of {batch.ranked} texts picked by {batch.strategy} "
        f"(diversity {batch.diversity}); skipped {batch.repeats} repeats and {batch.labelled} "
        "already labelled"
    )
    if output is None:
        sys.stdout.write(batch.render(form))
        err.print(summary, soft_wrap=True)
        return
    batch.write(output, form, force=force)
    print_batch(batch)
    out.print(f"saved {output} ({form}): {summary}", soft_wrap=True)


def print_batch(batch, shown: int = 10) -> None:
    """The first texts of the batch: rank, score, suggested labels, text."""
    table = Table(title="to label next", title_justify="left")
    for col in ("rank", "score", "labels", "text"):
        table.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for rank, (score, labels, text) in enumerate(
        zip(batch.scores[:shown], batch.labels[:shown], batch.texts[:shown], strict=True), 1
    ):
        # Text, not markup: a text or a label may hold "[joy]".
        shown_text = Text(" ".join(text.split()), overflow="ellipsis", no_wrap=True)
        table.add_row(str(rank), fmt(float(score), 3), Text(", ".join(labels)), shown_text)
    out.print(table)
