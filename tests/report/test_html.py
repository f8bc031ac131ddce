"""The HTML report read back as a document: every section holds what it says, user data is
escaped, nothing is fetched, and odd inputs (calibrated runs, short histories, many labels)
still render."""

from __future__ import annotations

import base64
import math
import re
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from multihot.core.errors import MultihotError
from multihot.report import html as report_html
from multihot.report.html import render_report, write_report
from multihot.report.mistakes import WORST
from multihot.report.plots import PER_FIGURE
from multihot.scoring.calibration import expected_calibration_error, per_label_ece
from multihot.scoring.metrics import compute_metrics

pytest.importorskip("matplotlib")  # the report extra; its modules import it only when drawing

SECTIONS = [
    "metrics",
    "config",
    "labels",
    "curves",
    "calibration",
    "frequency",
    "pairs",
    "training",
    "mistakes",
]
VOID = {"meta", "link", "img", "br", "hr", "input", "source", "wbr", "col", "area", "base"}


# --------------------------------------------------------------------------------- a tiny DOM
class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants with this tag (any when None) whose attributes contain ``attrs``
        (``class_`` matches one class; a value of ``...`` only asks that the attribute exists)."""
        found = []
        for child in self.children:
            if isinstance(child, str):
                continue
            if child.matches(tag, attrs):
                found.append(child)
            found += child.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def matches(self, tag: str | None, attrs: dict[str, str]) -> bool:
        if tag is not None and self.tag != tag:
            return False
        for key, value in attrs.items():
            if key == "class_":
                have = (self.attrs.get("class") or "").split()
                if value not in have:
                    return False
                continue
            have = self.attrs.get(key.replace("_", "-"), Node)  # Node: no such attribute
            if have is Node or (value is not ... and have != value):
                return False
        return True


class Tree(HTMLParser):
    """The document as :class:`Node` s (html.parser unescapes text and attributes)."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {}, None)
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None, f"</{tag}> closes nothing"
        self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(page: str) -> Node:
    return Tree(page).root


def section(doc: Node, key: str) -> Node:
    return doc.one("section", data_section=key)


def plots(doc: Node) -> dict[str, int]:
    counts: dict[str, int] = {}
    for figure in doc.all(data_plot=...):
        counts[figure.attrs["data-plot"]] = counts.get(figure.attrs["data-plot"], 0) + 1
    return counts


def fp_fn(targets, probs, thresholds):
    decisions = probs >= thresholds
    targets = targets.astype(bool)
    return targets, decisions, ~targets & decisions, targets & ~decisions


# -------------------------------------------------------------------------------------- tests
def test_every_section_is_there_and_holds_its_content(make_inputs):
    inputs = make_inputs(200, 5, history=3)
    page = render_report(inputs)
    assert page.startswith("<!DOCTYPE html>")
    doc = parse(page)
    assert [s.attrs["id"] for s in doc.all("section")] == SECTIONS
    assert [s.attrs["data-section"] for s in doc.all("section")] == SECTIONS
    # 5 labels fit one figure of small multiples; one of every other plot.
    assert plots(doc) == {
        "pr": 1,
        "f1-threshold": 1,
        "reliability": 1,
        "frequency": 1,
        "cooccurrence": 1,
        "confusion": 1,
        "training": 1,
    }
    for figure in doc.all(data_plot=...):
        svgs, images = figure.all("svg"), figure.all("img")
        assert len(svgs) + len(images) == 1, figure.attrs
        if svgs:  # a drawing, with lines and text in it
            assert svgs[0].all("path") and svgs[0].all("text"), figure.attrs
        else:
            source = images[0].attrs["src"]
            assert source.startswith("data:image/png;base64,")
            png = base64.b64decode(source.split(",", 1)[1])
            assert png.startswith(b"\x89PNG") and len(png) > 2_000
            assert images[0].attrs["alt"]
    headline = section(doc, "metrics")
    for key in ("macro_f1", "micro_f1", "macro_roc_auc", "hamming_loss"):
        card = headline.one(data_metric=key)
        assert float(card.attrs["data-value"]) == pytest.approx(inputs.metrics[key])
        assert card.text() == f"{inputs.metrics[key]:.3f}"
    assert headline.one(data_metric="num_texts").text() == "200"
    config = section(doc, "config")
    captions = [c.text() for c in config.all("caption")]
    assert captions[:4] == ["run", "model", "train", "data"]
    assert "scratch-mini" in config.text() and "encoder_config" in config.text()
    assert "9.0 s" in config.text()  # the training time
    # Every id is unique, the figures' own included (several inline SVGs on one page).
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_the_label_table_has_a_row_per_label_with_its_metrics(make_inputs):
    inputs = make_inputs(200, 5)
    doc = parse(render_report(inputs))
    table = doc.one("table", id="label-table")
    headings = [th.text() for th in table.all("th")]
    assert headings == [
        "label",
        "support",
        "precision",
        "recall",
        "F1",
        "AP",
        "ROC-AUC",
        "threshold",
        "ECE",
    ]
    rows = table.one("tbody").all("tr")
    assert [r.attrs["data-label"] for r in rows] == inputs.label_names
    ece = per_label_ece(inputs.targets, inputs.probs)
    for j, row in enumerate(rows):
        cells = row.all("td")
        assert len(cells) == len(headings)
        scores = inputs.metrics["per_label"][inputs.label_names[j]]
        values = {h: c.attrs.get("data-value") for h, c in zip(headings, cells, strict=True)}
        assert int(values["support"]) == scores["support"] == inputs.targets[:, j].sum()
        assert float(values["F1"]) == pytest.approx(scores["f1"])
        assert float(values["AP"]) == pytest.approx(scores["ap"])
        assert float(values["threshold"]) == pytest.approx(inputs.thresholds[j])
        assert float(values["ECE"]) == pytest.approx(ece[j])


