"""``multihot audit``: what is wrong with a data set, before training on it: the data checks, the
label issues that out-of-fold probabilities point at, and the files to relabel them with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from multihot.cli.app import ConfigFile, app, err, friendly, load_config, out
from multihot.cli.cv import fold_printer
from multihot.cli.options import with_options
from multihot.cli.tables import fmt
from multihot.cli.train import TRAIN_OPTIONS

Data = Annotated[
    Path,
    typer.Argument(help="Labelled data to audit (.csv .tsv .jsonl .json .parquet)."),
]
Val = Annotated[
    Path | None,
    typer.Option("--val", help="Validation data: leakage and labels missing from a split."),
]
CvDir = Annotated[
    Path | None,
    typer.Option(
        "--cv",
        help="A finished 'multihot cv' of DATA whose out-of-fold probabilities to use "
        "(default: cross-validate the linear baseline here, or the encoder --encoder names).",
    ),
]
Folds = Annotated[int, typer.Option("--folds", help="Folds of the cross-validation run here.")]
AuditDir = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Audit directory (default: runs/<data name>-audit)."),
]
ChecksOnly = Annotated[
    bool,
    typer.Option("--checks-only", help="Only the data checks (seconds): no label issues."),
]
IdCol = Annotated[
    str,
    typer.Option("--id-col", help="Column of DATA naming each row in the issues, when present."),
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace an existing audit directory or --write-cleaned file."),
]
WriteCleaned = Annotated[
    Path | None,
    typer.Option(
        "--write-cleaned",
        help="Also write a copy of DATA with the issues fixed (--fix); DATA is never touched.",
    ),
]
Fix = Annotated[
    str,
    typer.Option(
        "--fix",
        help="How --write-cleaned fixes an issue: flip its label, or drop its text (flip, drop).",
    ),
]
FixTop = Annotated[
    int | None,
    typer.Option("--fix-top", help="Fix only the N most likely issues (default: every issue)."),
]
FixMinScore = Annotated[
    float | None,
    typer.Option("--fix-min-score", help="Fix only the issues scored at least this (0 to 1)."),
]


@app.command()
@friendly
@with_options(TRAIN_OPTIONS)
def audit(
    data: Data,
    val: Val = None,
    cv: CvDir = None,
    folds: Folds = 5,
    output: AuditDir = None,
    checks_only: ChecksOnly = False,
    id_col: IdCol = "id",
    write_cleaned: WriteCleaned = None,
    fix: Fix = "flip",
    fix_top: FixTop = None,
    fix_min_score: FixMinScore = None,
    force: Force = False,
    config: ConfigFile = None,
    *,
    flags: dict[str, Any],
) -> None:
    """Audit labelled data: rare and missing labels, conflicting duplicates, leakage, cut texts,
    and the (text, label) pairs whose labels are likely missing or wrong, ranked, with a page,
    Label Studio and CSV exports, and optionally a cleaned copy.

    Label issues come from out-of-fold probabilities: a finished 'multihot cv' (--cv), or a
    cross-validation of the linear baseline run here (minutes), or of a transformer when
    --encoder is given (every flag of 'multihot train' applies).
    """
    from multihot.cli.progress import NestedProgress
    from multihot.core.config import RunConfig
    from multihot.quality.cleaning import FIXES
    from multihot.report.audit import audit as run_audit
    from multihot.report.audit import check_audit_output

    if fix not in FIXES:
        raise typer.BadParameter(f"{fix!r}: expected {' or '.join(FIXES)}", param_hint="--fix")
    output = output or Path("runs") / f"{data.stem}-audit"
    check_audit_output(output, force=force, cleaned=write_cleaned, data=data)
    base = load_config(config)
    settings = (base or RunConfig()).override(**flags)
    with NestedProgress(err, total=folds, unit="folds") as progress:
        result = run_audit(
            data,
            val,
            cv_dir=cv,
            folds=folds,
            issues=not checks_only,
            id_col=id_col,
            output=output,
            force=force,
            config=base,
            callback=progress,
            fold_callback=fold_printer(progress, settings.train.metric),
            **flags,
        )
    print_audit(result)
    out.print(
        f"saved {output} (audit.html, issues.jsonl, label-studio.json, issues.csv)",
        soft_wrap=True,
    )
    if write_cleaned is not None:
        _write_cleaned_copy(
            data, write_cleaned, result, fix, fix_top, fix_min_score, force, settings
        )


def _write_cleaned_copy(data, out_path, result, fix, top, min_score, force, settings) -> None:
    """``--write-cleaned``: DATA's copy with the chosen issues fixed, read with DATA's columns."""
    from multihot.quality.cleaning import write_cleaned

    done = write_cleaned(
        data,
        out_path,
        result.issues,
        fix=fix,
        top=top,
        min_score=min_score,
        force=force,
        text_col=settings.data.text_col,
        labels_col=settings.data.labels_col,
        label_cols=settings.data.label_cols,
        label_sep=settings.data.label_sep,
    )
    fixed = (
        f"{done['labels_flipped']} labels flipped in {done['rows_changed']} texts"
        if fix == "flip"
        else f"{done['rows_dropped']} texts dropped"
    )
    out.print(
        f"saved {out_path}: {fixed}, {done['rows_out']} of {done['rows_in']} texts kept "
        f"({data} untouched)",
        soft_wrap=True,
    )


def print_audit(result, worst: int = 5) -> None:
    """The findings in a few lines, the worst labels, the most likely issues."""
    for finding in result.findings:
        if finding.count:
            # A Text, not markup: messages quote texts and label lists, where "[joy]" is data.
            style = "yellow" if finding.severity == "warning" else "dim"
            out.print(Text.assemble((finding.severity, style), " ", finding.message))
    if not result.oof:
        return
    oof = result.oof
    out.print(
        f"label issues: {len(result.issues)} pairs from {oof['model']} out-of-fold "
        f"probabilities ({oof['folds']} folds, macro F1 {fmt(oof['macro_f1'])}); data health "
        f"{fmt(result.dataset_health)}"
    )
    table = Table(title="worst labels", title_justify="left")
    for col in ("label", "positives", "health", "noise", "missing", "issues (missing/wrong)"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for h in result.health[:worst]:
        table.add_row(
            h.label,
            str(h.positives) if h.known is None else f"{h.positives} of {h.known} known",
            fmt(h.health),
            fmt(h.noise),
            fmt(h.missing_rate),
            f"{h.missing}/{h.wrong}",
        )
    out.print(table)
