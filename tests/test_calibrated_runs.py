"""A calibrated run gives the same calibrated probabilities everywhere: Python, a reloaded run,
Predictor (torch and ONNX), the Hugging Face export; and training keeps its validation rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TOY_LABELS, TOY_TEXTS, assert_clean_error, copy_run, invoke
from multihot import Classifier
from multihot.artifacts.rundir import CALIBRATION, VALIDATION
from multihot.artifacts.runs import model_id, read_run_files
from multihot.artifacts.validation import read_validation
from multihot.core.errors import RunDirError
from multihot.inference.predictor import Predictor


@pytest.fixture
def calibrated(toy_run, toy_file, tmp_path):
    """A copy of the toy run, calibrated on the toy data and saved: ``(classifier, run)``."""
    _, src = toy_run
    run = copy_run(src, tmp_path / "toy")
    clf = Classifier.load(run)
    clf.calibrate(toy_file, precision="fp32", force=True)
    clf.save_calibration(run)
    return clf, run


def test_training_keeps_the_validation_rows_and_their_logits(toy_run, toy_file):
    clf, run = toy_run
    validation = read_validation(run, clf.labels)
    assert validation.texts == TOY_TEXTS
    assert validation.targets.shape == (len(TOY_TEXTS), len(clf.label_names))
    np.testing.assert_array_equal(validation.targets, clf.labels.encode(TOY_LABELS, "toy"))
    np.testing.assert_allclose(
        validation.logits,
        clf.uncalibrated_logits(TOY_TEXTS),
        atol=1e-4,  # as prediction computes them, before the run's calibration
    )
    assert (run / VALIDATION).is_file()


def test_the_baseline_keeps_its_validation_rows_too(baseline_run):
    files = read_run_files(baseline_run)
    validation = read_validation(baseline_run, files.labels)
    assert len(validation.texts) == validation.logits.shape[0] > 0


def test_calibration_is_applied_everywhere_and_keeps_each_labels_order(calibrated, toy_run):
    clf, run = calibrated
    raw = toy_run[0].predict_proba(TOY_TEXTS, precision="fp32")
    probs = clf.predict_proba(TOY_TEXTS, precision="fp32")
    assert not np.allclose(probs, raw), "calibration changed nothing"
    c, z = clf.calibration, clf.uncalibrated_logits(TOY_TEXTS, precision="fp32")
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-(z / c.temperatures + c.biases))), atol=1e-6)
    for j in range(raw.shape[1]):
        order = np.lexsort((probs[:, j], raw[:, j]))
        assert (np.diff(probs[order, j]) >= 0).all()
    reloaded = Classifier.load(run)
    np.testing.assert_allclose(reloaded.calibration.temperatures, clf.calibration.temperatures)
    np.testing.assert_allclose(
        reloaded.predict_proba(TOY_TEXTS, precision="fp32"), probs, atol=1e-6
    )
    predictor = Predictor.load(run, precision="fp32")
    np.testing.assert_allclose(predictor.predict_proba(TOY_TEXTS), probs, atol=1e-6)
    assert predictor.predict(TOY_TEXTS) == clf.predict(TOY_TEXTS, precision="fp32")
    saved = json.loads((run / CALIBRATION).read_text())
    assert set(saved["temperatures"]) == set(clf.label_names)
    assert saved["ece_after"] <= saved["ece_before"]


def test_calibration_changes_the_model_id(calibrated, toy_run):
    _, run = calibrated
    assert model_id(read_run_files(run)) != model_id(read_run_files(toy_run[1]))


def test_onnx_export_carries_the_temperatures(calibrated):
    pytest.importorskip("onnxruntime")
    from multihot.export import export_onnx

    clf, run = calibrated
    export_onnx(run)
    onnx = Predictor.load(run, backend="onnx")
    np.testing.assert_allclose(
        onnx.predict_proba(TOY_TEXTS), clf.predict_proba(TOY_TEXTS, precision="fp32"), atol=1e-5
    )


def test_an_onnx_graph_exported_before_calibration_is_refused(onnx_run, toy_file, tmp_path):
    _, src, _ = onnx_run
    run = copy_run(src, tmp_path / "toy")
    clf = Classifier.load(run)
    clf.calibrate(toy_file, force=True)
    clf.save_calibration(run)
    with pytest.raises(RunDirError, match="other calibration than the run has"):
        Predictor.load(run, backend="onnx")


def test_a_calibrated_baseline(baseline_run, toy_file, tmp_path):
    run = copy_run(baseline_run, tmp_path / "baseline")
    clf = Classifier.load(run)
    before = clf.predict_proba(TOY_TEXTS)
    clf.calibrate(toy_file, force=True)
    clf.save_calibration(run)
    after = Predictor.load(run).predict_proba(TOY_TEXTS)
    np.testing.assert_allclose(after, clf.predict_proba(TOY_TEXTS), atol=1e-6)
    assert not np.allclose(before, after)


def test_cli_calibrate_saves_temperatures_and_thresholds(toy_run, toy_file, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "toy")
    # Training calibrated the run already (calibrate is on by default): a dry run leaves that be.
    trained = (run / CALIBRATION).read_bytes()
    dry = invoke("tune-thresholds", run, toy_file, "--calibrate", "--force", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "ECE" in dry.output and (run / CALIBRATION).read_bytes() == trained
    assert not (run / "thresholds.previous.json").exists()
    result = invoke("tune-thresholds", run, toy_file, "--calibrate", "--force")
    assert result.exit_code == 0, result.output
    assert (run / CALIBRATION).is_file() and (run / "thresholds.previous.json").is_file()
    assert Classifier.load(run).calibration is not None


def test_a_corrupt_calibration_file_is_a_clean_error(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "toy")
    (run / CALIBRATION).write_text(json.dumps({"temperatures": {"joy": -1}}))
    with pytest.raises(RunDirError, match="calibration.json"):
        Classifier.load(run)
    result = invoke("predict", run, "--text", "hello")
    assert_clean_error(result, "calibration.json")


def test_calibrating_on_too_little_data_changes_nothing(toy_run, tmp_path):
    from helpers import write_jsonl
    from multihot.core.errors import DataError

    clf = Classifier.load(toy_run[1])
    thin = write_jsonl(tmp_path / "thin.jsonl", TOY_TEXTS[:2], TOY_LABELS[:2])
    before, calibration = clf.thresholds.values.copy(), clf.calibration
    with pytest.raises(DataError):
        clf.calibrate(thin)
    assert clf.calibration is calibration  # the one training fitted, kept
    np.testing.assert_array_equal(clf.thresholds.values, before)
