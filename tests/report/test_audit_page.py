"""The audit page read back as a document: each section holds what the audit found, user data is
escaped, nothing is fetched, and an audit with checks only (or with nothing found) still renders."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from multihot.core.errors import MultihotError
from multihot.quality.findings import Finding, LabelHealth, LabelIssue
from multihot.quality.result import AuditResult
from multihot.report.audit import render_audit_page

SECTIONS = ["overview", "findings", "health", "suspects", "next"]
VOID = {"meta", "link", "img", "br", "hr", "input", "source", "wbr", "col", "area", "base"}
NASTY = "<script>alert(1)</script> & co"


# --------------------------------------------------------------------------------- a tiny DOM
class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]):
        self.tag, self.attrs = tag, attrs
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str, **attrs: str) -> list[Node]:
        """Descendants with this tag whose attributes hold ``attrs`` (``data_x`` is ``data-x``)."""
        found = []
        for child in self.children:
            if isinstance(child, str):
                continue
            wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
            if child.tag == tag and all(child.attrs.get(k) == v for k, v in wanted.items()):
                found.append(child)
            found += child.all(tag, **attrs)
        return found

    def kids(self, tag: str) -> list[Node]:
        """Children (not deeper descendants) with this tag."""
        return [c for c in self.children if isinstance(c, Node) and c.tag == tag]

    def one(self, tag: str, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class Strict(HTMLParser):
    """The document as :class:`Node` s; every end tag must close the element open last."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]
        self.feed(page)
        self.close()
        assert [n.tag for n in self.open] == ["#document"], "unclosed elements"

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag, attrs):
        self.open[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.open[-1].tag == tag, f"</{tag}> closes <{self.open[-1].tag}>"
        self.open.pop()

    def handle_data(self, data):
        self.open[-1].children.append(data)


def parse(page: str) -> Node:
    return Strict(page).root


def rows(table: Node) -> list[list[str]]:
    """The text of each body row's cells (of this table, not of a table inside it)."""
    return [[td.text() for td in tr.kids("td")] for tr in table.kids("tbody")[0].kids("tr")]


# ------------------------------------------------------------------------------------ results
def full_result() -> AuditResult:
    findings = [
        Finding("label_support", "info", "2 labels have fewer than 20 examples", 2),
        Finding(
            "conflicting_duplicates",
            "warning",
            f"3 texts appear twice with different labels: {NASTY}",
            3,
            examples=[
                {"row": 4, "text": NASTY, "labels": ["joy", "anger"], "other_row": 9},
                {"row": 7, "text": "plain", "labels": [], "other_row": 12},
            ],
            details={"pairs": 3},
        ),
        Finding("empty_texts", "warning", "no empty texts", 0),
    ]
    issues = [
        LabelIssue(4, "joy", 0, 0.97, 0.93, 0.41, NASTY, id="id-<4>"),
        LabelIssue(1, "anger", 1, 0.95, 0.04, 0.38, "not angry at all"),
        LabelIssue(8, "joy", 1, 0.90, 0.02, 0.41, "dull day"),
        LabelIssue(2, "joy", 0, 0.60, 0.71, 0.41, "third joy suspect"),
    ]
    health = [  # not sorted: the page sorts worst first
        LabelHealth("anger", 12, 0.81, 0.05, 0.01, 1, 0),
        LabelHealth("joy", 30, 0.42, 0.12, 0.031, 1, 2),
        LabelHealth("fear & <dread>", 3, 0.65, 0.0, 0.0, 0, 0),
    ]
    oof = {"model": "baseline", "folds": 5, "cv_dir": None, "macro_f1": 0.4567, "micro_f1": 0.5}
    return AuditResult(
        "data/<train> & co.jsonl",
        "data/val.jsonl",
        120,
        ["joy", "anger", "fear & <dread>"],
        findings=findings,
        issues=issues,
        health=health,
        dataset_health=0.734,
        oof=oof,
        seconds=12.34,
    )


def section(doc: Node, key: str) -> Node:
    return doc.one("section", data_section=key)


# -------------------------------------------------------------------------------------- tests
def test_every_section_is_there_with_its_figures():
    page = render_audit_page(full_result())
    assert page.startswith("<!DOCTYPE html>")
    doc = parse(page)
    assert [s.attrs["data-section"] for s in doc.all("section")] == SECTIONS
    assert [a.attrs["href"] for a in doc.one("nav").all("a")] == [f"#{k}" for k in SECTIONS]

    overview = section(doc, "overview").text()
    for shown in ["data/val.jsonl", "baseline", "0.457", "0.500", "0.734", "12.3 s", "120"]:
        assert shown in overview
    assert "data/<train> & co.jsonl" in overview
    assert "not kept" in overview  # cv_dir None
    cards = {s.attrs["data-metric"]: s.text() for s in doc.all("span") if "data-metric" in s.attrs}
    assert cards["issues"] == "4" and cards["missing"] == "2" and cards["wrong"] == "2"
    assert cards["warnings"] == "1"  # the empty-texts check found nothing

    text = section(doc, "next").text()
    for name in ["issues.jsonl", "label-studio.json", "issues.csv", "--write-cleaned"]:
        assert name in text


def test_findings_list_each_check_with_its_examples_folded():
    doc = parse(render_audit_page(full_result()))
    table = section(doc, "findings").one("table", id="findings-table")
    body = table.kids("tbody")[0]
    checks = [tr.attrs["data-check"] for tr in body.kids("tr")]
    # warnings first, then facts, then the checks that found nothing
    assert checks == ["conflicting_duplicates", "label_support", "empty_texts"]
    row = body.one("tr", data_check="conflicting_duplicates")
    assert row.attrs["data-severity"] == "warning"
    assert NASTY in row.text()
    folded = row.all("details")
    assert len(folded) == 2  # examples, details
    examples = folded[0].one("table")
    assert [th.text() for th in examples.all("th")] == ["row", "text", "labels", "other_row"]
    assert rows(examples) == [["4", NASTY, "joy, anger", "9"], ["7", "plain", "none", "12"]]
    assert "pairs" in folded[1].text()
    assert body.one("tr", data_check="empty_texts").attrs["class"] == "clear"


def test_health_is_sorted_worst_first_with_a_bar():
    doc = parse(render_audit_page(full_result()))
    table = section(doc, "health").one("table", id="health-table")
    cells = rows(table)
    assert [r[0] for r in cells] == ["joy", "fear & <dread>", "anger"]
    assert cells[0][1:] == ["30", "0.420", "12.0%", "3.1%", "1", "2"]
    bars = table.all("svg")
    assert len(bars) == 3
    assert bars[0].attrs["aria-label"] == "health 0.42"
    assert bars[0].all("rect")[1].attrs["width"] == "42.0"


def test_suspects_show_the_top_issues_of_each_label():
    doc = parse(render_audit_page(full_result(), per_label=2))
    suspects = section(doc, "suspects")
    blocks = suspects.all("details")
    assert [d.attrs["data-label"] for d in blocks] == ["joy", "anger"]  # worst health first
    joy = rows(blocks[0].one("table"))
    assert len(joy) == 2  # per_label cuts the third suspect
    assert joy[0] == ["1", "4", "missing", "0.970", "0.930 / 0.410", "id-<4>", NASTY]
    assert joy[1][1:5] == ["8", "wrong", "0.900", "0.020 / 0.410"]
    assert "3 issues: 2 likely missing, 1 likely wrong" in blocks[0].one("summary").text()
    anger = blocks[1].one("table")
    assert "id" not in [th.text() for th in anger.all("th")]  # no issue of anger has an id
    assert rows(anger)[0][2] == "wrong"


def test_user_texts_are_escaped():
    page = render_audit_page(full_result())
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "fear &amp; &lt;dread&gt;" in page
    assert "id-&lt;4&gt;" in page
    assert len(parse(page).all("script")) == 1  # the page's own sorting script


def test_nothing_is_fetched():
    page = render_audit_page(full_result())
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.I)
    assert not re.search(r"url\(\s*[\"']?\s*(?:https?:)?//", page, re.I)
    assert not re.search(r"https?://", page)
    assert not re.search(r"<script[^>]*\ssrc=", page, re.I)
    assert not re.search(r"<link[^>]*rel=\"stylesheet\"", page, re.I)
    policy = parse(page).one("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert policy is not None and "default-src 'none'" in policy


def test_checks_only_audit_renders():
    result = AuditResult(
        "train.jsonl",
        None,
        2,
        ["a"],
        findings=[Finding("empty_texts", "warning", "1 text has fewer than 3 characters", 1)],
    )
    doc = parse(render_audit_page(result))
    assert [s.attrs["data-section"] for s in doc.all("section")] == SECTIONS
    assert "data checks only" in section(doc, "overview").text()
    assert section(doc, "health").all("table") == []
    assert "No label issues" in section(doc, "suspects").text()
    assert "--cv CV_DIR" in section(doc, "next").text()


def test_an_audit_that_found_nothing_renders():
    doc = parse(render_audit_page(AuditResult("train.jsonl", None, 0, [])))
    assert [s.attrs["data-section"] for s in doc.all("section")] == SECTIONS
    assert "No data checks ran" in section(doc, "findings").text()


def test_issues_without_findings_render():
    result = full_result()
    result.findings = []
    doc = parse(render_audit_page(result))
    assert section(doc, "findings").all("table") == []
    assert len(section(doc, "suspects").all("details")) == 2


def test_per_label_below_one_is_an_error():
    with pytest.raises(MultihotError, match="per_label"):
        render_audit_page(full_result(), per_label=0)
