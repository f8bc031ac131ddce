"""``multihot cv``: k-fold cross-validation with multi-label stratified folds, every metric as mean
+- std over folds, thresholds tuned on the out-of-fold predictions, and optionally a final model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from multihot.cli.app import ConfigFile, TrustRemoteWeights, app, err, friendly, load_config, out
from multihot.cli.options import with_options
from multihot.cli.tables import fmt
from multihot.cli.train import TRAIN_OPTIONS
from multihot.core.config import RunConfig, is_baseline

OVERALL = (
    "macro_f1",
    "micro_f1",
    "weighted_f1",
    "samples_f1",
    "macro_precision",
    "macro_recall",
    "macro_roc_auc",
    "macro_ap",
    "hamming_loss",
    "subset_accuracy",
)
"""The overall metrics the summary table shows (summary.json has them all)."""


Data = Annotated[
    Path, typer.Argument(help="Labelled data (.csv .tsv .jsonl .json .parquet), all of it.")
]
Folds = Annotated[
    int | None,
    typer.Option(
        "--folds",
        show_default="5",
        help="Folds, by multi-label iterative stratification (when resuming: its own).",
    ),
]
CvDir = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Cross-validation directory (default: runs/<data name>-cv)."
    ),
]
Baseline = Annotated[
    bool | None,
    typer.Option(
        "--baseline",
        help="Cross-validate the linear baseline (TF-IDF + logistic regression) instead.",
    ),
]
Final = Annotated[
    bool,
    typer.Option(
        "--final",
        help="Then train on all the data for the median of the folds' best epochs, with the "
        "out-of-fold thresholds: a run directory in CV_DIR/final.",
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the cross-validation in CV_DIR: finished folds are not trained again "
        "(same data; its own settings).",
    ),
]


@app.command()
@friendly
@with_options(TRAIN_OPTIONS)
def cv(
    data: Data,
    folds: Folds = None,
    output: CvDir = None,
    baseline: Baseline = None,
    final: Final = False,
    resume: Resume = False,
    config: ConfigFile = None,
    trust_remote_weights: TrustRemoteWeights = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Cross-validate: one model per fold, mean +- std over folds overall and per label, and
    thresholds tuned on the out-of-fold predictions of every row.

    Takes every flag of 'multihot train'. After an interruption, the same command with --resume
    continues without training the finished folds again.
    """
    from multihot.cli.progress import NestedProgress
    from multihot.tuning.cv import cross_validate

    output = output or Path("runs") / f"{data.stem}-cv"
    base = load_config(config)
    total, metric = _bar_settings(output, folds, resume, base, flags)
    with NestedProgress(err, total=total, unit="folds", metric=metric) as progress:
        result = cross_validate(
            data,
            folds=folds,
            output=output,
            baseline=baseline,
            final=final,
            resume=resume,
            config=base,
            callback=progress,
            fold_callback=fold_printer(progress, metric),
            trust_remote_weights=trust_remote_weights,
            **flags,
        )
    print_cv_report(result)
    out.print(f"saved {output}")
    if result.final_run is not None:
        out.print(
            f"final model: {result.final_run} (out-of-fold thresholds; "
            f"multihot predict {result.final_run} ...)"
        )


def _bar_settings(
    output: Path, folds: int | None, resume: bool, base: RunConfig | None, flags: dict[str, Any]
) -> tuple[int, str]:
    """The folds and the metric the bar and the lines show: a resumed cross-validation's own."""
    from multihot.tuning.cv import DEFAULT_FOLDS

    resumed = _resumed_settings(output) if resume else None
    if resumed is not None:
        return folds or resumed[0], resumed[1]
    return folds or DEFAULT_FOLDS, (base or RunConfig()).override(**flags).train.metric


def fold_printer(progress, metric: str):
    """A ``fold_callback`` that advances the bar with one line per finished fold."""

    def fold_done(index: int, fold) -> None:
        value = fold.metrics.get(metric)
        epoch = "" if fold.best_epoch is None else f", best epoch {fold.best_epoch:g}"
        progress.advance(f"fold {index + 1}: {metric} {fmt(value)}{epoch} ({fold.seconds:.0f}s)")

    return fold_done


def _resumed_settings(output: Path) -> tuple[int, str] | None:
    """The folds and metric of the cross-validation to resume in ``output``, for the bar."""
    from multihot.artifacts.cvdir import read_manifest

    manifest = read_manifest(output)
    if manifest is None:  # nothing there yet
        return None
    try:
        return int(manifest["folds"]), str(manifest["config"]["train"]["metric"])
    except (KeyError, TypeError, ValueError):
        return None  # cross_validate says what is wrong with it


def _pm(stats: dict[str, float | None], digits: int = 4) -> str:
    """``mean +- std`` (``-`` where undefined)."""
    if stats["mean"] is None:
        return "-"
    std = "" if stats["std"] is None else f" ± {stats['std']:.{digits}f}"
    return f"{stats['mean']:.{digits}f}{std}"


def print_cv_report(result) -> None:
    """Overall metrics as mean +- std over folds beside the out-of-fold ones, then per label."""
    folds = len(result.folds)
    kind = "the linear baseline" if is_baseline(result.config) else "a model"
    overall = Table(title=f"{folds} folds, {kind} per fold", title_justify="left")
    for col in ("metric", "mean ± std over folds", "out-of-fold"):
        overall.add_column(col, justify="left" if col == "metric" else "right")
    for name in OVERALL:
        if name in result.summary:
            overall.add_row(name, _pm(result.summary[name]), fmt(result.oof_metrics.get(name)))
    out.print(overall)
    out.print(
        "over folds: each fold's model with its own thresholds, on its fold; out-of-fold: every "
        "row predicted by the model that did not train on it, thresholds tuned on them all"
    )

    support = result.targets.sum(axis=0).astype(int)
    oof_labels = result.oof_metrics["per_label"]
    per_label = Table(
        title="per label (prec, rec: means over folds; oof: out-of-fold)", title_justify="left"
    )
    for col in ("label", "f1 mean ± std", "prec", "rec", "support", "oof f1", "threshold"):
        per_label.add_column(col, justify="left" if col == "label" else "right")
    for j, name in enumerate(result.label_names):
        stats = result.summary["per_label"][name]
        per_label.add_row(
            name,
            _pm(stats["f1"], 3),
            fmt(stats["precision"]["mean"], 3),
            fmt(stats["recall"]["mean"], 3),
            str(support[j]),
            fmt(oof_labels[name]["f1"], 3),
            fmt(oof_labels[name]["threshold"], 3),
        )
    out.print(per_label)
    m = result.oof_metrics
    out.print(
        f"out-of-fold, thresholds tuned on all {len(result.targets)} rows: "
        f"macro F1 {fmt(m.get('macro_f1'))}   micro F1 {fmt(m.get('micro_f1'))}"
    )
