"""The README's flag table and ``multihot train --help`` name the same flags, both ways."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from multihot.cli import app
from multihot.cli.train import TRAIN_OPTIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def train_flags() -> set[str]:
    command = typer.main.get_command(app).commands["train"]
    return {
        opt
        for param in command.params
        for opt in [*param.opts, *param.secondary_opts]
        if opt.startswith("--") and not opt.startswith("--no-") and opt != "--help"
    }


def table_flags() -> set[str]:
    """Every ``--flag`` in the rows of the table under the README's "| flag |" header."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| flag |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return set(re.findall(r"`(--[a-z0-9-]+)", "\n".join(rows)))


def test_every_train_flag_is_in_the_readme_table_and_back():
    flags, table = train_flags(), table_flags()
    assert flags - table == set(), "flags missing from the README table"
    assert table - flags == set(), "README table names flags that train does not have"


def test_every_config_field_is_a_train_flag():
    """One field in the config dataclasses is one flag: the options come from the fields."""
    from dataclasses import fields

    from multihot.core.config import DataConfig, ModelConfig, TrainConfig

    names = {f.name for cls in (ModelConfig, TrainConfig, DataConfig) for f in fields(cls)}
    assert {o.name for o in TRAIN_OPTIONS} == names
    assert {"--" + n.replace("_", "-") for n in names} <= train_flags()
