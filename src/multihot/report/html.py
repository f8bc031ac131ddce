"""The HTML report: one self-contained page that shows how a run does on one labelled dataset.

:func:`render_report` turns :class:`~multihot.report.inputs.ReportInputs` into a single HTML
document: headline metrics, the run's config, a sortable per-label table, per-label curves,
calibration, label frequency, label pairs, training curves and each label's worst mistakes. The
stylesheet, the script and every figure are inlined and a Content-Security-Policy forbids any
fetch, so the file can be mailed, archived or opened offline and looks the same.

Texts and label names are user data: every one goes through :func:`html.escape`, and none is put
inside the script. Each section carries ``data-section`` and each figure ``data-plot``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from multihot.core.errors import MultihotError
from multihot.core.files import write_atomic
from multihot.data.writers import GENERATOR_TAG, check_html_output
from multihot.report import plots
from multihot.report.assets import CSS, JS
from multihot.report.inputs import ReportInputs
from multihot.report.mistakes import WORST, worst_mistakes
from multihot.scoring.calibration import ECE_BINS, expected_calibration_error, per_label_ece

HEADLINE = (
    ("macro_f1", "macro F1"),
    ("micro_f1", "micro F1"),
    ("macro_precision", "macro precision"),
    ("macro_recall", "macro recall"),
    ("macro_roc_auc", "macro ROC-AUC"),
    ("macro_ap", "macro AP"),
    ("hamming_loss", "Hamming loss"),
    ("subset_accuracy", "subset accuracy"),
)
"""The overall metrics shown first, in this order (key in ``metrics``, name shown)."""
LABEL_COLUMNS = (
    ("support", "support"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("ap", "AP"),
    ("roc_auc", "ROC-AUC"),
    ("threshold", "threshold"),
)
"""The per-label table's columns after the label (key in ``per_label``, heading), then ECE."""
CONFIG_SECTIONS = ("model", "train", "data", "baseline", "init_from", "versions")
"""Sections of config.json shown open; any other mapping (the encoder's config) is folded."""
TEXT_CHARS = 400
"""Longer texts are cut in the worst-mistakes lists (the page stays a few hundred KB)."""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
"""The page may load nothing: images are data URIs, style and script are inline."""


@dataclass(frozen=True)
class _Calibration:
    """ECE overall and per label of the probabilities shown, and before calibration if any."""

    ece: float
    label_ece: np.ndarray
    ece_before: float | None = None
    label_ece_before: np.ndarray | None = None


def _checked(inputs: ReportInputs) -> ReportInputs:
    """``inputs`` with its arrays as numpy arrays, once their shapes agree with the texts and
    labels and the probabilities are finite."""
    n, num_labels = len(inputs.texts), len(inputs.label_names)
    if n == 0 or num_labels == 0:
        raise MultihotError("report: no texts or no labels to report on")
    arrays: dict[str, Any] = {
        "targets": np.asarray(inputs.targets),
        "probs": np.asarray(inputs.probs, dtype=np.float64),
        "thresholds": np.asarray(inputs.thresholds, dtype=np.float64),
    }
    if inputs.uncalibrated_probs is not None:
        arrays["uncalibrated_probs"] = np.asarray(inputs.uncalibrated_probs, dtype=np.float64)
    if inputs.decisions is not None:
        arrays["decisions"] = np.asarray(inputs.decisions).astype(bool)
    for name, array in arrays.items():
        expected = (num_labels,) if name == "thresholds" else (n, num_labels)
        if array.shape != expected:
            raise MultihotError(
                f"report: {name} has shape {array.shape}, expected {expected} "
                f"({n} texts, {num_labels} labels)"
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise MultihotError(f"report: {name} hold NaN or infinite values")
    return dataclasses.replace(inputs, **arrays)


# ----------------------------------------------------------------------------- formatting
def shown_number(value: Any, digits: int = 3) -> str:
    """A metric for reading: fixed digits, integers as they are, "—" when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


def sort_value(value: Any) -> str:
    """A ``data-value`` attribute's content: the full-precision number, "" when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if not isinstance(value, (int, np.integer)) else str(int(value))


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _config_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_config_value(v) for v in value) or "[]"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _names(row: np.ndarray, label_names: Sequence[str]) -> str:
    return ", ".join(label_names[int(j)] for j in np.flatnonzero(row)) or "none"


