"""The defaults a run takes when the user does not say: the encoder (minilm when installed,
scratch-mini otherwise, with one line saying so), the text preparation steps, and calibration on
the validation rows (thresholds tuned on the calibrated probabilities; --no-calibrate for raw ones).
"""

from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np
import pytest

from helpers import TINY, TOY_LABELS, TOY_TEXTS, assert_clean_error, train_cli, write_jsonl
from multihot import Classifier
from multihot.artifacts.rundir import CALIBRATION, CONFIG
from multihot.artifacts.validation import read_validation
from multihot.core.config import DEFAULT_PREPROCESS, PREPROCESS_STEPS, RunConfig
from multihot.modeling.encoders import (
    DEFAULT_ENCODER,
    FALLBACK_ENCODER,
    PACKAGED_ENCODERS,
)
from multihot.scoring.calibration import fit_calibration
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import tune_thresholds
from multihot.training.run import resolve_config

FIT = {"epochs": 3, "lr": 2e-3, "batch_size": 4, "warmup_ratio": 0.0, **TINY}
"""A few seconds of the tiny encoder; calibration and thresholds are left at their defaults."""


# ------------------------------------------------------------------------------------ encoder
def _installed(monkeypatch, installed: bool) -> None:
    """Make the default encoder's package look installed or not (the rest of find_spec as is)."""
    module = PACKAGED_ENCODERS[DEFAULT_ENCODER].module
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == module:
            return real("json") if installed else None  # any spec stands for "installed"
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_no_encoder_given_is_minilm_when_installed(monkeypatch, caplog):
    _installed(monkeypatch, True)
    assert RunConfig().model.encoder is None
    with caplog.at_level(logging.WARNING):
        config = resolve_config(None, {})
    assert config.model.encoder == DEFAULT_ENCODER == "minilm"
    assert config.model.pooling is not None and config.train.lr is not None
    assert not _warnings(caplog)


def test_no_encoder_given_is_scratch_mini_with_one_line_when_minilm_is_missing(monkeypatch, caplog):
    _installed(monkeypatch, False)
    with caplog.at_level(logging.WARNING):
        config = resolve_config(None, {"epochs": 1})
    assert config.model.encoder == FALLBACK_ENCODER == "scratch-mini"
    assert config.train.epochs == 1
    (line,) = _warnings(caplog)
    assert "scratch-mini" in line and PACKAGED_ENCODERS["minilm"].package in line
    assert "--encoder" in line


def test_a_given_encoder_is_kept_and_the_package_not_looked_for(monkeypatch, caplog):
    def find_spec(*_args, **_kwargs):
        raise AssertionError("looked for the default encoder's package")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with caplog.at_level(logging.WARNING):
        config = resolve_config(None, {"encoder": "scratch-tiny"})
    assert config.model.encoder == "scratch-tiny"
    assert not _warnings(caplog)


def test_a_new_run_takes_the_default_preparation_steps_a_given_list_is_kept():
    assert resolve_config(None, {"encoder": "scratch-tiny"}).model.preprocess == list(
        DEFAULT_PREPROCESS
    )
    chosen = resolve_config(None, {"encoder": "scratch-tiny", "preprocess": "lowercase,html"})
    assert chosen.model.preprocess == ["html", "lowercase"]  # in the order the steps run
    assert (
        resolve_config(None, {"encoder": "scratch-tiny", "preprocess": "none"}).model.preprocess
        == []
    )


# -------------------------------------------------------------------------------- calibration
@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory, toy_file):
    """A tiny run with the default calibration, validated on the toy texts three times over, so
    joy (12), anger (9) and sadness (6) have min_support (5) positives there and love (3) has
    not: ``(classifier as trained, run directory)``."""
    data = tmp_path_factory.mktemp("defaults")
    val = write_jsonl(
        data / "val.jsonl",
        [f"{text} {suffix}" for suffix in ("", "now", "again") for text in TOY_TEXTS],
        TOY_LABELS * 3,
    )
    out = tmp_path_factory.mktemp("runs") / "calibrated"
    return Classifier.train(toy_file, val, output=out, **FIT), out