def test_each_label_shows_its_worst_false_positives_and_negatives(make_inputs):
    inputs = make_inputs(200, 5)
    doc = parse(render_report(inputs))
    _, _, fp, fn = fp_fn(inputs.targets, inputs.probs, inputs.thresholds)
    blocks = section(doc, "mistakes").all("details", class_="mistakes")
    assert [b.attrs["data-label"] for b in blocks] == inputs.label_names
    for j, block in enumerate(blocks):
        for kind, wrong, worst in (("fp", fp, np.argmax), ("fn", fn, np.argmin)):
            items = block.one("ol", class_=kind).all("li")
            rows = np.flatnonzero(wrong[:, j])
            assert len(items) == min(WORST, len(rows)), (inputs.label_names[j], kind)
            if not len(rows):
                continue
            shown = [int(item.attrs["data-row"]) for item in items]
            assert set(shown) <= set(rows)
            assert shown[0] == rows[worst(inputs.probs[rows, j])]
            probs = [float(item.one("span", class_="prob").text()) for item in items]
            assert probs == sorted(probs, reverse=kind == "fp")
            assert probs[0] == pytest.approx(inputs.probs[shown[0], j], abs=5e-4)
            assert items[0].one("span", class_="text").text() == inputs.texts[shown[0]]
    # The synthetic model errs both ways on every label, so every list above had entries.
    assert fp.any(axis=0).all() and fn.any(axis=0).all()


def test_the_calibration_error_shown_is_expected_calibration_error(make_inputs):
    inputs = make_inputs(200, 5)
    doc = parse(render_report(inputs))
    expected = expected_calibration_error(inputs.targets, inputs.probs)
    shown = doc.all(data_ece="overall")
    assert len(shown) == 2  # the headline card and the calibration section
    for element in shown:
        assert float(element.attrs["data-value"]) == pytest.approx(expected, rel=1e-12)
        assert element.text() == f"{expected:.4f}"
    assert not doc.all(data_ece="before")
    diagram = section(doc, "calibration").one(data_plot="reliability")
    assert f"ECE {expected:.4f}" in diagram.text()


