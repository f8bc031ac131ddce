"""The audit directory that ``multihot audit -o DIR`` leaves: its layout, and the one place that
knows its file names.

```
issues.jsonl        the label issues, most likely first: one JSON object per (text, label) pair
                    with row (0-based in DATA), label, given (0/1), kind (missing or wrong), score,
                    probability, threshold, id (when DATA has an id column) and text
summary.json        everything else the audit found: the data checks' findings, each label's
                    health, the issue counts, where the out-of-fold probabilities came from
audit.html          the page (made by the report layer): findings, label health, top suspects
issues.csv          issues.jsonl as a spreadsheet: the same columns, text last
label-studio.json   Label Studio tasks to import: one per text with an issue, its given labels
                    in data (with partial labels, also the labels it was labelled for), the
                    suggestion (those labels with the text's issues flipped) as a
                    pre-annotation of model version "multihot-audit"
label-studio.xml    the labelling configuration those tasks need (paste it into the project)
```

The directory is written whole (:func:`multihot.core.files.write_dir_atomic`): a failure or a kill
leaves the previous directory, or none, never part of one. A directory that holds anything but an
earlier audit is never replaced, even with ``force``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multihot.artifacts.rundir import check_regular, listing, read_json
from multihot.core.errors import RunDirError
from multihot.core.files import dumps, strict_loads, write_atomic, write_dir_atomic
from multihot.data.labelstudio import choices_prediction, labelling_config, task_labels
from multihot.data.writers import records_csv, records_jsonl

ISSUES, SUMMARY, PAGE = "issues.jsonl", "summary.json", "audit.html"
ISSUES_CSV = "issues.csv"
LABEL_STUDIO_TASKS, LABEL_STUDIO_CONFIG = "label-studio.json", "label-studio.xml"
AUDIT_FILES = frozenset(
    {ISSUES, SUMMARY, PAGE, ISSUES_CSV, LABEL_STUDIO_TASKS, LABEL_STUDIO_CONFIG}
)
"""Every name an audit writes in its directory (the page only when there is one)."""

MODEL_VERSION = "multihot-audit"
"""The model version of the Label Studio pre-annotations (how a project tells them apart)."""
_REQUIRED_KEYS = ("row", "label", "given", "score")


def check_audit_dir(path: str | Path, force: bool = False) -> Path:
    """Refuse an audit directory that would replace something: it may be new, empty, or (with
    ``force``) an earlier audit.

    Raises:
        RunDirError: ``path`` is a file; a directory holding an earlier audit, without ``force``;
            a directory holding anything else (named), whatever ``force`` says.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; expected a new or empty one")
    names = sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
    foreign = [name for name in names if name not in AUDIT_FILES]
    if foreign:
        shown = listing(foreign)
        raise RunDirError(
            f"{path}: holds files that are not part of an audit ({shown}); an audit replaces "
            "its whole directory, so give it a new or empty one"
        )
    if names and not force:
        raise RunDirError(
            f"{path}: holds an earlier audit; replace it with --force (force=True in Python), "
            "or choose a new or empty directory"
        )
    return path


def write_audit_dir(
    path: str | Path,
    *,
    summary: Mapping[str, Any],
    issues: Sequence[Mapping[str, Any]],
    label_names: Sequence[str],
    row_labels: Sequence[Sequence[str]],
    page_html: str | None = None,
    force: bool = False,
    row_known: Sequence[Sequence[str] | None] | None = None,
) -> Path:
    """Write the audit directory in one step (the layout is in the module docstring).

    Args:
        path: the directory; new, empty, or an earlier audit with ``force``.
        summary: ``summary.json`` (``AuditResult.summary()``).
        issues: the label issues, most likely first, as ``LabelIssue.to_dict()`` gives them.
        label_names: every label, in order: the choices of the Label Studio configuration.
        row_labels: the given label names of each row of DATA (``Dataset.labels``): what the
            Label Studio tasks show as given and flip into the suggestion.
        page_html: the page's HTML, or None to write no page.
        force: replace an earlier audit in ``path``.
        row_known: partial labels: the labels each row of DATA was labelled for (None: all), as
            ``Dataset.known``; the tasks then show them. None when every row is fully labelled.

    Returns:
        ``path``.

    Raises:
        RunDirError: as :func:`check_audit_dir`.
        ValueError: an issue's row is not a row of ``row_labels``.

    Example:
        >>> issue = {"row": 0, "label": "joy", "given": 0, "kind": "missing", "score": 0.9,
        ...          "probability": 0.93, "threshold": 0.4, "text": "so happy!"}
        >>> out = write_audit_dir("audit", summary={"rows": 1}, issues=[issue],
        ...                       label_names=["joy", "anger"], row_labels=[[]])
        >>> read_issues(out)[0]["label"]
        'joy'
    """
    path = check_audit_dir(path, force)
    # Everything is rendered before the directory is touched: a bad value fails here.
    files = {
        SUMMARY: dumps(dict(summary)),
        ISSUES: issues_jsonl(issues),
        ISSUES_CSV: issues_csv(issues),
    }
    tasks = label_studio_tasks(issues, row_labels, row_known)
    names = list(dict.fromkeys([*label_names, *task_labels(tasks)]))
    files[LABEL_STUDIO_TASKS] = dumps(tasks)
    files[LABEL_STUDIO_CONFIG] = label_studio_config(names, partial=row_known is not None)
    if page_html is not None:
        files[PAGE] = page_html

    def fill(tmp: Path) -> None:
        for name, text in files.items():
            write_text(tmp / name, text)

    write_dir_atomic(path, fill)
    return path


