"""A wrong value in a ``--config`` file or a run's ``config.json``: exit 2, one line naming the file
and the field, before any training or output."""

from __future__ import annotations

import json

import pytest

from helpers import assert_clean_error, copy_run, invoke, tiny_flags


@pytest.mark.parametrize("verb", ["train", "cv"])
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lr: abc\n", "lr: expected a number, got 'abc'"),
        ("epochs: two\n", "epochs: expected an integer, got 'two'"),
        ("model:\n  dropout: [0.1]\n", "dropout: expected a number, got [0.1]"),
    ],
)
def test_a_config_file_value_of_the_wrong_type(tmp_path, toy_file, verb, text, fragment):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    out = tmp_path / "out"
    result = invoke(verb, toy_file, "--config", config, "-o", out, *tiny_flags())
    assert_clean_error(result, f"{config}: {fragment}")
    assert not out.exists()


def test_a_run_config_value_of_the_wrong_type(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    raw = json.loads((run / "config.json").read_text())
    raw["model"]["max_length"] = "64"
    (run / "config.json").write_text(json.dumps(raw))
    result = invoke("predict", run, "--text", "hello")
    assert_clean_error(result, "config.json: max_length: expected an integer, got '64'")
