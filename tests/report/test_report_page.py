"""The report in a real browser, offline: it loads without a console error or a request, every
figure shows, and clicking a column header of the per-label table sorts it. Needs headless
Chromium (``.ci/run`` installs Debian's ``chromium``)."""

from __future__ import annotations

import json

import pytest

from helpers import Browser, chromium_or_skip, screenshot_path
from multihot.report.html import write_report

pytest.importorskip("websocket")
pytest.importorskip("matplotlib")

COLUMN = """(() => {{
  const table = document.getElementById('label-table');
  const index = [...table.tHead.rows[0].cells].findIndex(th => th.textContent === {heading});
  return [...table.tBodies[0].rows].map(row => {{
    const cell = row.cells[index];
    return cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
  }});
}})()"""


@pytest.fixture()
def browser(tmp_path):
    browser = Browser(chromium_or_skip(), tmp_path / "profile", offline=True)
    yield browser
    browser.close()


def column(browser: Browser, heading: str) -> list[str]:
    return browser.evaluate(COLUMN.format(heading=json.dumps(heading)))


def header(heading: str) -> str:
    """A CSS selector for the per-label table's header cell with this text."""
    return f"#label-table thead th:nth-child({HEADINGS.index(heading) + 1})"


HEADINGS = [
    "label",
    "support",
    "precision",
    "recall",
    "F1",
    "AP",
    "ROC-AUC",
    "threshold",
    "ECE before",
    "ECE after",
]


def test_the_report_loads_offline_and_its_table_sorts(make_inputs, browser, tmp_path):
    inputs = make_inputs(300, 6, calibrated=True)
    path = write_report(inputs, tmp_path / "report.html")
    browser.open(path.resolve().as_uri())
    browser.wait_for("document.body.dataset.state === 'ready'")
    assert (
        browser.evaluate(
            "[...document.querySelectorAll('#label-table thead th')].map(th => th.textContent)"
        )
        == HEADINGS
    )
    # Every figure is drawn: inline SVGs have a size, PNG data URIs decoded.
    figures = browser.evaluate(
        "[...document.querySelectorAll('[data-plot]')].map(f => { const g = f.firstElementChild;"
        " const r = g.getBoundingClientRect(); return [f.dataset.plot, g.tagName.toLowerCase(),"
        " g.tagName === 'IMG' ? g.complete && g.naturalWidth > 0 : true, r.width > 100] })"
    )
    assert len(figures) == 7  # pr, f1-threshold, reliability, frequency, 2 heatmaps, training
    assert all(shown and wide for _, _, shown, wide in figures), figures
    assert {kind for kind, tag, _, _ in figures if tag == "img"} == {"cooccurrence", "confusion"}

    f1 = [float(v) for v in column(browser, "F1")]
    assert f1 != sorted(f1)  # the synthetic labels come in another order
    browser.evaluate(f"document.querySelector({json.dumps(header('F1'))}).scrollIntoView()")
    browser.click(header("F1"))
    browser.wait_for(f"document.querySelector({json.dumps(header('F1'))}).ariaSort === 'ascending'")
    assert [float(v) for v in column(browser, "F1")] == sorted(f1)
    browser.click(header("F1"))
    browser.wait_for(
        f"document.querySelector({json.dumps(header('F1'))}).ariaSort === 'descending'"
    )
    assert [float(v) for v in column(browser, "F1")] == sorted(f1, reverse=True)
    labels = column(browser, "label")
    assert labels == [
        inputs.label_names[j] for j in sorted(range(6), key=lambda j: -f1[j])
    ]  # whole rows moved, not one column
    browser.click(header("label"))
    browser.wait_for("document.querySelector('#label-table thead th').ariaSort === 'ascending'")
    assert column(browser, "label") == sorted(inputs.label_names)

    shot = browser.screenshot(screenshot_path(tmp_path, "report.png"))
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
    assert browser.errors == [], browser.errors
    assert browser.failed_requests == [], browser.failed_requests