def test_a_default_run_is_calibrated_and_its_thresholds_tuned_on_calibrated_probabilities(
    calibrated_run,
):
    _, run = calibrated_run
    assert (run / CALIBRATION).is_file()
    clf = Classifier.load(run)
    assert clf.config.train.calibrate and clf.config.model.preprocess == list(DEFAULT_PREPROCESS)
    summary = clf.metrics["calibration"]
    assert summary["data"] == "validation"
    assert summary["ece_after"] <= summary["ece_before"]
    assert set(summary["per_label"]) == set(clf.label_names)

    validation = read_validation(run, clf.labels)
    calibration = clf.calibration
    assert calibration is not None and calibration.fitted_on == "validation"
    # As training predicted them: at the default precision (bf16 where the processor has it).
    raw = clf.uncalibrated_logits(validation.texts)
    np.testing.assert_allclose(raw, validation.logits, atol=1e-4)
    probs = clf.predict_proba(validation.texts)
    np.testing.assert_allclose(probs, sigmoid(calibration.apply(raw)), atol=1e-6)
    assert not np.allclose(probs, sigmoid(raw)), "calibration changed nothing"

    settings = clf.config.train.threshold_settings()
    on_calibrated = tune_thresholds(
        validation.targets, sigmoid(calibration.apply(validation.logits)), **settings
    )
    on_raw = tune_thresholds(validation.targets, sigmoid(validation.logits), **settings)
    # validation.jsonl keeps the logits to float32 and a threshold falls between two probabilities
    np.testing.assert_allclose(clf.thresholds.values, on_calibrated.values, atol=1e-4)
    assert not np.allclose(clf.thresholds.values, on_raw.values, atol=1e-2)


def test_labels_with_fewer_than_min_support_positives_share_one_pooled_fit(calibrated_run):
    clf, run = calibrated_run
    assert clf.config.train.min_support == 5
    saved = json.loads((run / CALIBRATION).read_text())
    validation = read_validation(run, clf.labels)
    positives = validation.targets.sum(axis=0)
    rare = [j for j, count in enumerate(positives) if count < 5 or count == len(positives)]
    names = clf.label_names
    assert names.index("love") in rare
    pooled = fit_calibration(
        validation.targets[:, rare].reshape(-1, 1), validation.logits[:, rare].reshape(-1, 1)
    )
    for j in rare:
        assert saved["temperatures"][names[j]] == pytest.approx(pooled[0][0], rel=1e-4)
        assert saved["biases"][names[j]] == pytest.approx(pooled[1][0], rel=1e-4, abs=1e-6)
    fitted = [
        name
        for name in ("joy", "anger", "sadness")
        if saved["temperatures"][name] != pytest.approx(saved["temperatures"]["love"])
    ]
    assert fitted, saved


def test_no_calibrate_saves_no_calibration_and_gives_raw_probabilities(tmp_path, toy_file):
    out = tmp_path / "raw"
    clf = Classifier.train(toy_file, toy_file, output=out, calibrate=False, **FIT)
    assert not (out / CALIBRATION).exists()
    loaded = Classifier.load(out)
    assert loaded.calibration is None and "calibration" not in loaded.metrics
    assert loaded.config.train.calibrate is False
    np.testing.assert_allclose(
        loaded.predict_proba(TOY_TEXTS, precision="fp32"),
        sigmoid(clf.uncalibrated_logits(TOY_TEXTS, precision="fp32")),
        atol=1e-6,
    )


# ----------------------------------------------------------------------------------------- CLI
def test_cli_no_calibrate(tmp_path, toy_file):
    out = tmp_path / "run"
    result = train_cli(toy_file, out, "--epochs", 1, "--no-calibrate")
    assert result.exit_code == 0, result.output
    assert not (out / CALIBRATION).exists()
    assert json.loads((out / CONFIG).read_text())["train"]["calibrate"] is False


def test_cli_refuses_an_unknown_preparation_step_naming_the_allowed_ones(tmp_path, toy_file):
    out = tmp_path / "run"
    result = train_cli(toy_file, out, "--epochs", 1, "--preprocess", "bogus")
    assert_clean_error(result, "preprocess", "bogus", *PREPROCESS_STEPS)
    assert not out.exists()