def page_section(key: str, title: str, body: str) -> str:
    return (
        f'<section id="{key}" data-section="{key}">\n<h2>{escape(title)}</h2>\n{body}\n</section>'
    )


def _plot(kind: str, markup: str, wide: bool = False) -> str:
    """A figure; a ``wide`` one (a heatmap of many labels) scrolls rather than shrinks."""
    classes = "plot heatmap" if wide else "plot"
    return f'<figure class="{classes}" data-plot="{kind}">{markup}</figure>'


def headline_card(title: str, shown: str, **data: str) -> str:
    """A headline figure; ``data`` becomes ``data-*`` attributes on the value."""
    attributes = "".join(f' data-{k}="{escape(v)}"' for k, v in data.items())
    return (
        f'<div class="card"><span class="name">{escape(title)}</span>'
        f'<span class="value"{attributes}>{escape(shown)}</span></div>'
    )


# ------------------------------------------------------------------------------- sections
def _headline(inputs: ReportInputs, calibration: _Calibration) -> str:
    metrics = inputs.metrics
    cards = [
        headline_card(
            name, shown_number(metrics.get(key)), metric=key, value=sort_value(metrics.get(key))
        )
        for key, name in HEADLINE
    ]
    if calibration.ece_before is not None:
        cards.append(
            headline_card(
                "ECE before calibration",
                shown_number(calibration.ece_before, 4),
                ece="before",
                value=sort_value(calibration.ece_before),
            )
        )
    name = "ECE" if calibration.ece_before is None else "ECE after calibration"
    cards.append(
        headline_card(
            name, shown_number(calibration.ece, 4), ece="overall", value=sort_value(calibration.ece)
        )
    )
    cards.append(headline_card("texts", shown_number(len(inputs.texts)), metric="num_texts"))
    cards.append(
        headline_card("labels", shown_number(len(inputs.label_names)), metric="num_labels")
    )
    cards.append(
        headline_card("training time", duration_text(inputs.train_seconds), metric="train_seconds")
    )
    return page_section("metrics", "Headline metrics", f'<div class="cards">{"".join(cards)}</div>')


def settings_table(caption: str, mapping: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(_config_value(v))}</td></tr>"
        for k, v in mapping.items()
    )
    return f'<table class="config"><caption>{escape(caption)}</caption>{rows}</table>'


def _config(inputs: ReportInputs) -> str:
    config = inputs.config or {}
    run = {k: v for k, v in config.items() if not isinstance(v, dict)}
    run["training time"] = duration_text(inputs.train_seconds)
    parts = [settings_table("run", run)]
    sections = [k for k in CONFIG_SECTIONS if isinstance(config.get(k), dict)]
    parts += [settings_table(k, config[k]) for k in sections]
    for key, value in config.items():
        if isinstance(value, dict) and key not in CONFIG_SECTIONS:
            parts.append(
                f"<details><summary>{escape(str(key))}</summary>"
                f"{settings_table(str(key), value)}</details>"
            )
    if not config:
        parts.append('<p class="empty">The run recorded no config.</p>')
    return page_section("config", "Configuration", "\n".join(parts))


def _cell(value: Any, digits: int) -> str:
    return f'<td data-value="{sort_value(value)}">{shown_number(value, digits)}</td>'


def _label_table(inputs: ReportInputs, calibration: _Calibration) -> str:
    if calibration.label_ece_before is None:
        eces = {"ECE": calibration.label_ece}
    else:
        eces = {"ECE before": calibration.label_ece_before, "ECE after": calibration.label_ece}
    per_label = inputs.metrics.get("per_label", {})
    columns: tuple[tuple[str, str], ...] = LABEL_COLUMNS
    if any("known" in scores for scores in per_label.values()):  # partial labels
        columns = (LABEL_COLUMNS[0], ("known", "known"), *LABEL_COLUMNS[1:])
    head = '<th data-type="text" tabindex="0" aria-sort="none">label</th>' + "".join(
        f'<th data-type="number" tabindex="0" aria-sort="none">{escape(heading)}</th>'
        for heading in [*(heading for _, heading in columns), *eces]
    )
    support = inputs.targets.sum(axis=0)
    rows = []
    for j, name in enumerate(inputs.label_names):
        known = {"support": int(support[j]), "threshold": float(inputs.thresholds[j])}
        scores = {**known, **per_label.get(name, {})}
        cells = [_cell(scores.get(key), 3) for key, _ in columns]
        cells += [_cell(float(ece[j]), 4) for ece in eces.values()]
        rows.append(f'<tr data-label="{escape(name)}"><td>{escape(name)}</td>{"".join(cells)}</tr>')
    table = (
        f'<div class="scroll"><table id="label-table" class="sortable"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    note = (
        '<p class="note">Click a column to sort by it (again to reverse). Precision, recall and F1 '
        "at each label's threshold; AP and ROC-AUC of its probabilities; ECE over "
        f"{ECE_BINS} bins. \u2014: undefined (no positives, or no negatives).</p>"
    )
    return page_section("labels", "Per label", note + table)


