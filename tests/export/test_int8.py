"""int8 exports judged on the run's validation rows: thresholds re-tuned for the int8 graph and
saved in it (and applied by the ONNX backend), the calibration refitted on its logits, a graph
that loses F1 refused with nothing left behind, the figures on the command line, and the parity
check for runs without validation rows."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from helpers import TINY, TOY_TEXTS, assert_clean_error, copy_run, invoke
from multihot import Classifier, Predictor
from multihot import export as exporting
from multihot.artifacts.runs import save_calibration
from multihot.artifacts.validation import read_validation
from multihot.core.errors import ConfigError, ExportError, RunDirError
from multihot.export import int8 as int8_export
from multihot.export import onnx as onnx_export
from multihot.export.parity import run_ids
from multihot.inference.onnx_backend import graph_calibration, onnx_probabilities, onnx_session
from multihot.scoring.calibration import Calibration
from multihot.scoring.probabilities import sigmoid
from multihot.scoring.thresholds import tune_thresholds


@pytest.fixture(scope="module")
def midpoint_run(toy_file, tmp_path_factory):
    """A tiny run whose every label is tuned to its own F1-optimal cut (``min_support=1``), so
    thresholds tuned on other probabilities come out different."""
    out = tmp_path_factory.mktemp("runs") / "midpoint"
    Classifier.train(
        toy_file,
        toy_file,
        output=out,
        epochs=30,
        lr=2e-3,
        batch_size=4,
        warmup_ratio=0.0,
        min_support=1,
        **TINY,
    )
    return out


def _meta(path) -> dict:
    import onnx

    return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}


def _validation_probs(run, graph):
    """The graph's probabilities of the run's validation texts, batched as the export batches."""
    clf = Classifier.load(run)
    validation = read_validation(run, clf.labels)
    ids = run_ids(clf, validation.texts)
    probs = onnx_probabilities(
        onnx_session(graph), ids, pad_token_id=clf.tokenizer.pad_token_id, batch_size=32
    )
    return clf, validation, probs


def _files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_int8_graph_keeps_thresholds_tuned_for_it_and_the_backend_applies_them(
    midpoint_run, toy_file, tmp_path, caplog
):
    run = copy_run(midpoint_run, tmp_path / "run")
    result = exporting.export_onnx(run, quantize="int8")
    path = run / "model.int8.onnx"
    assert result.path == path and result.parity is None and result.accuracy.ok
    meta = _meta(path)
    run_thresholds = json.loads((run / "thresholds.json").read_text())
    assert meta["precision"] == "int8" and meta["run_thresholds"] == run_thresholds
    assert meta["int8"]["accuracy"] == result.accuracy.to_dict()
    assert meta["int8"]["per_channel"] and meta["int8"]["reduce_range"]

    # The saved thresholds are the run's strategy tuned on the int8 graph's own probabilities.
    clf, validation, probs = _validation_probs(run, path)
    settings = clf.config.train.threshold_settings()
    tuned = tune_thresholds(validation.targets, probs, **settings)
    saved = meta["thresholds"]["thresholds"]
    assert list(saved.values()) == tuned.values.tolist()
    assert saved != run_thresholds["thresholds"]  # each label's cut moved with its probabilities

    predictor = Predictor.load(run, backend="onnx", onnx_path=path)
    assert predictor.thresholds.values.tolist() == tuned.values.tolist()
    assert predictor.engine.thresholds is predictor.thresholds
    probs = predictor.predict_proba(TOY_TEXTS)
    assert predictor.predict(TOY_TEXTS) == predictor.labels.decode(tuned.apply(probs))
    # The fp32 graph of the same run keeps applying the run's thresholds.
    exporting.export_onnx(run)
    fp32 = Predictor.load(run, backend="onnx")
    assert fp32.engine.thresholds is None
    assert fp32.thresholds.to_dict(fp32.label_names) == run_thresholds

    # Thresholds re-tuned in the run after the export: the graph keeps its own, and says so.
    clf.tune_thresholds(toy_file, strategy="global", force=True)
    clf.save_thresholds(run)
    with caplog.at_level(logging.WARNING, logger="multihot"):
        again = Predictor.load(run, backend="onnx", onnx_path=path)
    assert again.thresholds.values.tolist() == tuned.values.tolist()
    assert "changed since this graph was exported" in caplog.text


def test_int8_export_of_a_calibrated_run_refits_the_calibration(toy_run, toy_file, tmp_path):
    """The calibration inside the int8 graph is the run's method fitted on the int8 logits: what
    fitting it on an uncalibrated copy's int8 graph (the same quantized weights) gives."""
    run = copy_run(toy_run[1], tmp_path / "run")
    clf = Classifier.load(run)
    assert clf.calibration is not None  # training calibrates by default
    result = exporting.export_onnx(run, quantize="int8")
    assert result.accuracy.calibration_refitted
    meta = _meta(result.path)
    assert meta["run_calibration"] == graph_calibration(clf.calibration, clf.labels)
    refit = Calibration.from_dict(meta["calibration"], clf.label_names)
    assert refit.method == clf.calibration.method
    assert refit.fitted_on == int8_export.REFIT_SOURCE

    plain = copy_run(toy_run[1], tmp_path / "plain")
    save_calibration(plain, clf.labels, None)
    loose = exporting.Int8Settings(max_f1_drop=1.0)  # its thresholds fit the calibrated scale
    graph = exporting.export_onnx(plain, quantize="int8", int8=loose).path
    _, validation, uncalibrated = _validation_probs(plain, graph)
    logits = int8_export.logits_of(uncalibrated)
    min_support = max(1, clf.config.train.min_support)
    expected = Calibration.fit(
        validation.targets, logits, "x", clf.calibration.method, min_support, validation.known
    )
    np.testing.assert_allclose(refit.temperatures, expected.temperatures, rtol=1e-6)
    np.testing.assert_allclose(refit.biases, expected.biases, rtol=1e-6, atol=1e-9)
    _, _, calibrated = _validation_probs(run, result.path)
    np.testing.assert_allclose(calibrated, sigmoid(expected.apply(logits)), atol=1e-5)

    predictor = Predictor.load(run, backend="onnx", onnx_path=result.path)
    assert predictor.engine.calibration.to_dict(clf.label_names) == meta["calibration"]
    assert predictor.files.calibration is predictor.engine.calibration  # what the server shows

    # Calibrated anew after the export: the graph computes a calibration the run no longer has.
    clf.calibrate(toy_file, method="temperature", force=True)
    clf.save_calibration(run)
    with pytest.raises(RunDirError, match="exported with other calibration"):
        Predictor.load(run, backend="onnx", onnx_path=result.path)


