"""What ``multihot predict`` prints for a person (the text form: what fired, near misses) and
``--format``: text on a terminal, JSON lines everywhere else, exactly as before."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest

from helpers import TOY_TEXTS, assert_clean_error, invoke
from multihot.cli.render import render_prediction

NAMES = ["anger", "joy", "love", "sadness", "fear", "surprise"]


# ---------------------------------------------------------------------------------- rendering
def test_fired_labels_by_probability_then_the_closest_near_misses():
    probs = [0.02, 0.71, 0.90, 0.45, 0.30, 0.10]
    thresholds = [0.05, 0.43, 0.62, 0.60, 0.35, 0.50]
    block = render_prediction("i love this so much", NAMES, probs, thresholds)
    # Near misses by the gap threshold - prob: anger (0.03), fear (0.05), sadness (0.15); not
    # by probability (sadness first) and not surprise, the fourth.
    assert block.plain == (
        '"i love this so much"\n'
        "  love        0.90  (threshold 0.62)\n"
        "  joy         0.71  (threshold 0.43)\n"
        "  near misses:\n"
        "    anger     0.02  (threshold 0.05)\n"
        "    fear      0.30  (threshold 0.35)\n"
        "    sadness   0.45  (threshold 0.60)"
    )


def test_nothing_fired_says_so_and_still_shows_near_misses():
    block = render_prediction("the bus is late", NAMES[:2], [0.1, 0.38], [0.5, 0.43])
    assert block.plain == (
        '"the bus is late"\n'
        "  no label above its threshold\n"
        "  near misses:\n"
        "    joy    0.38  (threshold 0.43)\n"
        "    anger  0.10  (threshold 0.50)"
    )


def test_a_near_miss_never_prints_equal_to_its_threshold():
    block = render_prediction("close call", ["joy"], [0.4298], [0.4301])
    assert block.plain.splitlines()[-1] == "    joy  0.4298  (threshold 0.4301)"


def test_everything_fired_shows_no_near_misses():
    block = render_prediction("yes", ["joy", "love"], [0.9, 0.8], [0.5, 0.5])
    assert "near misses" not in block.plain and len(block.plain.splitlines()) == 3


def test_a_top1_fallback_label_says_why_it_fired_below_its_threshold():
    # The run's top-1 fallback gave the text its most probable label: what Predictor decided wins.
    block = render_prediction("meh", ["joy", "love"], [0.3, 0.2], [0.4, 0.5], fired=["joy"])
    assert block.plain.splitlines()[1] == "  joy     0.30  (threshold 0.40; top-1 fallback)"
    assert "no label above" not in block.plain


def test_a_long_text_is_shortened_onto_one_line():
    text = "word " * 200 + "\nlast line"
    first = render_prediction(text, ["joy"], [0.9], [0.5], text_width=60).plain.splitlines()[0]
    assert len(first) == 60 and first.startswith('"word word') and first.endswith('…"')


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 label names, 1 probabilities"):
        render_prediction("x", ["joy", "love"], [0.5], [0.5, 0.5])


# ------------------------------------------------------------------------------- command line
def expected_text(run, texts) -> str:
    """The text form of ``texts``, rendered from the run's own probabilities and decisions."""
    from multihot import Predictor

    predictor = Predictor.load(run, precision="fp32")
    probs = predictor.predict_proba(texts)
    labels = predictor.predict(texts)
    blocks = [
        render_prediction(text, predictor.label_names, row, predictor.thresholds.values, fired)
        for text, row, fired in zip(texts, probs, labels, strict=True)
    ]
    return "\n\n".join(block.plain for block in blocks) + "\n"


def predict_texts(run, *flags):
    args = [a for text in TOY_TEXTS[:2] for a in ("--text", text)]
    return invoke("predict", run, *args, "--precision", "fp32", *flags)


