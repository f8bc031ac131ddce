"""A search space file as a user writes it: numbers in any YAML spelling, and every wrong value
named by the file and the field (never a Python TypeError)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from multihot.core.errors import ConfigError
from multihot.tuning.space import Choice, Fixed, FloatRange, IntRange, SearchSpace

README = Path(__file__).resolve().parents[2] / "README.md"
README_EXAMPLE = "{low: 1e-5, high: 1e-3, log: true}"
"""Copied verbatim from README.md's ``multihot search`` section."""


def test_the_readme_example_is_read(tmp_path):
    assert README_EXAMPLE in README.read_text(encoding="utf-8")
    path = tmp_path / "space.yaml"
    path.write_text(f"lr: {README_EXAMPLE}\n")
    assert SearchSpace.from_file(path).params == {"lr": FloatRange(1e-5, 1e-3, log=True)}


def test_numbers_in_any_yaml_spelling(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "lr: {low: 1E-5, high: .001, log: true}\n"
        "epochs: {low: 2, high: 1e1}\n"
        "vocab_size: {choices: [1_000, 2e3]}\n"
        "weight_decay: 1e-2\n"
    )
    space = SearchSpace.from_file(path)
    assert space.params == {
        "lr": FloatRange(1e-5, 1e-3, log=True),
        "epochs": IntRange(2, 10),
        "vocab_size": Choice((1000, 2000)),
        "weight_decay": Fixed(0.01),
    }
    assert all(type(v) is int for v in space.params["vocab_size"].choices)


BAD_SPECS = [
    ("lr: {low: abc, high: 1e-3}", "lr: low: expected a number, got 'abc'"),
    ("lr: {low: '1e-5', high: 1e-3}", "lr: low: expected a number, got '1e-5'"),
    ("lr: {low: 1e-5, high: .nan}", "lr: high: expected a number, got nan"),
    ("lr: {low: 1e-5, high: 1e-3, log: maybe}", "lr: log: expected true or false, got 'maybe'"),
    ("lr: '1e-4'", "lr: expected a number, got '1e-4'"),
    ("epochs: {low: 2.5, high: 8}", "epochs: low: expected an integer, got 2.5"),
    ("epochs: {low: 1, high: 1e300}", "epochs: high: expected an integer, got 1e\\+300"),
    ("lr: {low: 1e-5, high: 1e-3, step: x}", "lr: step: expected a number, got .x."),
    ("epochs: {choices: [2, three]}", "epochs: expected an integer, got 'three'"),
    ("batch_size: {choices: [8, '16']}", "batch_size: expected an integer, got '16'"),
    ("dropout: {choices: [0.1, yes]}", "dropout: expected a number, got True"),
    ("top1_fallback: {choices: [true, 'no']}", "top1_fallback: expected true or false, got 'no'"),
    ("head: {choices: [linear, 2]}", "head: expected a string, got 2"),
    ("head: {low: 1, high: 2}", "head: a range needs a number field"),
    ("ensemble_pooling: {choices: [[mean, 1]]}", "ensemble_pooling: expected a list of names"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SPECS)
def test_a_wrong_value_names_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {message}"):
        SearchSpace.from_file(path)