def test_an_int8_graph_that_loses_f1_is_refused_and_leaves_nothing(
    toy_run, tiny_run, tmp_path, monkeypatch
):
    """A crafted loss: the graph quantized is that of a run trained one epoch (same labels and
    vocabulary size), whose decisions are far from the toy run's."""
    run = copy_run(toy_run[1], tmp_path / "run")
    weak = exporting.export_onnx(copy_run(tiny_run, tmp_path / "weak")).path
    quantize = onnx_export.quantize_int8
    monkeypatch.setattr(
        onnx_export, "quantize_int8", lambda source, path, settings: quantize(weak, path, settings)
    )
    before = _files(run)
    with pytest.raises(ExportError, match="int8 check failed") as failure:
        exporting.export_onnx(run, quantize="int8")
    message = str(failure.value)
    assert "nothing written" in message and "macro F1" in message and "drop +" in message
    result = invoke("export", run, "--quantize", "int8")
    assert_clean_error(
        result, "int8 check failed", "macro F1", "allowed 0.0050", "decisions agree on"
    )
    assert "--int8-keep-float" in result.stderr and "--max-f1-drop" in result.stderr
    assert _files(run) == before  # no graph, no temporary file
    # Allowed to lose everything, the same graph passes.
    assert invoke("export", run, "--quantize", "int8", "--max-f1-drop", "1").exit_code == 0


def test_int8_cli_prints_both_f1s_and_the_agreement(toy_run, tmp_path):
    run = copy_run(toy_run[1], tmp_path / "run")
    result = invoke("export", run, "--quantize", "int8")
    assert result.exit_code == 0, result.output
    accuracy = _meta(run / "model.int8.onnx")["int8"]["accuracy"]
    stdout = " ".join(result.stdout.split())  # the line may wrap
    assert f"fp32 {accuracy['fp32_macro_f1']:.4f}" in stdout
    assert f"int8 {accuracy['int8_macro_f1']:.4f}" in stdout
    assert f"decisions agree on {accuracy['decision_agreement']:.2%}" in stdout
    assert f"{accuracy['num_texts']} validation texts x 4 labels" in stdout
    assert "calibration tuned for it saved in the graph" in stdout
    assert f"saved{run / 'model.int8.onnx'}" in "".join(result.stdout.split())


