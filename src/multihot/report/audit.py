"""The audit page: one self-contained HTML document that shows what ``multihot audit`` found.

:func:`render_audit_page` turns an :class:`~multihot.quality.result.AuditResult` into the page
written beside ``issues.jsonl``: where the data and the out-of-fold probabilities came from, the
data checks' findings (examples folded under each), each label's health worst first, the top
suspect (text, label) pairs of each label, and what to do next.

It is built from the run report's parts (:mod:`multihot.report.html`): the same head, stylesheet,
sorting script, Content-Security-Policy, sections and cards, so it loads nothing and reads without
JavaScript (the script only sorts tables). Every text, label name and path is user data and goes
through :func:`html.escape`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from multihot.artifacts.auditdir import (
    ISSUES,
    ISSUES_CSV,
    LABEL_STUDIO_CONFIG,
    LABEL_STUDIO_TASKS,
    SUMMARY,
    check_audit_dir,
    write_audit_dir,
)
from multihot.core.errors import MultihotError
from multihot.data.prepare import DataLike
from multihot.quality.audit import audit as audit_data
from multihot.quality.cleaning import check_cleaned_output
from multihot.quality.findings import Finding, LabelHealth, LabelIssue
from multihot.quality.result import AuditResult
from multihot.report.html import (
    document,
    duration_text,
    headline_card,
    page_section,
    settings_table,
    shortened,
    shown_number,
    sort_value,
)

PER_LABEL = 5
"""Suspects shown per label by default (``issues.jsonl`` holds them all)."""
OPEN_LABELS = 3
"""The worst labels' suspect lists are shown unfolded; the others are one click away."""
FIRST_COLUMNS = ("row", "label", "text", "labels")
"""A finding's example table puts these first, then any other field in the order met."""
HEALTHY, FAIR = 0.8, 0.5
"""A health bar is green from ``HEALTHY``, amber from ``FAIR``, red below."""
BAR_COLOURS = ("#c0392b", "#d68910", "#1e8449")

AUDIT_CSS = """
.severity { font-size: .8rem; font-weight: 600; padding: .05rem .45rem; border-radius: 4px; }
.severity.warning { background: #fdecc8; color: #7a4b00; }
.severity.info { background: #e3ecfa; color: #1f4f99; }
tr.clear td { color: var(--muted); }
td.message, td.text { text-align: left; max-width: 46rem; word-break: break-word; }
td.text { white-space: pre-wrap; }
table.examples { margin: .3rem 0 .5rem; font-size: .9rem; }
table.examples th, table.examples td { text-align: left; vertical-align: top; }
table.suspects td { vertical-align: top; }
details.examples summary { cursor: pointer; color: var(--accent); }
svg.bar { vertical-align: middle; margin-right: .4rem; }
.kind.missing { color: #1f4f99; font-weight: 600; }
.kind.wrong { color: #a1281e; font-weight: 600; }
"""
"""What the audit page adds to the report's stylesheet."""


# ----------------------------------------------------------------------------- formatting
def _share(value: float | None) -> str:
    return "\u2014" if value is None else f"{100 * value:.1f}%"


def _value(value: Any) -> str:
    """An example's field for reading: lists joined, mappings as JSON, long texts cut."""
    if value is None:
        return "\u2014"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return shown_number(value)
    return shortened(str(value))


def _bar(health: float) -> str:
    """A small inline bar of a health in [0, 1] (SVG: no script, no stylesheet needed)."""
    share = min(max(health, 0.0), 1.0)
    colour = BAR_COLOURS[(share >= FAIR) + (share >= HEALTHY)]
    return (
        '<svg class="bar" width="80" height="10" viewBox="0 0 100 10" role="img" '
        f'aria-label="health {share:.2f}"><rect width="100" height="10" fill="#e6e9ee"/>'
        f'<rect width="{100 * share:.1f}" height="10" fill="{colour}"/></svg>'
    )


