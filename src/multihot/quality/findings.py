"""What an audit finds, as plain records: the data checks' findings, the label issues (one
(text, label) pair each) and each label's health. Every field is JSON-ready, so the audit
directory, the page and the exports write them as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["warning", "info"]
"""``warning``: something that will cost the model or flatter its scores; ``info``: a fact
about the data worth a look."""

IssueKind = Literal["missing", "wrong"]
"""``missing``: given 0, the model is sure of 1; ``wrong``: given 1, the model is sure of 0."""


@dataclass
class Finding:
    """One data check's result.

    Example:
        >>> f = Finding("empty_texts", "warning", "2 texts have fewer than 3 characters", 2)
        >>> f.to_dict()["count"]
        2
    """

    check: str
    """The check's name (see :data:`multihot.quality.checks.CHECKS`)."""
    severity: Severity
    message: str
    """One line a user reads: the count, what it means and what to do."""
    count: int
    """How many rows, labels or pairs the finding is about (0: the check found nothing)."""
    examples: list[dict[str, Any]] = field(default_factory=list)
    """A few cases, each with at least ``row`` (0-based in its file) or ``label``, and the
    ``text`` where there is one."""
    details: dict[str, Any] = field(default_factory=dict)
    """Anything more the page shows (per-label counts, a distribution)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LabelIssue:
    """A (text, label) pair whose given label the out-of-fold model doubts.

    Example:
        >>> issue = LabelIssue(3, "joy", 0, 0.91, 0.88, 0.35, "so happy!")
        >>> issue.kind
        'missing'
    """

    row: int
    """0-based position of the text in DATA."""
    label: str
    given: int
    """The label as given: 1 (the text has it) or 0."""
    score: float
    """How likely the given label is wrong, in [0, 1]: issues are ranked by it, highest first."""
    probability: float
    """The out-of-fold model's probability of ``label`` for this text."""
    threshold: float
    """The label's threshold, tuned on the out-of-fold probabilities."""
    text: str
    id: str | None = None
    """The value of DATA's id column for this row, when it has one."""

    @property
    def kind(self) -> IssueKind:
        return "wrong" if self.given else "missing"

    def to_dict(self) -> dict[str, Any]:
        record = {"row": self.row, "label": self.label, "given": self.given, "kind": self.kind}
        record.update(score=self.score, probability=self.probability, threshold=self.threshold)
        if self.id is not None:
            record["id"] = self.id
        record["text"] = self.text
        return record


@dataclass
class LabelHealth:
    """One label's quality over DATA, from the out-of-fold probabilities (cleanlab's class
    ranking) and the issues found for it; with partial labels, over the texts labelled for it."""

    label: str
    positives: int
    """Texts given the label."""
    health: float
    """cleanlab's label quality score for the class, in [0, 1]; lower is worse."""
    noise: float
    """Estimated share of the texts given the label that should not have it."""
    missing_rate: float
    """Estimated share of the texts without the label that should have it."""
    wrong: int
    """Issues of kind ``wrong`` found for the label."""
    missing: int
    """Issues of kind ``missing`` found for the label."""
    known: int | None = None
    """Partial labels: the texts labelled for the label, which its estimates count; None (and
    left out of :meth:`to_dict`) when every text is labelled for every label."""

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.known is None:
            del record["known"]
        return record
