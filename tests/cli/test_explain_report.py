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


def _linear_contributions(run, words, label):
    """Each word's share of ``label``'s logit, computed from the run's files alone (vocabulary.json,
    the IDF weights and coefficients in model.safetensors): TF-IDF of the 1-2 grams, L2-normalised,
    times the label's coefficients, each n-gram's share split evenly over its words. Assumes no word
    repeats (so every count is 1 and sublinear tf changes nothing)."""
    from safetensors.numpy import load_file

    vocabulary = json.loads((run / "vocabulary.json").read_text())
    arrays = load_file(run / "model.safetensors")
    coef = arrays["coef"][json.loads((run / "labels.json").read_text()).index(label)]
    spans = [range(i, i + n) for n in (1, 2) for i in range(len(words) - n + 1)]
    found = {}  # n-gram column -> the words it covers
    for span in spans:
        column = vocabulary.get(" ".join(words[i] for i in span))
        if column is not None:
            found[column] = span
    norm = sum(arrays["idf"][column] ** 2 for column in found) ** 0.5
    shares = [0.0] * len(words)
    for column, span in found.items():
        for i in span:
            shares[i] += coef[column] * arrays["idf"][column] / norm / len(span)
    return shares


def test_explain_a_baseline_run_names_the_token_that_drove_the_label(baseline_run):
    # In the toy data "angry" is only in an anger text and "great", "lovely", "day" only in joy
    # texts, so for anger the one word pushing up is "angry", in the middle of the text: a ranking
    # in input order (or reversed) would put another word first.
    words = ["great", "lovely", "angry", "day"]
    result = invoke("explain", baseline_run, " ".join(words), "--json", "--label", "anger")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["labels"]
    assert entry["label"] == "anger" and entry["method"] == "linear"
    assert [token["token"] for token in entry["tokens"]] == words
    scores = [token["score"] for token in entry["tokens"]]
    expected = _linear_contributions(baseline_run, words, "anger")
    assert scores == pytest.approx(expected, abs=1e-9)  # the exact linear contributions
    assert max(scores) == scores[2] > 0 and all(s < 0 for i, s in enumerate(scores) if i != 2)
    assert entry["check"]["held"] and 2 in entry["check"]["deleted"]


def test_report_from_the_runs_validation_rows_and_from_data(toy_run, toy_file, tmp_path):
    from html.parser import HTMLParser

    _, run = toy_run
    result = invoke("report", run, "-o", tmp_path / "validation.html")
    assert result.exit_code == 0, result.output
    with_data = invoke("report", run, toy_file, "-o", tmp_path / "data.html")
    assert with_data.exit_code == 0, with_data.output

    class Sections(HTMLParser):
        def __init__(self):
            super().__init__()
            self.sections, self.plots = set(), 0

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.sections.add(attrs.get("data-section"))
            self.plots += "data-plot" in attrs

    for name, source in (("validation.html", "validation data"), ("data.html", "toy.jsonl")):
        page = (tmp_path / name).read_text(encoding="utf-8")
        parsed = Sections()
        parsed.feed(page)
        assert source in page and parsed.plots >= 7
        assert {
            "metrics",
            "config",
            "labels",
            "curves",
            "calibration",
            "frequency",
            "pairs",
            "training",
            "mistakes",
        } <= parsed.sections


def test_evaluate_writes_the_report_and_keeps_json_clean(toy_run, toy_file, tmp_path):
    result = invoke("evaluate", toy_run[1], toy_file, "--json", "--report", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # the report's message went to stderr
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_a_run_without_validation_rows_needs_data(toy_run, tmp_path):
    from helpers import copy_run

    run = copy_run(toy_run[1], tmp_path / "old")
    (run / "validation.jsonl").unlink()
    assert_clean_error(invoke("report", run, "-o", tmp_path / "r.html"), "give the labelled data")
    assert not (tmp_path / "r.html").exists()


def test_train_leaves_the_training_curves(toy_file, tmp_path):
    from helpers import train_cli

    result = train_cli(toy_file, tmp_path / "run", "--epochs", "2")
    assert result.exit_code == 0, result.output
    png = tmp_path / "run" / "training-curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
