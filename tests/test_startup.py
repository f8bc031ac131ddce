"""Start-up follows the layers: help and argument errors import no model library, and ONNX
prediction imports neither torch nor transformers (times are measured in benchmarks, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT, TOY_TEXTS, copy_run

HEAVY = ("torch", "transformers", "accelerate", "sklearn", "pandas")
PROBE = """
import json, sys
from multihot.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": [m for m in %r if m in sys.modules]}), file=sys.stderr)
"""


def imported(*args) -> dict:
    """Run the CLI with ``args`` in a fresh interpreter; its exit code and the heavy modules it
    had imported by the end."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args", [["--help"], ["train", "--help"], ["predict", "--help"], ["train", "--epochs", "x"]]
)
def test_help_and_argument_errors_import_no_model_library(args):
    result = imported(*args)
    assert result["heavy"] == [], result
    assert result["code"] in (0, 2)


@pytest.fixture(scope="module")
def exported(toy_run, tmp_path_factory):
    from multihot.export import export_onnx

    run = copy_run(toy_run[1], tmp_path_factory.mktemp("startup") / "run")
    export_onnx(run)
    return run


def test_onnx_prediction_imports_neither_torch_nor_transformers(exported, toy_run):
    result = imported("predict", exported, "--text", TOY_TEXTS[0], "--backend", "onnx")
    assert result == {"code": 0, "heavy": []}, result
    # And it gives what the torch backend gives (bf16 there: within its rounding).
    from multihot import Predictor

    onnx = Predictor.load(exported, backend="onnx").predict_proba(TOY_TEXTS)
    torch_probs = toy_run[0].predict_proba(TOY_TEXTS, precision="fp32")
    assert abs(onnx - torch_probs).max() < 1e-4
