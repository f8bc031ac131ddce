"""What the tests share besides fixtures: the toy data, the CLI through Typer's runner, run copies.

Every test file imports from here (``from helpers import ...``; pyproject's ``pythonpath`` puts
``tests/`` on ``sys.path``), never from another test file. Fixtures live in ``conftest.py``.
Heavy libraries are imported inside the functions that need them, so importing this is cheap.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SAMPLE = ROOT / "examples" / "goemotions"
FIXTURES = TESTS / "fixtures"

# A handful of texts that a tiny encoder can learn exactly (the overfit test).
TOY_TEXTS = [
    "i love this so much",
    "this is terrible and sad",
    "what a great day",
    "i hate waiting in line",
    "happy happy joy joy",
    "so angry right now",
    "lovely weather today",
    "awful service and rude staff",
]
TOY_LABELS = [
    ["joy", "love"],
    ["sadness"],
    ["joy"],
    ["anger"],
    ["joy"],
    ["anger"],
    ["joy"],
    ["anger", "sadness"],
]

# Small and fast: 2 layers of hidden 128, tiny vocabulary; fp32 so results are exact.
TINY = {
    "encoder": "scratch-tiny",
    "vocab_size": 120,
    "max_length": 32,
    "precision": "fp32",
    "seed": 0,
}


# ------------------------------------------------------------------------------------------ files
def write_jsonl(path: Path, texts, labels) -> Path:
    """A JSON Lines file of ``{"text": ..., "labels": [...]}`` records."""
    with open(path, "w", encoding="utf-8") as fh:
        for text, names in zip(texts, labels, strict=True):
            fh.write(json.dumps({"text": text, "labels": names}) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON Lines file (a run's history.jsonl, predictions written with -o)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a run directory to change or write into; a shared fixture's run stays as it is."""
    return Path(shutil.copytree(run, destination))


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes, to show nothing changed."""
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


class Payload:
    """Unpickling this calls ``marker.touch()``: harmless, but proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def write_payload(path: Path, marker: Path) -> Path:
    """A torch.save checkpoint that looks like a state dict but runs code when unpickled."""
    import torch

    torch.save({"embeddings.word_embeddings.weight": Payload(marker)}, path)
    return path


# ------------------------------------------------------------------------------- command line
def invoke(*args, input=None):
    """``multihot ARGS...`` in this process, through Typer's CliRunner (stdout and stderr apart)."""
    from typer.testing import CliRunner

    from multihot.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_clean_error(result, *fragments):
    """Exit 2, one line naming what was wrong, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    # Log lines (INFO ...) may come first; the error is one line, and the last.
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error:"), result.stderr
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    for fragment in fragments:
        assert fragment in message, message


def tiny_flags():
    """The command-line spelling of :data:`TINY`."""
    return [
        "--encoder", TINY["encoder"], "--vocab-size", TINY["vocab_size"], "--max-length", TINY["max_length"],
        "--precision", TINY["precision"], "--seed", TINY["seed"],
    ]  # fmt: skip


def train_cli(data: Path, output: Path, *flags):
    """``multihot train DATA --val DATA -o OUTPUT`` on the tiny encoder; ``flags`` come last, so
    they may override the tiny settings."""
    return invoke("train", data, "--val", data, "-o", output, *tiny_flags(), *flags)


def subprocess_env() -> dict[str, str]:
    """The environment for a ``multihot`` started in a fresh interpreter: this checkout's package
    first, and ``tests/`` so that code run there can import this module."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