def write_text(path: Path, text: str) -> None:
    """One file of the directory being filled (one place, so a test can make writing fail)."""
    write_atomic(path, text)


def issues_jsonl(issues: Sequence[Mapping[str, Any]]) -> str:
    """``issues.jsonl``: one compact JSON object per issue, in the order given."""
    return records_jsonl(issues)


def issues_csv(issues: Sequence[Mapping[str, Any]]) -> str:
    """``issues.csv``: a header, then one row per issue; the columns are the issues' keys in
    the order they first appear, ``text`` last. A missing value (an id, a NaN) is empty."""
    return records_csv(issues, empty_columns=("row", "label", "given", "kind", "score", "text"))


def label_studio_tasks(
    issues: Sequence[Mapping[str, Any]],
    row_labels: Sequence[Sequence[str]],
    row_known: Sequence[Sequence[str] | None] | None = None,
) -> list[dict[str, Any]]:
    """Label Studio import tasks: one per text with an issue, in the order of its first issue.

    ``data`` holds the ``text`` (what the configuration labels), its ``row`` in DATA, its ``id``
    when the issues carry one, its labels as ``given`` and what the audit ``doubts`` (both
    strings the configuration shows), and its best issue's ``score`` and ``rank`` (1 = most
    likely) to sort by. The one prediction is the suggestion: the given labels, with those the
    audit thinks wrong removed and those it thinks missing added. With partial labels
    (``row_known``), ``data`` also holds ``labelled_for``: the labels the text was labelled for
    (``every label`` for a fully labelled one); the others are not "no", only unknown.

    Raises:
        ValueError: an issue's row is not a row of ``row_labels``.
    """
    by_row: dict[int, list[tuple[int, Mapping[str, Any]]]] = {}
    for rank, issue in enumerate(issues, start=1):
        row = int(issue["row"])
        if not 0 <= row < len(row_labels):
            raise ValueError(f"issue {rank}: row {row} is not a row of the data")
        by_row.setdefault(row, []).append((rank, issue))
    return [
        _task(row, found, list(row_labels[row]), _labelled_for(row_known, row))
        for row, found in by_row.items()
    ]


def _labelled_for(row_known: Sequence[Sequence[str] | None] | None, row: int) -> str | None:
    """What a task shows as the labels its text was labelled for; None without partial labels."""
    if row_known is None:
        return None
    known = row_known[row]
    return "every label" if known is None else ", ".join(known) or "(none)"


def _task(
    row: int,
    found: list[tuple[int, Mapping[str, Any]]],
    given: list[str],
    labelled_for: str | None = None,
) -> dict[str, Any]:
    """One task: ``found`` is the row's issues with their ranks, ``given`` its labels,
    ``labelled_for`` what it shows of the labels the text was labelled for (partial labels)."""
    wrong = {str(i["label"]) for _, i in found if i["given"]}
    missing = [str(i["label"]) for _, i in found if not i["given"]]
    suggestion = [name for name in given if name not in wrong]
    suggestion += [name for name in dict.fromkeys(missing) if name not in suggestion]
    first_rank, first = found[0]
    score = max(float(i["score"]) for _, i in found)
    data: dict[str, Any] = {"text": first["text"], "row": row}
    if first.get("id") is not None:
        data["id"] = first["id"]
    doubts = [
        f"{i['label']}: {'wrong' if i['given'] else 'missing'} (score {float(i['score']):.2f})"
        for _, i in found
    ]
    data["given"] = ", ".join(given) or "(none)"
    if labelled_for is not None:
        data["labelled_for"] = labelled_for
    data["doubts"] = "; ".join(doubts)
    data.update(score=score, rank=first_rank)
    prediction = choices_prediction(
        suggestion, model_version=MODEL_VERSION, score=score, result_id=f"r{row}"
    )
    return {"data": data, "predictions": [prediction]}


def label_studio_config(label_names: Sequence[str], *, partial: bool = False) -> str:
    """The labelling configuration of the tasks: the text, its given labels (with ``partial``,
    the labels it was labelled for) and the audit's doubts shown above one multiple-choice
    control with a choice per label."""
    shown = [("Labels as given", "given"), ("What the audit doubts", "doubts")]
    if partial:
        shown.insert(1, ("Labelled for (the others are unknown)", "labelled_for"))
    return labelling_config(label_names, shown)


def read_issues(path: str | Path) -> list[dict[str, Any]]:
    """The issues of ``issues.jsonl`` in an audit directory, most likely first.

    Raises:
        RunDirError: the file is missing, or a line is not an issue (naming the line).
    """
    file = Path(path) / ISSUES
    check_regular(file)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RunDirError(f"{file}: missing; not an audit directory") from None
    except UnicodeDecodeError:
        raise RunDirError(f"{file}: not UTF-8 text") from None
    issues = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = strict_loads(line)
        except ValueError:
            raise RunDirError(f"{file}: line {n}: corrupt JSON") from None
        if not isinstance(record, dict) or any(k not in record for k in _REQUIRED_KEYS):
            raise RunDirError(
                f"{file}: line {n}: not a label issue (expected an object with "
                + ", ".join(_REQUIRED_KEYS)
                + ")"
            )
        issues.append(record)
    return issues


def read_summary(path: str | Path) -> dict[str, Any]:
    """``summary.json`` of an audit directory.

    Raises:
        RunDirError: missing or corrupt.
    """
    return read_json(Path(path) / SUMMARY)
