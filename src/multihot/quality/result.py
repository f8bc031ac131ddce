"""What ``multihot audit`` ends with: the data checks' findings, the ranked label issues and each
label's health, with where the out-of-fold probabilities came from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from multihot.quality.findings import Finding, LabelHealth, LabelIssue


@dataclass
class AuditResult:
    """One audit of DATA (and VAL when given).

    Example:
        >>> result = AuditResult("train.jsonl", None, 2, ["joy", "anger"])
        >>> result.summary()["issues"]
        {'total': 0, 'missing': 0, 'wrong': 0}
    """

    source: str
    """DATA's path."""
    val_source: str | None
    """VAL's path, when one was given."""
    rows: int
    """Texts in DATA."""
    label_names: list[str]
    findings: list[Finding] = field(default_factory=list)
    """The data checks, in the order :func:`multihot.quality.checks.run_checks` runs them."""
    issues: list[LabelIssue] = field(default_factory=list)
    """Label issues, most likely first."""
    health: list[LabelHealth] = field(default_factory=list)
    """One per label, worst health first."""
    dataset_health: float | None = None
    """cleanlab's overall multi-label health score of DATA, in [0, 1]; None without label
    issues (no out-of-fold probabilities)."""
    oof: dict[str, Any] = field(default_factory=dict)
    """Where the out-of-fold probabilities came from: ``model`` (the baseline's kind or the encoder),
    ``folds``, ``cv_dir`` (None when the audit ran its own and kept nothing), and their
    ``macro_f1`` and ``micro_f1`` at the out-of-fold thresholds."""
    seconds: float = 0.0
    given: list[list[str]] = field(default_factory=list, repr=False)
    """Each row's labels as given in DATA (not in summary.json): what the relabelling exports
    suggest changes to."""
    known: list[list[str] | None] | None = field(default=None, repr=False)
    """Partial labels: each row's labels it was labelled for (None: all), as
    :attr:`multihot.data.readers.Dataset.known`; None when every row is labelled for every label.
    Unknown pairs are never issues; summary.json counts them (``partial``)."""

    def summary(self) -> dict[str, Any]:
        """``summary.json``: everything but the issues themselves (their counts instead)."""
        kinds = Counter(issue.kind for issue in self.issues)
        return {
            "source": self.source,
            "val_source": self.val_source,
            "rows": self.rows,
            "labels": self.label_names,
            "findings": [f.to_dict() for f in self.findings],
            "issues": {
                "total": len(self.issues),
                "missing": kinds["missing"],
                "wrong": kinds["wrong"],
            },
            "health": [h.to_dict() for h in self.health],
            "dataset_health": self.dataset_health,
            "oof": self.oof,
            "seconds": round(self.seconds, 1),
        } | self._partial()

    def _partial(self) -> dict[str, Any]:
        """``{"partial": {"texts", "unknown_pairs"}}`` with partial labels (the texts labelled
        for some labels only, and the pairs no text was labelled for), else nothing."""
        if self.known is None:
            return {}
        names = len(self.label_names)
        partial = [row for row in self.known if row is not None]
        unknown = sum(names - len(set(row)) for row in partial)
        return {"partial": {"texts": len(partial), "unknown_pairs": unknown}}