def shows_lengths(metrics: dict[str, Any]) -> bool:
    """Whether the metrics' ``by_length`` (:meth:`multihot.Classifier.score`) says more than the
    overall figures: texts of several lengths, or texts not read to the end."""
    by_length = metrics.get("by_length") or {}
    buckets = by_length.get("buckets", [])
    return len(buckets) > 1 or any(b.get("cut_texts") for b in buckets)


def _lengths(inputs: ReportInputs) -> str:
    by_length = inputs.metrics["by_length"]
    unit, read = by_length["unit"], by_length.get("read_up_to")
    headings = [unit, "texts", "micro F1", "macro F1", "subset accuracy"]
    headings += ["partly unread"] if read else []
    rows = []
    for b in by_length["buckets"]:
        cells = [f"<td>{escape(b['tokens'])}</td>", f"<td>{b['texts']}</td>"]
        cells += [_cell(b[key], 3) for key in ("micro_f1", "macro_f1", "subset_accuracy")]
        cells += [f"<td>{b['cut_texts']}</td>"] if read else []
        rows.append(f'<tr data-bucket="{escape(b["tokens"])}">{"".join(cells)}</tr>')
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    note = (
        f'<p class="note">Texts grouped by length in {escape(unit)}: up to one window of the '
        "encoder, then up to 2, 4, 8... windows; macro F1 over the labels present in the group."
        + (
            f" The model reads up to {read} {escape(unit)} of a text; longer ones are partly "
            "unread (--long-text chunk and --max-chunks read more)."
            if read
            else ""
        )
        + "</p>"
    )
    table = f'<table id="length-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return page_section("lengths", "By text length", note + table)


def _curves(inputs: ReportInputs) -> str:
    args = (inputs.label_names, inputs.targets, inputs.probs, inputs.thresholds)
    pr = [_plot("pr", svg) for svg in plots.pr_curves(*args)]
    f1 = [_plot("f1-threshold", svg) for svg in plots.f1_curves(*args)]
    body = (
        '<h3>Precision-recall</h3><p class="note">Red dot: the label\'s threshold; dashed: '
        "the share of texts that have the label (what a random ranking gets).</p>"
        + "".join(pr)
        + '<h3>F1 against threshold</h3><p class="note">Dashed: the label\'s threshold.</p>'
        + "".join(f1)
    )
    return page_section("curves", "Per-label curves", body)


def _calibration_section(inputs: ReportInputs, calibration: _Calibration) -> str:
    diagram = plots.reliability_diagram(inputs.targets, inputs.probs, inputs.uncalibrated_probs)
    pairs = f"{inputs.probs.size:,} (text, label) pairs in {ECE_BINS} bins"
    if calibration.ece_before is None:
        summary = (
            f'<p>Expected calibration error over {pairs}: <strong data-ece="overall" '
            f'data-value="{sort_value(calibration.ece)}">{shown_number(calibration.ece, 4)}</strong>.</p>'
        )
    else:
        summary = (
            f"<p>Expected calibration error over {pairs}: "
            f'<strong data-ece="before" data-value="{sort_value(calibration.ece_before)}">'
            f"{shown_number(calibration.ece_before, 4)}</strong> before calibration, "
            f'<strong data-ece="overall" data-value="{sort_value(calibration.ece)}">'
            f"{shown_number(calibration.ece, 4)}</strong> after.</p>"
        )
    order = np.argsort(-np.nan_to_num(calibration.label_ece, nan=-1.0))[:5]
    worst = ", ".join(
        f"{escape(inputs.label_names[j])} ({shown_number(float(calibration.label_ece[j]), 4)})"
        for j in order
        if not math.isnan(calibration.label_ece[j])
    )
    per_label = (
        f'<p class="note">Per label: the ECE column of the per-label table. Least calibrated: '
        f"{worst or 'none'}.</p>"
    )
    body = summary + per_label + _plot("reliability", diagram)
    return page_section("calibration", "Calibration", body)