def test_int8_without_validation_rows_falls_back_to_the_parity_check(
    toy_run, toy_file, tmp_path, monkeypatch
):
    import onnx

    clf, source = toy_run
    run = copy_run(source, tmp_path / "run")
    (run / "validation.jsonl").unlink()
    # The toy model's probabilities of random word texts sit close to its thresholds, where int8
    # noise flips decisions; which check runs and what the graph keeps is what this test is about.
    monkeypatch.setattr(onnx_export, "INT8_TOLERANCE", 1.0)
    monkeypatch.setattr(onnx_export, "INT8_MIN_AGREEMENT", 0.9)
    result = invoke("export", run, "--quantize", "int8", "--check-data", toy_file)
    assert result.exit_code == 0, result.output
    stdout = " ".join(result.stdout.split())
    # The parity line gives the figures, on the built-in texts and the 8 of --check-data.
    assert "onnx int8 vs torch fp32" in stdout and "decisions agree" in stdout
    assert "no validation rows" in stdout and "keeps the run's thresholds" in stdout
    path = run / "model.int8.onnx"
    graph = onnx.load(str(path))
    meta = {p.key: json.loads(p.value) for p in graph.metadata_props}
    assert meta["thresholds"] == json.loads((run / "thresholds.json").read_text())
    assert "run_thresholds" not in meta and meta["int8"]["per_channel"]
    # The weight matmuls are int8; the embedding lookups stay float (a quantized table means a
    # DequantizeLinear after every lookup).
    ops = {node.op_type for node in graph.graph.node}
    assert "MatMulInteger" in ops and "DequantizeLinear" not in ops
    predictor = Predictor.load(run, backend="onnx", onnx_path=path)
    assert predictor.engine.thresholds is None
    np.testing.assert_array_equal(predictor.thresholds.values, clf.thresholds.values)
    np.testing.assert_allclose(
        predictor.predict_proba(TOY_TEXTS), clf.predict_proba(TOY_TEXTS, precision="fp32"), atol=0.1
    )

    # An int8 graph that drifts from PyTorch is refused there, and leaves nothing.
    path.unlink()
    before = _files(run)
    monkeypatch.setattr(onnx_export, "INT8_MIN_AGREEMENT", 1.01)
    result = invoke("export", run, "--quantize", "int8")
    assert_clean_error(result, "parity check failed", "onnx int8", "decisions agree on")
    assert _files(run) == before


def test_int8_keep_float_leaves_the_matching_matmuls_in_float32(onnx_run, tmp_path):
    import onnx

    _, run, _ = onnx_run
    settings = exporting.Int8Settings(keep_float=r"layer\.0/output/dense")
    result = exporting.export_onnx(run, tmp_path / "g.onnx", quantize="int8", int8=settings)
    kept = _meta(result.path)["int8"]["kept_float"]
    assert kept and all("layer.0/output/dense" in name for name in kept)
    matmuls = {n.name for n in onnx.load(str(result.path)).graph.node if n.op_type == "MatMul"}
    assert set(kept) <= matmuls
    with pytest.raises(ConfigError, match="matches none of the graph's weight MatMuls"):
        exporting.export_onnx(
            run,
            tmp_path / "h.onnx",
            quantize="int8",
            int8=exporting.Int8Settings(keep_float="no-such-node"),
        )
    assert _files(tmp_path) == ["g.onnx"]


def test_int8_settings_and_flags_are_checked(toy_run):
    for bad in (-0.01, float("nan"), 2.0, True):
        with pytest.raises(ConfigError, match="max_f1_drop"):
            exporting.Int8Settings(max_f1_drop=bad)
    with pytest.raises(ConfigError, match="not a regular expression"):
        exporting.Int8Settings(keep_float="(")
    assert_clean_error(
        invoke("export", toy_run[1], "--max-f1-drop", "0.01"), "apply to --quantize int8 only"
    )
    assert_clean_error(
        invoke("export", toy_run[1], "--quantize", "int8", "--max-f1-drop", "-1"), "max_f1_drop"
    )


def test_the_gate_is_the_allowed_drop_in_out_of_fold_f1():
    figures = dict(
        num_texts=10,
        num_labels=2,
        decision_agreement=1.0,
        max_f1_drop=0.005,
        calibration_refitted=False,
        fp32_in_sample_f1=0.6,
        int8_in_sample_f1=0.6,
    )
    at_limit = exporting.Int8Accuracy(fp32_macro_f1=0.5, int8_macro_f1=0.495, **figures)
    beyond = exporting.Int8Accuracy(fp32_macro_f1=0.5, int8_macro_f1=0.4949, **figures)
    assert at_limit.ok and not beyond.ok
    assert "fp32 0.5000, int8 0.4949, drop +0.0051 (allowed 0.0050)" in beyond.summary()


def test_out_of_fold_f1_scores_each_text_with_thresholds_tuned_without_it():
    """Thresholds tuned on a text's own probabilities fit their noise: with labels unrelated to
    the probabilities, the in-sample F1 is flattering and the out-of-fold one is not."""
    from multihot.artifacts.validation import ValidationPredictions

    rng = np.random.default_rng(0)
    targets = (rng.random((400, 3)) < 0.2).astype(np.int8)
    probs = rng.random((400, 3)).astype(np.float32)
    rows = ValidationPredictions(["t"] * 400, targets, np.zeros((400, 3), np.float32))
    settings = {"strategy": "per-label", "min_support": 5}
    in_sample = tune_thresholds(targets, probs, **settings).metrics(targets, probs, list("abc"))
    oof = int8_export.out_of_fold_macro_f1(rows, probs, settings, list("abc"))
    assert oof < in_sample["macro_f1"] - 0.02
    # Perfectly separated labels: every fold's thresholds are right for the held-out texts.
    clean = np.where(targets == 1, 0.9, 0.1).astype(np.float32)
    assert int8_export.out_of_fold_macro_f1(rows, clean, settings, list("abc")) == 1.0