def test_a_calibrated_run_shows_the_error_before_and_after(make_inputs):
    inputs = make_inputs(400, 4, calibrated=True)
    doc = parse(render_report(inputs))
    before = expected_calibration_error(inputs.targets, inputs.uncalibrated_probs)
    after = expected_calibration_error(inputs.targets, inputs.probs)
    assert after < before  # the synthetic calibration works
    for key, value in (("before", before), ("overall", after)):
        shown = doc.all(data_ece=key)
        assert len(shown) == 2
        assert all(float(e.attrs["data-value"]) == pytest.approx(value) for e in shown)
    diagram = section(doc, "calibration").one(data_plot="reliability").text()
    assert f"ECE {before:.4f} before, {after:.4f} after calibration" in diagram
    table = doc.one("table", id="label-table")
    headings = [th.text() for th in table.all("th")]
    assert headings[-2:] == ["ECE before", "ECE after"]
    first = table.one("tbody").all("tr")[0].all("td")
    assert float(first[-2].attrs["data-value"]) == pytest.approx(
        per_label_ece(inputs.targets, inputs.uncalibrated_probs)[0]
    )
    assert float(first[-1].attrs["data-value"]) == pytest.approx(
        per_label_ece(inputs.targets, inputs.probs)[0]
    )


def test_texts_and_label_names_are_escaped(make_inputs):
    inputs = make_inputs(200, 3)
    evil_text = '<script>alert(1)</script> & "quoted" <img src=x onerror=alert(2)>'
    evil_labels = ["<b>x</b>", '" onmouseover="alert(3)', "costs $5 and $\\frac{a}{b}$"]
    inputs.label_names = evil_labels
    inputs.title = "<i>run</i>"
    inputs.metrics = compute_metrics(inputs.targets, inputs.probs, inputs.thresholds, evil_labels)
    _, _, fp, _ = fp_fn(inputs.targets, inputs.probs, inputs.thresholds)
    worst = np.flatnonzero(fp[:, 0])[np.argmax(inputs.probs[fp[:, 0], 0])]
    inputs.texts = list(inputs.texts)
    inputs.texts[worst] = evil_text
    page = render_report(inputs)
    doc = parse(page)
    # Only the report's own script and no element from the data ever exists.
    assert len(doc.all("script")) == 1
    assert not doc.all("b") and not doc.all("i")
    assert not [n for n in doc.all() if "onmouseover" in n.attrs or "onerror" in n.attrs]
    assert not [n for n in doc.all("img") if n.attrs.get("src") == "x"]
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    # Read back, the data is exactly what was given: escaped, not mangled.
    rows = doc.one("table", id="label-table").one("tbody").all("tr")
    assert [r.attrs["data-label"] for r in rows] == evil_labels
    assert [r.all("td")[0].text() for r in rows] == evil_labels
    item = section(doc, "mistakes").all("details")[0].one("ol", class_="fp").all("li")[0]
    assert item.one("span", class_="text").text() == evil_text
    assert doc.one("title").text().startswith("<i>run</i>")
    # The figures draw the names as text (dollar signs as written, not as mathtext).
    curves = section(doc, "curves").text()
    assert "<b>x</b>" in curves and "costs $5 and $\\frac{a}{b}$" in curves


