"""``multihot train DATA --init-from RUN``: a new run from a finished run's model on the command
line; model flags other than the run's are refused with exit 2 (the library's behaviour is in
``tests/training/test_init_from.py``)."""

from __future__ import annotations

import json

from helpers import TOY_LABELS, TOY_TEXTS, assert_clean_error, invoke, train_cli, write_jsonl

QUICK = ("--epochs", 1, "--batch-size", 8, "--no-compare-baseline")


def test_a_new_label_trains_from_the_run_and_is_recorded(tiny_run, tmp_path):
    labels = [names + (["surprise"] if i < 3 else []) for i, names in enumerate(TOY_LABELS)]
    data = write_jsonl(tmp_path / "more.jsonl", TOY_TEXTS, labels)
    # The tiny flags repeat the run's model settings: allowed.
    result = train_cli(data, tmp_path / "next", "--init-from", tiny_run, *QUICK)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "next" / "config.json").read_text())
    assert config["init_from"]["run"] == str(tiny_run.resolve())
    assert config["init_from"]["new_labels"] == ["surprise"]
    assert "surprise" in json.loads((tmp_path / "next" / "labels.json").read_text())


def test_a_shape_flag_is_refused(toy_file, tiny_run, tmp_path):
    result = train_cli(
        toy_file, tmp_path / "x", "--init-from", tiny_run, "--pooling", "max", *QUICK
    )
    assert_clean_error(result, "--pooling max (the run has mean)", "without --init-from")
    assert not (tmp_path / "x").exists()
    result = train_cli(toy_file, tmp_path / "x", "--init-from", tiny_run, "--max-length", 64)
    assert_clean_error(result, "--max-length 64 (the run has 32)")


def test_a_missing_label_is_refused_unless_drop_labels(tiny_run, tmp_path):
    labels = [[name for name in names if name != "love"] for names in TOY_LABELS]
    data = write_jsonl(tmp_path / "nolove.jsonl", TOY_TEXTS, labels)
    result = train_cli(data, tmp_path / "x", "--init-from", tiny_run, *QUICK)
    assert_clean_error(result, "labels the data lacks: love", "--drop-labels")
    result = train_cli(data, tmp_path / "next", "--init-from", tiny_run, "--drop-labels", *QUICK)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "next" / "config.json").read_text())["init_from"][
        "dropped_labels"
    ] == ["love"]


def test_drop_labels_needs_init_from_and_resume_takes_neither(toy_file, tiny_run, tmp_path):
    assert_clean_error(train_cli(toy_file, tmp_path / "x", "--drop-labels"), "--init-from")
    result = invoke("train", "--resume", tmp_path / "x", "--init-from", tiny_run)
    assert_clean_error(result, "drop --init-from")


def test_help_names_the_flags():
    result = invoke("train", "--help")
    assert "--init-from" in result.output and "--drop-labels" in result.output
