"""--report-to: every evaluation logged live to TensorBoard through Accelerate's trackers."""

from __future__ import annotations

import importlib.util

import pytest

from helpers import TINY, assert_clean_error, train_cli
from multihot import Classifier
from multihot.core.config import TrainConfig
from multihot.core.errors import ConfigError
from multihot.training.tracking import flat_hparams


def test_every_evaluation_reaches_tensorboard(toy_file, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    clf = Classifier.train(
        toy_file,
        toy_file,
        output=tmp_path / "run",
        epochs=3,
        batch_size=4,
        report_to="tensorboard",
        tracking_dir=str(tmp_path / "tracking"),
        **TINY,
    )
    runs = list((tmp_path / "tracking").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("run-")
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"val/macro_f1", "val/loss", "train/loss"} <= set(scalars)
    logged = events.Scalars("val/macro_f1")
    assert [e.step for e in logged] == [r["step"] for r in clf.history]
    assert [e.value for e in logged] == pytest.approx([r["macro_f1"] for r in clf.history])


def test_unknown_or_missing_trackers_are_clear_errors(toy_file, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="report_to: expected one of tensorboard, mlflow"):
        TrainConfig(report_to="wandb")
    assert TrainConfig(report_to=" tensorboard, mlflow ").trackers == ["tensorboard", "mlflow"]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    result = train_cli(toy_file, tmp_path / "run", "--epochs", "1", "--report-to", "mlflow")
    assert_clean_error(result, "mlflow is not installed")
    assert not (tmp_path / "run").exists()


def test_hyperparameters_are_flat_scalars():
    flat = flat_hparams({"model": {"encoder": "x", "dropout": None}, "train": {"lr": 1e-4}})
    assert flat == {"model/encoder": "x", "model/dropout": "none", "train/lr": 1e-4}