def test_nothing_is_fetched_from_anywhere(make_inputs):
    inputs = make_inputs(200, 5)
    inputs.texts = [f"see https://example.com/{i}" for i in range(len(inputs.texts))]
    page = render_report(inputs)
    doc = parse(page)
    references = [
        (n.tag, key, value)
        for n in doc.all()
        for key, value in n.attrs.items()
        if key in ("src", "href", "xlink:href", "action", "srcset", "poster", "data")
    ]
    assert references
    for tag, key, value in references:
        assert value.startswith(("data:", "#")), (tag, key, value[:80])
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.I)
    assert not re.search(r"url\(\s*[\"']?\s*(?:https?:)?//", page, re.I)
    assert "@import" not in page
    assert doc.one("link").attrs == {"rel": "icon", "href": "data:,"}
    policy = doc.one("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in policy
    # The only web addresses are the user's own texts, shown as text.
    assert set(re.findall(r"https?://[^\s<\"']+", page)) <= {
        f"https://example.com/{i}" for i in range(len(inputs.texts))
    }


@pytest.mark.parametrize("records", [0, 1])
def test_a_short_or_missing_history_still_renders(make_inputs, records):
    inputs = make_inputs(200, 5, history=records)
    if records == 1:  # the linear baseline's one record: step 0, no losses
        inputs.history = [{"step": 0, "epoch": 1.0, "macro_f1": 0.42, "seconds": 0.5}]
    doc = parse(render_report(inputs))
    assert [s.attrs["id"] for s in doc.all("section")] == SECTIONS
    training = section(doc, "training")
    if records == 0:
        assert "training" not in plots(doc)
        assert "no training history" in training.text()
    else:
        svg = training.one(data_plot="training").one("svg")
        assert "no losses recorded" in svg.text()
        assert "1 evaluation(s)" in training.text()


def test_a_seed_ensemble_gets_a_line_per_member(make_inputs):
    inputs = make_inputs(200, 3, history=3, members=3)
    training = section(parse(render_report(inputs)), "training")
    drawn = training.one(data_plot="training").text()
    for member in range(3):
        assert f"member {member} macro_f1" in drawn
        assert f"member {member} train loss" in drawn
    assert "over 3 seed-ensemble members" in training.text()


def test_sixty_labels_render_in_reasonable_size(make_inputs):
    inputs = make_inputs(1000, 60)
    page = render_report(inputs)
    doc = parse(page)
    figures = math.ceil(60 / PER_FIGURE)
    counts = plots(doc)
    assert counts["pr"] == counts["f1-threshold"] == figures
    assert len(doc.one("table", id="label-table").one("tbody").all("tr")) == 60
    assert len(section(doc, "mistakes").all("details")) == 60
    assert len(page) < 2_000_000, f"{len(page) / 1e6:.2f} MB"


def test_write_report_writes_all_or_nothing(make_inputs, tmp_path, monkeypatch):
    inputs = make_inputs(100, 3)
    path = write_report(inputs, tmp_path / "report.html")
    assert path.read_text(encoding="utf-8") == render_report(inputs)

    def fail(_):
        raise RuntimeError("drawing failed")

    previous = f"<html><head>{report_html.GENERATOR_TAG}</head>the previous report</html>"
    path.write_text(previous, encoding="utf-8")  # a page multihot wrote: it may be replaced
    monkeypatch.setattr(report_html, "render_report", fail)
    with pytest.raises(RuntimeError):
        write_report(inputs, path)
    assert path.read_text(encoding="utf-8") == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_arrays_that_disagree_are_a_clear_error(make_inputs):
    inputs = make_inputs(100, 3)
    inputs.probs = inputs.probs[:, :2]
    with pytest.raises(MultihotError, match=r"probs has shape \(100, 2\), expected \(100, 3\)"):
        render_report(inputs)
    inputs = make_inputs(100, 3)
    inputs.thresholds = inputs.thresholds[:2]
    with pytest.raises(MultihotError, match=r"thresholds has shape \(2,\), expected \(3,\)"):
        render_report(inputs)
    inputs = make_inputs(100, 3)
    inputs.probs[5, 1] = np.nan
    with pytest.raises(MultihotError, match="probs hold NaN"):
        render_report(inputs)


def test_without_matplotlib_the_error_names_the_extra(make_inputs, monkeypatch):
    inputs = make_inputs(100, 3)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MultihotError, match=r"pip install 'multihot\[report\]'"):
        render_report(inputs)


def test_a_length_section_when_the_metrics_have_several_lengths(make_inputs):
    """Metrics by text length (evaluate's ``by_length``) get their own section, after the
    per-label table, with what was not read to the end; one bucket alone gets none."""
    inputs = make_inputs(200, 5, history=3)
    bucket = {"texts": 100, "micro_f1": 0.8, "macro_f1": 0.7, "subset_accuracy": 0.5}
    inputs.metrics["by_length"] = {
        "unit": "tokens",
        "read_up_to": 128,
        "buckets": [
            {"tokens": "1-128", **bucket, "cut_texts": 0},
            {"tokens": "129-256", **bucket, "macro_f1": None, "cut_texts": 100},
        ],
    }
    doc = parse(render_report(inputs))
    sections = [s.attrs["id"] for s in doc.all("section")]
    assert sections == [*SECTIONS[:3], "lengths", *SECTIONS[3:]]
    page = render_report(inputs)
    assert 'data-bucket="129-256"' in page and "partly unread" in page and 'href="#lengths"' in page
    inputs.metrics["by_length"]["buckets"] = inputs.metrics["by_length"]["buckets"][:1]
    assert 'id="lengths"' not in render_report(inputs)