def _table(headings: Sequence[str], rows: Iterable[str], *, attributes: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    return (
        f"<table{attributes}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# ------------------------------------------------------------------------------- sections
def _oof(oof: dict[str, Any]) -> dict[str, str]:
    """Where the out-of-fold probabilities came from, as lines for a table."""
    shown = {
        "model": str(oof.get("model", "\u2014")),
        "folds": shown_number(oof.get("folds")),
        "cv_dir": str(oof.get("cv_dir") or "not kept (the audit ran its own folds)"),
        "macro F1": shown_number(oof.get("macro_f1")),
        "micro F1": shown_number(oof.get("micro_f1")),
    }
    known = {"model", "folds", "cv_dir", "macro_f1", "micro_f1"}
    shown.update({k: str(v) for k, v in oof.items() if k not in known})
    return shown


def _overview(result: AuditResult) -> str:
    kinds = {"missing": 0, "wrong": 0}
    for issue in result.issues:
        kinds[issue.kind] += 1
    warnings = sum(f.severity == "warning" and f.count > 0 for f in result.findings)
    cards = [
        headline_card("texts", shown_number(result.rows), metric="rows"),
        headline_card("labels", shown_number(len(result.label_names)), metric="labels"),
        headline_card("warnings", shown_number(warnings), metric="warnings"),
        headline_card("label issues", shown_number(len(result.issues)), metric="issues"),
        headline_card("likely missing", shown_number(kinds["missing"]), metric="missing"),
        headline_card("likely wrong", shown_number(kinds["wrong"]), metric="wrong"),
        headline_card(
            "dataset health",
            shown_number(result.dataset_health),
            metric="dataset_health",
            value=sort_value(result.dataset_health),
        ),
        headline_card("audit time", duration_text(result.seconds), metric="seconds"),
    ]
    data = {"DATA": result.source, "VAL": result.val_source or "none", "texts": f"{result.rows:,}"}
    tables = settings_table("data", data)
    if result.oof:
        tables += settings_table("out-of-fold probabilities", _oof(result.oof))
    else:
        tables += (
            '<p class="empty">No out-of-fold probabilities: the audit ran the data checks '
            "only, so there are no label issues or per-label health.</p>"
        )
    body = f'<div class="cards">{"".join(cards)}</div>\n{tables}'
    return page_section("overview", "Overview", body)


def _examples(finding: Finding) -> str:
    """A finding's examples as a folded table, and its details as a folded one."""
    parts = []
    if finding.examples:
        seen = dict.fromkeys(k for k in FIRST_COLUMNS if any(k in e for e in finding.examples))
        for example in finding.examples:
            seen.update(dict.fromkeys(example))
        columns = list(seen)
        rows = (
            "<tr>"
            + "".join(f"<td>{escape(_value(example.get(c)))}</td>" for c in columns)
            + "</tr>"
            for example in finding.examples
        )
        count = len(finding.examples)
        table = _table(columns, rows, attributes=' class="examples"')
        plural = "example" if count == 1 else "examples"
        parts.append(
            f'<details class="examples"><summary>{count} {plural}</summary>{table}</details>'
        )
    if finding.details:
        parts.append(
            '<details class="examples"><summary>details</summary>'
            f"{settings_table('details', finding.details)}</details>"
        )
    return "".join(parts)


def _findings(findings: Sequence[Finding]) -> str:
    if not findings:
        return page_section("findings", "Data checks", '<p class="empty">No data checks ran.</p>')
    # Warnings first, then facts, then the checks that found nothing; each in the order run.
    ordered = sorted(findings, key=lambda f: (f.count == 0, f.severity != "warning"))
    rows = []
    for f in ordered:
        clear = ' class="clear"' if f.count == 0 else ""
        rows.append(
            f'<tr data-check="{escape(f.check)}" data-severity="{escape(f.severity)}"{clear}>'
            f'<td><span class="severity {escape(f.severity)}">{escape(f.severity)}</span></td>'
            f"<td>{escape(f.check)}</td>"
            f'<td class="message">{escape(f.message)}{_examples(f)}</td>'
            f'<td data-value="{f.count}">{shown_number(f.count)}</td></tr>'
        )
    note = (
        '<p class="note">Warnings cost the model or flatter its scores; the rest are facts worth '
        "a look. Open a row's examples to see the texts (rows are 0-based in their file).</p>"
    )
    table = _table(
        ["severity", "check", "finding", "count"], rows, attributes=' id="findings-table"'
    )
    return page_section("findings", "Data checks", note + table)


def _health(health: Sequence[LabelHealth]) -> str:
    if not health:
        body = (
            '<p class="empty">No per-label health: the audit had no out-of-fold probabilities.</p>'
        )
        return page_section("health", "Per-label health", body)
    partial = any(h.known is not None for h in health)
    headings = ["label", "positives", *["known"] * partial]
    headings += ["health", "est. noise", "est. missing", "wrong", "missing"]
    head = '<th data-type="text" tabindex="0" aria-sort="none">label</th>' + "".join(
        f'<th data-type="number" tabindex="0" aria-sort="none">{escape(h)}</th>'
        for h in headings[1:]
    )
    rows = []
    for h in sorted(health, key=lambda h: (h.health, h.label)):
        rows.append(
            f'<tr data-label="{escape(h.label)}"><td>{escape(h.label)}</td>'
            f'<td data-value="{h.positives}">{shown_number(h.positives)}</td>'
            + (f'<td data-value="{h.known}">{shown_number(h.known)}</td>' if partial else "")
            + f'<td data-value="{sort_value(h.health)}">{_bar(h.health)}{shown_number(h.health)}</td>'
            f'<td data-value="{sort_value(h.noise)}">{_share(h.noise)}</td>'
            f'<td data-value="{sort_value(h.missing_rate)}">{_share(h.missing_rate)}</td>'
            f'<td data-value="{h.wrong}">{shown_number(h.wrong)}</td>'
            f'<td data-value="{h.missing}">{shown_number(h.missing)}</td></tr>'
        )
    note = (
        '<p class="note">Worst health first (cleanlab\'s label quality score, 0 to 1). Estimated '
        "noise: the share of the texts given the label that should not have it; estimated "
        "missing: the share of the texts without it that should have it. Wrong and missing: the "
        "label issues found of each kind. Click a column to sort by it."
        + (
            " Known: the texts labelled for the label (partial labels); the estimates count "
            "those only, and an unknown pair is never an issue."
            if partial
            else ""
        )
        + "</p>"
    )
    table = (
        f'<div class="scroll"><table id="health-table" class="sortable"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    return page_section("health", "Per-label health", note + table)


def _label_order(result: AuditResult, by_label: dict[str, list[LabelIssue]]) -> list[str]:
    """Labels with issues: worst health first, then any others in the labels' order."""
    ranked = [h.label for h in sorted(result.health, key=lambda h: (h.health, h.label))]
    ranked += [name for name in result.label_names if name not in ranked]
    ranked += [name for name in by_label if name not in ranked]
    return [name for name in ranked if by_label.get(name)]


def _suspect_table(issues: Sequence[LabelIssue]) -> str:
    with_id = any(issue.id is not None for issue in issues)
    headings = ["#", "row", "kind", "score", "probability / threshold"]
    headings += ["id"] * with_id + ["text"]
    rows = []
    for rank, issue in enumerate(issues, 1):
        identifier = f"<td>{escape(issue.id or '')}</td>" if with_id else ""
        rows.append(
            f'<tr data-row="{issue.row}" data-kind="{issue.kind}"><td>{rank}</td>'
            f"<td>{issue.row}</td>"
            f'<td><span class="kind {issue.kind}">{issue.kind}</span></td>'
            f'<td data-value="{sort_value(issue.score)}">{shown_number(issue.score)}</td>'
            f"<td>{shown_number(issue.probability)} / {shown_number(issue.threshold)}</td>"
            f'{identifier}<td class="text">{escape(shortened(issue.text))}</td></tr>'
        )
    return _table(headings, rows, attributes=' class="suspects"')


def _suspects(result: AuditResult, per_label: int) -> str:
    if not result.issues:
        body = '<p class="empty">No label issues.</p>'
        return page_section("suspects", "Top suspects per label", body)
    by_label: dict[str, list[LabelIssue]] = {}
    for issue in result.issues:
        by_label.setdefault(issue.label, []).append(issue)
    blocks = []
    for i, name in enumerate(_label_order(result, by_label)):
        issues = sorted(by_label[name], key=lambda issue: -issue.score)  # stable: ties keep rank
        missing = sum(issue.given == 0 for issue in issues)
        summary = (
            f'{escape(name)} <span class="note">({len(issues):,} issues: {missing:,} likely '
            f"missing, {len(issues) - missing:,} likely wrong)</span>"
        )
        blocks.append(
            f'<details class="mistakes" data-label="{escape(name)}"'
            f"{' open' if i < OPEN_LABELS else ''}><summary>{summary}</summary>"
            f"{_suspect_table(issues[:per_label])}</details>"
        )
    note = (
        f'<p class="note">The {per_label} highest-scored issues of each label, worst label '
        "first. <em>missing</em>: the text is not given the label but the model is sure of it; "
        "<em>wrong</em>: the text is given the label but the model is sure it does not fit. "
        "Score: how likely the given label is wrong (0 to 1). Probability: the out-of-fold "
        "model's, against the label's threshold.</p>"
    )
    return page_section("suspects", "Top suspects per label", note + "\n".join(blocks))


def _next(result: AuditResult) -> str:
    issues, studio, config, csv, summary = (
        f"<code>{escape(name)}</code>"
        for name in (ISSUES, LABEL_STUDIO_TASKS, LABEL_STUDIO_CONFIG, ISSUES_CSV, SUMMARY)
    )
    if result.issues:
        body = (
            f"<p>Beside this page: {issues} holds every label issue, ranked, one JSON object "
            f"each (row, label, given, score, text); {studio} imports into Label Studio as "
            "tasks with the given labels and the model's suggestion as pre-annotations (paste "
            f"{config} into the project's labelling setup); {csv} is the same list for a "
            f"spreadsheet; {summary} holds the findings and the health table. Relabel from the "
            "top of the list down: the errors are most likely there. "
            "Or let multihot clean a copy: <code>multihot audit DATA --write-cleaned OUT "
            "--fix drop</code> (or <code>--fix flip</code>) drops the top issues' rows or flips "
            "their labels; DATA itself is never changed.</p>"
        )
    else:
        body = (
            f"<p>Beside this page: {summary} holds the findings. Fix the warnings above "
            "first; with out-of-fold probabilities (<code>--cv CV_DIR</code>, or the folds the "
            f"audit runs itself) the audit also ranks suspect labels into {issues}, {studio} "
            f"and {csv}, and <code>--write-cleaned OUT</code> writes a cleaned copy of DATA.</p>"
        )
    return page_section("next", "What next", body)


# ------------------------------------------------------------------------------- the page
NAV = (
    ("overview", "overview"),
    ("findings", "data checks"),
    ("health", "label health"),
    ("suspects", "suspects"),
    ("next", "what next"),
)


def render_audit_page(result: AuditResult, *, per_label: int = PER_LABEL) -> str:
    """One self-contained HTML document that shows ``result``.

    Args:
        result: the audit: its findings, label issues (most likely first) and per-label health;
            without out-of-fold probabilities the issues and health are empty.
        per_label: how many of each label's highest-scored issues to show.

    Returns:
        The HTML page: inline stylesheet, script and bars, nothing fetched from anywhere.

    Raises:
        MultihotError: ``per_label`` is below 1.

    Example:
        >>> from multihot.quality.findings import Finding
        >>> result = AuditResult("train.jsonl", None, 2, ["joy", "anger"], findings=[
        ...     Finding("empty_texts", "warning", "1 text has fewer than 3 characters", 1)])
        >>> page = render_audit_page(result)
        >>> page.startswith("<!DOCTYPE html>"), page.count("data-section=")
        (True, 5)
    """
    if per_label < 1:
        raise MultihotError(f"audit page: per_label must be at least 1, got {per_label}")
    sections = [
        _overview(result),
        _findings(result.findings),
        _health(result.health),
        _suspects(result, per_label),
        _next(result),
    ]
    nav = "".join(f'<a href="#{key}">{escape(name)}</a>' for key, name in NAV)
    val = f" (validation: {escape(result.val_source)})" if result.val_source else ""
    subtitle = (
        f"{result.rows:,} texts from {escape(result.source)}{val}, {len(result.label_names)} labels"
    )
    return document(f"Audit of {result.source}", "audit", subtitle, nav, sections, AUDIT_CSS)


def check_audit_output(
    output: str | Path,
    *,
    force: bool = False,
    cleaned: str | Path | None = None,
    data: str | Path | None = None,
) -> None:
    """Refuse, before anything runs, an audit directory (and a cleaned copy of ``data``) that
    could not be written, so that a long audit does not end in an error about its output."""
    check_audit_dir(output, force)
    if cleaned is not None and data is not None:
        check_cleaned_output(data, cleaned, force=force)


def save_audit(result: AuditResult, output: str | Path, *, force: bool = False) -> Path:
    """Write ``result`` as an audit directory (see :mod:`multihot.artifacts.auditdir`), its page
    included."""
    return write_audit_dir(
        output,
        summary=result.summary(),
        issues=[issue.to_dict() for issue in result.issues],
        label_names=result.label_names,
        row_labels=result.given,
        page_html=render_audit_page(result),
        force=force,
        row_known=result.known,
    )


def audit(
    data: DataLike,
    val: DataLike | None = None,
    *,
    output: str | Path | None = None,
    force: bool = False,
    **settings: Any,
) -> AuditResult:
    """Audit ``data`` (:func:`multihot.quality.audit.audit` says what ``settings`` can be) and,
    with ``output``, write the audit directory: issues.jsonl, summary.json, audit.html,
    issues.csv and the Label Studio files (an existing one only with ``force``).

    Example:
        >>> result = multihot.audit("train.jsonl", output="runs/train-audit")  # doctest: +SKIP
        >>> result.issues[0].label, result.issues[0].kind  # doctest: +SKIP
        ('admiration', 'missing')
    """
    if output is not None:
        check_audit_dir(output, force)
    result = audit_data(data, val, **settings)
    if output is not None:
        save_audit(result, output, force=force)
    return result