def _frequency(inputs: ReportInputs) -> str:
    per_label = inputs.metrics.get("per_label", {})
    support = inputs.targets.sum(axis=0)
    f1 = np.array([per_label.get(n, {}).get("f1") for n in inputs.label_names], dtype=float)
    svg = plots.support_vs_f1(inputs.label_names, support, f1)
    note = '<p class="note">Rare labels are usually where F1 is lowest.</p>'
    return page_section("frequency", "Label frequency and F1", note + _plot("frequency", svg))


def _pairs(inputs: ReportInputs, decisions: np.ndarray) -> str:
    names, targets = inputs.label_names, inputs.targets
    body = (
        "<h3>Co-occurrence of the true labels</h3>"
        '<p class="note">Row <em>i</em>, column <em>j</em>: of the texts that have label '
        "<em>i</em>, the share that also have <em>j</em>.</p>"
        + _plot("cooccurrence", plots.cooccurrence_heatmap(names, targets), wide=True)
        + "<h3>Confusion between labels</h3>"
        '<p class="note">Row <em>i</em>, column <em>j</em>: of the texts that have label '
        "<em>i</em> but not <em>j</em>, the share where <em>j</em> fired anyway.</p>"
        + _plot("confusion", plots.false_fire_heatmap(names, targets, decisions), wide=True)
    )
    return page_section("pairs", "Label pairs", body)


def _training(inputs: ReportInputs) -> str:
    metric = (inputs.config.get("train") or {}).get("metric") or "macro_f1"
    svg = plots.training_curves(inputs.history, metric=metric)
    members = {r.get("member") for r in inputs.history} - {None}
    facts = (
        f'<p class="note">{len(inputs.history)} evaluation(s)'
        + (f" over {len(members)} seed-ensemble members" if members else "")
        + f"; training time {escape(duration_text(inputs.train_seconds))}.</p>"
    )
    if svg is None:
        body = '<p class="empty">The run recorded no training history.</p>'
    else:
        body = facts + _plot("training", svg)
    return page_section("training", "Training", body)


