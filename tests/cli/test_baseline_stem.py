"""``multihot baseline --stem/--stop-words/--preprocess``, and ``multihot train --stem`` refused."""

from __future__ import annotations

import json

from helpers import assert_clean_error, invoke, tiny_flags, write_jsonl
from multihot import Classifier


def test_baseline_stems_and_drops_stop_words_from_the_command_line(tmp_path, toy_file):
    run = tmp_path / "run"
    result = invoke(
        "baseline", toy_file, "--val", toy_file, "-o", run, "--min-df", 1,
        "--stem", "english", "--stop-words", "english",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    section = json.loads((run / "config.json").read_text())["baseline"]
    assert section["stem"] == "english" and section["stop_words"] == "english"
    vocabulary = json.loads((run / "vocabulary.json").read_text())
    assert "terribl" in vocabulary and "this" not in vocabulary
    out = tmp_path / "out.jsonl"
    assert invoke("predict", run, toy_file, "-o", out).exit_code == 0
    clf = Classifier.load(run)
    assert clf.predict(["I loved this, so lovely"]) == clf.predict(["i love this so love"])


def test_baseline_preprocess_flag(tmp_path):
    data = write_jsonl(
        tmp_path / "amp.jsonl",
        ["salt &amp; pepper", "bread &amp; butter", "a sad grey day", "a sad story"],
        [["food"], ["food"], ["sad"], ["sad"]],
    )
    for steps, amp_is_a_word in (("html", False), ("none", True)):
        run = tmp_path / steps
        result = invoke("baseline", data, "--val", data, "-o", run, "--preprocess", steps)
        assert result.exit_code == 0, result.output
        config = json.loads((run / "config.json").read_text())
        assert config["model"]["preprocess"] == ([] if steps == "none" else [steps])
        vocabulary = json.loads((run / "vocabulary.json").read_text())
        assert ("amp" in vocabulary) is amp_is_a_word


def test_bad_stem_language_or_stop_words_exit_2_and_write_nothing(tmp_path, toy_file):
    run = tmp_path / "run"
    result = invoke("baseline", toy_file, "-o", run, "--stem", "klingon")
    assert_clean_error(result, "baseline stem", "'klingon'", "english", "porter", "french")
    result = invoke("baseline", toy_file, "-o", run, "--stop-words", "german")
    assert_clean_error(result, "baseline stop_words", "english", "'german'")
    result = invoke("baseline", toy_file, "-o", run, "--preprocess", "html,shout")
    assert_clean_error(result, "preprocess", "'shout'")
    assert not run.exists()


def test_baseline_help_names_the_flags():
    help_text = invoke("baseline", "--help").stdout
    for flag in ("--stem", "--stop-words", "--preprocess"):
        assert flag in help_text


def test_train_refuses_to_stem_saying_why(tmp_path, toy_file):
    run = tmp_path / "run"
    result = invoke("train", toy_file, "-o", run, "--stem", "english", *tiny_flags())
    assert_clean_error(
        result,
        "stem: only the linear baseline stems words (multihot baseline --stem)",
        "word pieces",
        "stems are not words it has seen",
    )
    assert not run.exists()
