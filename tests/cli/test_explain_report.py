"""``multihot explain`` and ``multihot report`` through the command line."""

from __future__ import annotations

import json

import pytest
from helpers import assert_clean_error, invoke


def test_explain_prints_tokens_and_the_deletion_check(toy_run, tmp_path):
    clf, run = toy_run
    result = invoke("explain", run, "i love this so much", "--html", tmp_path / "e.html")
    assert result.exit_code == 0, result.output
    assert "love" in result.stdout and "delet" in result.stdout.lower()
    page = (tmp_path / "e.html").read_text()
    assert "<html" in page.lower() and "love" in page
    as_json = invoke("explain", run, "i love this so much", "--json", "--label", "joy")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert [entry["label"] for entry in data["labels"]] == ["joy"]
    expected = clf.predict_proba(["i love this so much"], precision="fp32")[0]
    assert data["labels"][0]["probability"] == pytest.approx(
        float(expected[clf.label_names.index("joy")]), abs=1e-5
    )


def test_explain_refuses_an_unknown_label(toy_run):
    assert_clean_error(invoke("explain", toy_run[1], "hello", "--label", "nope"), "nope")


def test_explain_a_baseline_run(baseline_run):
    result = invoke("explain", baseline_run, "so angry right now")
    assert result.exit_code == 0, result.output
    assert "angry" in result.stdout
