"""``multihot explain``: which tokens drove each label of one text."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from multihot.cli.app import app, err, friendly, out


@app.command()
@friendly
def explain(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    text: Annotated[str, typer.Argument(help="The text to explain.")],
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            help="A label to explain (repeat for more; default: those that fire, or the most "
            "probable one).",
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the explanation as an HTML page (.html or .htm; an earlier multihot "
            "page there is replaced).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an --html file that exists though multihot did not write it."
        ),
    ] = False,
    method: Annotated[
        str,
        typer.Option(
            help="auto (label attention where the model pools with it, exact for the baseline, "
            "integrated gradients otherwise), label-attention, integrated-gradients or linear."
        ),
    ] = "auto",
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, help="Tokens the deletion check deletes.")
    ] = 3,
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="Integration steps of integrated gradients.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON.")] = False,
) -> None:
    """Which tokens drove each label, coloured by score, with a check: deleting the top tokens
    must lower the label's probability more than deleting as many random ones. A run that
    prepares its texts (preprocess) is explained on the text as it reads it, and a first line
    gives that text when the steps changed it."""
    from multihot.classifier import Classifier
    from multihot.data.writers import check_html_output
    from multihot.report.explanation import prepared_line, render_terminal, write_html

    if html is not None:  # before the model loads: nothing of the run or the user's is replaced
        check_html_output(html, read_dirs=[run], force=force)
    clf = Classifier.load(run)
    explanation = clf.explain(text, label or None, top_k=top_k, method=method, n_steps=steps)
    if as_json:
        from multihot.core.files import dumps

        sys.stdout.write(dumps(explanation.to_dict()))
    else:
        prepared = prepared_line(explanation)
        if prepared is not None:  # one line however long: the text the tokens below are of
            out.print(Text(prepared, style="dim"), soft_wrap=True)
            out.print()
        out.print(render_terminal(explanation, with_prepared=False))
    if html is not None:
        write_html(explanation, html, title=f"{run.name}: explanation", force=force)
        err.print(f"wrote {html}", soft_wrap=True)
