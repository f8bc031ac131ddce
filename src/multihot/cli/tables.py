"""Printing tables: the overall and per-label metrics, what re-tuning changed, calibration error."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from multihot.cli.app import out
from multihot.scoring.metrics import metric_is_better


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_report(metrics: dict[str, Any], title: str) -> None:
    overall = Table(title=f"overall: {title}", show_header=True, title_justify="left")
    for col in ("", "micro", "macro", "weighted", "samples"):
        overall.add_column(col, justify="right" if col else "left")
    for name in ("f1", "precision", "recall"):
        overall.add_row(
            name,
            *(
                fmt(metrics.get(f"{avg}_{name}"))
                for avg in ("micro", "macro", "weighted", "samples")
            ),
        )
    overall.add_row(
        "roc_auc", fmt(metrics.get("micro_roc_auc")), fmt(metrics.get("macro_roc_auc")), "", ""
    )
    overall.add_row(
        "avg precision", fmt(metrics.get("micro_ap")), fmt(metrics.get("macro_ap")), "", ""
    )
    out.print(overall)
    out.print(
        f"hamming loss {fmt(metrics.get('hamming_loss'))}   subset accuracy {fmt(metrics.get('subset_accuracy'))}   "
        f"texts {metrics.get('num_texts')}   labels {metrics.get('num_labels')}"
    )
    per_label = Table(title="per label", title_justify="left")
    rows = metrics.get("per_label", {})
    # With partial labels each label also says how many texts were labelled for it.
    partial = any("known" in m for m in rows.values())
    columns = ("label", "precision", "recall", "f1", "support", "known", "auc", "threshold")
    for col in columns if partial else tuple(c for c in columns if c != "known"):
        per_label.add_column(col, justify="left" if col == "label" else "right")
    for name, m in rows.items():
        per_label.add_row(
            name,
            fmt(m["precision"], 3),
            fmt(m["recall"], 3),
            fmt(m["f1"], 3),
            str(m["support"]),
            *([str(m.get("known", ""))] if partial else []),
            fmt(m["roc_auc"], 3),
            fmt(m["threshold"], 3),
        )
    out.print(per_label)
    print_length_buckets(metrics.get("by_length"))


def print_length_buckets(by_length: dict[str, Any] | None) -> None:
    """The metrics by text length (:meth:`multihot.Classifier.score`), with what was not read."""
    if not by_length or len(by_length["buckets"]) < 2 and not _any_cut(by_length):
        return  # one bucket says nothing the overall table does not
    unit = by_length["unit"]
    read = by_length.get("read_up_to")
    title = f"by length in {unit}" + (f" (read up to {read} {unit})" if read else "")
    table = Table(title=title, title_justify="left")
    columns = [unit, "texts", "micro f1", "macro f1", "subset acc"]
    if read:
        columns.append("partly unread")
    for col in columns:
        table.add_column(col, justify="left" if col == unit else "right")
    for b in by_length["buckets"]:
        row = [
            b["tokens"],
            str(b["texts"]),
            fmt(b["micro_f1"], 3),
            fmt(b["macro_f1"], 3),
            fmt(b["subset_accuracy"], 3),
        ]
        if read:
            row.append(str(b["cut_texts"]))
        table.add_row(*row)
    out.print(table)


def _any_cut(by_length: dict[str, Any]) -> bool:
    return any(b.get("cut_texts") for b in by_length["buckets"])


def print_train_report(clf) -> None:
    # A single model has one best evaluation; each member of an ensemble has its own.
    best = clf.metrics.get("members") or [clf.metrics["best"]]
    epochs = ", ".join(f"{b['epoch']:g}" for b in best)
    members = f" of its {len(best)} members" if len(best) > 1 else ""
    print_report(
        clf.metrics["validation"],
        title=f"validation ({best[0]['metric']} best at epoch {epochs}{members})",
    )
    print_baseline_comparison(clf.metrics, best[0]["metric"])


def print_baseline_comparison(metrics: dict[str, Any], metric: str) -> None:
    """The model beside the linear baseline fitted on the same split, and which one wins."""
    baseline = metrics.get("linear_baseline")
    if not baseline or "error" in baseline:
        return
    model = metrics["validation"]
    names = list(dict.fromkeys([metric, "macro_f1", "micro_f1"]))
    table = Table(
        title="validation, beside the linear baseline on the same split", title_justify="left"
    )
    for col in ("", "this model", f"baseline (TF-IDF + LR, {baseline['seconds']:.0f} s)"):
        table.add_column(col, justify="right" if col else "left")
    for name in names:
        table.add_row(name, fmt(model.get(name)), fmt(baseline.get(name)))
    out.print(table)
    if metric_is_better(metric, baseline[metric], model[metric]):
        out.print(
            f"[bold]The linear baseline beats this model on validation {metric} "
            f"({fmt(baseline[metric])} against {fmt(model[metric])}).[/bold] Try more epochs, a "
            "pretrained encoder (--encoder minilm), or use `multihot baseline`."
        )


def print_threshold_changes(names: list[str], before, after) -> None:
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if abs(a - b) > 1e-9]
    if not changed:
        out.print("thresholds unchanged")
        return
    table = Table(title=f"thresholds changed: {len(changed)} of {len(names)}", title_justify="left")
    for col in ("label", "before", "after"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for i in changed:
        table.add_row(names[i], fmt(float(before[i]), 3), fmt(float(after[i]), 3))
    out.print(table)


def print_calibration(summary: dict[str, Any]) -> None:
    """Expected calibration error before and after, overall and per label."""
    table = Table(
        title=f"calibration error (ECE): {fmt(summary['ece_before'])} before, "
        f"{fmt(summary['ece_after'])} after",
        title_justify="left",
    )
    for col in ("label", "ECE before", "ECE after"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for name, row in summary["per_label"].items():
        table.add_row(name, fmt(row["ece_before"]), fmt(row["ece_after"]))
    out.print(table)