def test_format_text_prints_what_fired_for_each_text(toy_run):
    _, run = toy_run
    result = predict_texts(run, "--format", "text")
    assert result.exit_code == 0, result.output
    assert result.stdout == expected_text(run, TOY_TEXTS[:2])
    assert "\x1b[" not in result.stdout  # not a terminal: no colour codes
    # The overfit toy run: the first text is joy and love, the second sadness (fired rows are
    # indented by two, near misses by four).
    blocks = result.stdout.split("\n\n")
    fired = [sorted(re.findall(r"^  (\w+) +\d", block, flags=re.M)) for block in blocks]
    assert fired == [["joy", "love"], ["sadness"]]
    assert all("near misses:" in block for block in blocks)


def test_auto_off_a_terminal_and_format_json_are_todays_json_lines(toy_run):
    _, run = toy_run
    auto, forced = predict_texts(run), predict_texts(run, "--format", "json")
    assert auto.exit_code == forced.exit_code == 0, auto.output + forced.output
    assert auto.stdout == forced.stdout
    records = [json.loads(line) for line in auto.stdout.splitlines()]
    assert [r["text"] for r in records] == TOY_TEXTS[:2]
    assert [list(r) for r in records] == [["text", "labels", "probs"]] * 2
    assert len(records[0]["probs"]) == 4


class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_auto_on_a_terminal_prints_the_text_form(toy_run, monkeypatch):
    from multihot.cli.app import app

    _, run = toy_run
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    args = ["predict", str(run), "--text", TOY_TEXTS[0], "--text", TOY_TEXTS[1]]
    app([*args, "--precision", "fp32"], standalone_mode=False)
    printed = re.sub(r"\x1b\[[0-9;]*m", "", terminal.getvalue())  # colour, if rich chose it
    assert printed == expected_text(run, TOY_TEXTS[:2])


def test_text_to_an_output_file_is_refused(toy_run, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke("predict", toy_run[1], "--text", "so happy", "--format", "text", "-o", out)
    assert_clean_error(result, "--format text", "> predictions.txt")
    assert not out.exists()


def test_json_to_a_csv_file_is_refused_and_to_jsonl_written(toy_run, tmp_path):
    csv_out, jsonl_out = tmp_path / "out.csv", tmp_path / "out.jsonl"
    refused = invoke("predict", toy_run[1], "--text", "so happy", "--format", "json", "-o", csv_out)
    assert_clean_error(refused, "--format json", "csv")
    assert not csv_out.exists()
    written = invoke(
        "predict", toy_run[1], "--text", "so happy", "--format", "json", "-o", jsonl_out
    )
    assert written.exit_code == 0, written.output
    assert len(jsonl_out.read_text().splitlines()) == 1


def test_unknown_format_is_a_clean_error(toy_run):
    result = invoke("predict", toy_run[1], "--text", "so happy", "--format", "yaml")
    assert_clean_error(result, "--format", "auto, json, text", "'yaml'")


# ------------------------------------------------------------------------ texts that are not text
def test_undecodable_argv_bytes_are_a_clean_error(toy_run):
    # The shell passes bytes; Python decodes what is not UTF-8 to lone surrogates (surrogateescape).
    import subprocess

    from helpers import subprocess_env

    # (explain's TEXT argument takes the same check: the test below.)
    result = subprocess.run(
        [sys.executable, "-m", "multihot", "predict", str(toy_run[1]), "--text", b"\xff\xfe bad"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: text 1: not valid Unicode: lone surrogate '\\udcff' at character 1; "
        "expected UTF-8 text"
    ]


@pytest.mark.parametrize("verb", ["predict", "explain"])
@pytest.mark.parametrize("text", ["\u200b", "\x00\ufeff", "\u0301", "\udc80"])
def test_a_text_of_no_characters_or_a_lone_surrogate_is_refused(toy_run, verb, text):
    args = ["--text", text] if verb == "predict" else [text]
    result = invoke(verb, toy_run[1], *args)
    what = (
        "empty text"
        if text != "\udc80"
        else "not valid Unicode: lone surrogate '\\udc80' at character 1"
    )
    assert_clean_error(result, f"text 1: {what}")
    assert result.stdout == ""