def shortened(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "\u2026"


def _example_list(
    kind: str, rows: np.ndarray, j: int, inputs: ReportInputs, beside: tuple[str, np.ndarray]
) -> str:
    """An ``<ol class="examples KIND">`` of texts with label ``j``'s probability; under each,
    ``beside``'s name and the labels its row of 0/1 names (true labels, or those that fired)."""
    if not len(rows):
        return f'<p class="empty">None.</p><ol class="examples {kind}"></ol>'
    what, matrix = beside
    items = [
        f'<li data-row="{int(i)}"><span class="prob">{inputs.probs[i, j]:.3f}</span>'
        f'<span class="text">{escape(shortened(inputs.texts[i]))}</span><span class="also">'
        f"{escape(what)}: {escape(_names(matrix[i], inputs.label_names))}</span></li>"
        for i in rows
    ]
    return f'<ol class="examples {kind}">{"".join(items)}</ol>'


def _mistakes(inputs: ReportInputs, decisions: np.ndarray) -> str:
    found = worst_mistakes(inputs.targets, inputs.probs, decisions, k=WORST)
    true = ("true labels", inputs.targets.astype(bool))
    fired = ("fired", decisions)
    blocks = []
    for j, (name, mistakes) in enumerate(zip(inputs.label_names, found, strict=True)):
        blocks.append(
            f'<details class="mistakes" data-label="{escape(name)}">'
            f'<summary>{escape(name)} <span class="note">'
            f"({mistakes.num_false_positives:,} false positives, "
            f"{mistakes.num_false_negatives:,} false negatives)</span></summary>"
            '<div class="columns"><div><h4>Fired, but not true (highest probability first)</h4>'
            f"{_example_list('fp', mistakes.false_positives, j, inputs, true)}</div>"
            "<div><h4>True, but did not fire (lowest probability first)</h4>"
            f"{_example_list('fn', mistakes.false_negatives, j, inputs, fired)}</div>"
            "</div></details>"
        )
    note = (
        f'<p class="note">The worst {WORST} of each per label. Under a false positive, the labels '
        "the text really has; under a false negative, the labels that fired instead.</p>"
    )
    return page_section("mistakes", "Worst mistakes per label", note + "\n".join(blocks))


# ------------------------------------------------------------------------------- the page
NAV = (
    ("metrics", "metrics"),
    ("config", "config"),
    ("labels", "per label"),
    ("lengths", "by length"),
    ("curves", "curves"),
    ("calibration", "calibration"),
    ("frequency", "frequency"),
    ("pairs", "label pairs"),
    ("training", "training"),
    ("mistakes", "mistakes"),
)


def render_report(inputs: ReportInputs) -> str:
    """One self-contained HTML document that reports on ``inputs``.

    Args:
        inputs: the texts, targets, probabilities, thresholds, metrics and run information;
            ``targets``, ``probs`` (and ``uncalibrated_probs``, ``decisions`` when given) are
            ``(n_texts, n_labels)``, ``thresholds`` is ``(n_labels,)``.

    Returns:
        The HTML page: inline CSS, script and figures, nothing fetched from anywhere.

    Raises:
        MultihotError: When the arrays' shapes disagree with the texts and labels, or
            matplotlib (the ``report`` extra) is not installed.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> targets = (rng.random((40, 2)) < 0.4).astype(int)
        >>> probs = np.clip(0.6 * targets + 0.4 * rng.random((40, 2)), 0, 1)
        >>> from multihot.scoring.metrics import compute_metrics
        >>> page = render_report(ReportInputs(
        ...     "demo", "test.jsonl", ["a", "b"], [f"text {i}" for i in range(40)], targets,
        ...     probs, np.array([0.5, 0.5]), compute_metrics(targets, probs, 0.5, ["a", "b"])))
        >>> page.startswith("<!DOCTYPE html>"), page.count("data-section=")
        (True, 9)
    """
    inputs = _checked(inputs)
    targets = inputs.targets
    decisions = inputs.probs >= inputs.thresholds if inputs.decisions is None else inputs.decisions
    before = inputs.uncalibrated_probs
    calibration = _Calibration(
        expected_calibration_error(targets, inputs.probs),
        per_label_ece(targets, inputs.probs),
        None if before is None else expected_calibration_error(targets, before),
        None if before is None else per_label_ece(targets, before),
    )
    sections = [
        _headline(inputs, calibration),
        _config(inputs),
        _label_table(inputs, calibration),
        *([_lengths(inputs)] if shows_lengths(inputs.metrics) else []),
        _curves(inputs),
        _calibration_section(inputs, calibration),
        _frequency(inputs),
        _pairs(inputs, decisions),
        _training(inputs),
        _mistakes(inputs, decisions),
    ]
    nav = "".join(
        f'<a href="#{key}">{escape(name)}</a>'
        for key, name in NAV
        if key != "lengths" or shows_lengths(inputs.metrics)
    )
    return document(
        inputs.title,
        "report",
        f"{len(inputs.texts):,} texts from {escape(inputs.source)}, "
        f"{len(inputs.label_names)} labels",
        nav,
        sections,
    )


def document(
    title: str, kind: str, subtitle: str, nav: str, sections: list[str], css: str = ""
) -> str:
    """The HTML document every multihot page is: ``title`` (plain text, escaped here), the
    ``subtitle`` and ``nav`` (HTML) in the header, the ``sections`` (HTML) in the main part, the
    report's stylesheet (and ``css`` after it) and script inline, nothing fetched from anywhere."""
    title = escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{GENERATOR_TAG}
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{title} \u2014 multihot {kind}</title>
<link rel="icon" href="data:,">
<style>{CSS}{css}</style>
</head>
<body data-state="loading">
<header>
<h1>{title}</h1>
<p>{subtitle}</p>
<nav>{nav}</nav>
</header>
<main>
{chr(10).join(sections)}
</main>
<script>{JS}</script>
</body>
</html>
"""


def write_report(inputs: ReportInputs, path: Path, *, force: bool = False) -> Path:
    """Render the report and write it to ``path`` all or nothing (a failure while rendering or
    writing leaves any earlier file there as it was, and no partial one).

    Args:
        inputs: see :func:`render_report`.
        path: the HTML file to write (``.html`` or ``.htm``).
        force: replace an existing file that is not a page multihot wrote.

    Returns:
        ``path``.

    Raises:
        MultihotError: ``path`` cannot hold the report, see
            :func:`~multihot.data.writers.check_html_output`; checked before rendering.
    """
    path = check_html_output(path, force=force)
    write_atomic(path, render_report(inputs))
    return path
