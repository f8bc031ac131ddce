"""``multihot baseline``: TF-IDF + logistic regression, the same report and run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import (
    DATA_OPTIONS,
    MinSupport,
    Seed,
    ThresholdStrategy,
    Top1Fallback,
    TrainFile,
    ValFile,
    ValFraction,
    app,
    friendly,
    out,
)
from multihot.cli.options import with_options
from multihot.cli.tables import print_report


@app.command()
@friendly
@with_options(DATA_OPTIONS)
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
    min_df: Annotated[
        int, typer.Option(help="Ignore n-grams in fewer texts (all kept when that leaves none).")
    ] = 2,
    max_features: Annotated[int, typer.Option(help="Keep at most this many n-grams.")] = 200_000,
    stem: Annotated[
        str | None,
        typer.Option(
            metavar="LANGUAGE",
            help="Stem each word (Snowball) before the n-grams, so running, runs and run are one "
            "feature: english, porter, french, german, spanish, ... (a wrong one lists them all).",
        ),
    ] = None,
    stop_words: Annotated[
        str | None,
        typer.Option(
            metavar="LIST",
            help="english: drop scikit-learn's English stop words before the n-grams.",
        ),
    ] = None,
    preprocess: Annotated[
        str | None,
        typer.Option(
            help="Text preparation steps before the vectorizer, comma-separated, as train's "
            "--preprocess (unicode, html, urls, emails, users, numbers, emoji, whitespace), or "
            "none; saved with the run.",
            show_default="unicode,html,whitespace",
        ),
    ] = None,
    thresholds: ThresholdStrategy = None,
    min_support: MinSupport = None,
    top1_fallback: Top1Fallback = None,
    val_fraction: ValFraction = None,
    seed: Seed = None,
    *,
    flags: dict[str, Any],
) -> None:
    """TF-IDF (word 1-2 grams) + one logistic regression per label, with the same thresholds and report."""
    from multihot.baseline.linear import BaselineConfig
    from multihot.classifier import Classifier

    output = output or Path("runs") / f"{train_file.stem}-baseline"
    clf = Classifier.train_baseline(
        train_file,
        val,
        output=output,
        baseline=BaselineConfig(
            ngram_max=ngram_max,
            min_df=min_df,
            max_features=max_features,
            C=c,
            stem=stem,
            stop_words=stop_words,
        ),
        preprocess=preprocess,
        thresholds=thresholds,
        min_support=min_support,
        top1_fallback=top1_fallback,
        val_fraction=val_fraction,
        seed=seed,
        **flags,
    )
    info = clf.metrics["baseline"]
    print_report(
        clf.metrics["validation"],
        title=f"validation (baseline, {info['num_features']} n-grams, {info['seconds']:.1f}s)",
    )
    out.print(f"saved {output}")
