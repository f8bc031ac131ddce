"""Exports (ONNX fp32, Hugging Face) against PyTorch, the onnx backend of predict, refusals, and
exports that drift: an error with the figures, and nothing left behind. int8 graphs: test_int8.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TINY, TOY_TEXTS, assert_clean_error, copy_run, invoke, read_jsonl
from multihot import Classifier, Predictor
from multihot import export as exporting
from multihot.core.errors import ExportError
from multihot.export import hf as hf_export
from multihot.export import onnx as onnx_export
from multihot.export import parity as parity_check


@pytest.fixture(scope="module")
def pooler_run(toy_file, tmp_path_factory):
    """A tiny BERT with pooling 'pooler' and a linear head: exactly BertForSequenceClassification."""
    out = tmp_path_factory.mktemp("runs") / "pooler"
    clf = Classifier.train(
        toy_file, toy_file, output=out, epochs=3, lr=2e-3, batch_size=4, pooling="pooler", **TINY
    )
    return clf, out


def _leftovers(directory):
    """Temporary files or directories an export may have left (their names start with a dot)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------------------ ONNX
def test_onnx_export_matches_torch_and_carries_its_metadata(onnx_run):
    import onnx

    clf, run, result = onnx_run
    assert result.path == run / "model.onnx" and result.path.is_file()
    parity = result.parity
    assert parity.max_abs_diff <= 1e-4 and parity.decision_agreement == 1.0
    assert parity.num_texts == parity_check.NUM_CHECK_TEXTS and parity.num_labels == 4
    assert _leftovers(run) == []

    model = onnx.load(str(result.path))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["labels"] == ["anger", "joy", "love", "sadness"]
    assert meta["thresholds"] == json.loads((run / "thresholds.json").read_text())
    assert meta["max_length"] == TINY["max_length"]
    assert meta["multihot_version"] == __import__("multihot").__version__
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert set(inputs) == {"input_ids", "attention_mask"}
    for tensor_type in inputs.values():
        assert tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in tensor_type.shape.dim] == ["batch", "sequence"]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    # Attention traced as matmul + softmax (the form onnxruntime fuses), not as the exporter's
    # spelling of scaled_dot_product_attention, which guards its softmax with IsNaN/Where.
    ops = {node.op_type for node in model.graph.node}
    assert "Softmax" in ops and "IsNaN" not in ops

    predictor = Predictor.load(run, backend="onnx")
    texts = TOY_TEXTS + ["a much longer text " * 20, "x"]  # padding and truncation in one batch
    np.testing.assert_allclose(
        predictor.predict_proba(texts, batch_size=3),
        clf.predict_proba(texts, precision="fp32"),
        atol=1e-4,
    )
    assert predictor.predict(texts) == clf.predict(texts, precision="fp32")
    assert predictor.label_names == clf.label_names
    np.testing.assert_array_equal(predictor.thresholds.values, clf.thresholds.values)


def test_onnx_export_of_a_first_token_model_matches_the_whole_model(pooler_run, tmp_path):
    """A pooler model's graph computes the last layer for the first token only; the export's
    parity check compares it with the whole PyTorch model, and so does this test."""
    from multihot.inference.torch_backend import predict_logits
    from multihot.scoring.calibration import calibrated
    from multihot.scoring.probabilities import sigmoid

    clf, run = pooler_run
    result = exporting.export_onnx(run, tmp_path / "model.onnx")
    assert result.parity.max_abs_diff <= 1e-4
    texts = TOY_TEXTS + ["a much longer text " * 20, "x"]
    predictor = Predictor.load(run, backend="onnx", onnx_path=result.path)
    ids = parity_check.run_ids(clf, texts)
    pad = clf.tokenizer.pad_token_id
    logits = predict_logits(clf.model, ids, pad_token_id=pad, batch_size=3, prune=False)
    whole = sigmoid(calibrated(logits, clf.calibration))  # the graph computes the calibration
    np.testing.assert_allclose(predictor.predict_proba(texts, batch_size=3), whole, atol=1e-5)


def test_onnx_sessions_keep_residual_add_and_layernorm_apart(onnx_run, tmp_path):
    """onnxruntime's SkipLayerNormalization (what its SkipLayerNormFusion makes of a residual Add
    and the LayerNorm after it, in an int8 graph) is a slow scalar kernel on CPU; sessions run the
    two ops unfused.
    The second session shows the fusion would happen here without that, so a renamed optimizer in
    a later onnxruntime (silently not disabled) fails this test."""
    import onnx
    import onnxruntime as ort

    from multihot.inference.onnx_backend import onnx_session

    _, run, _ = onnx_run
    graph = exporting.export_onnx(run, tmp_path / "int8.onnx", quantize="int8").path

    def optimized_ops(path, **kwargs) -> set[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(path)
        if kwargs:
            ort.InferenceSession(str(graph), options, **kwargs)
        else:
            onnx_session(graph, options)
        return {node.op_type for node in onnx.load(str(path)).graph.node}

    ours = optimized_ops(tmp_path / "ours.onnx")
    assert "LayerNormalization" in ours and "SkipLayerNormalization" not in ours
    default = optimized_ops(tmp_path / "default.onnx", providers=["CPUExecutionProvider"])
    assert "SkipLayerNormalization" in default


def test_onnx_batches_run_concurrently_with_the_same_output(onnx_run):
    """Several batches at once (one core each) give what one batch at a time gives, rows in input
    order; a batch's error comes out of the call."""
    from multihot.data.encoding import tokenize
    from multihot.inference.onnx_backend import onnx_probabilities, onnx_session

    clf, run, _ = onnx_run
    session = onnx_session(run / "model.onnx")
    texts = [f"{t} {'again ' * (i % 5)}" for i, t in enumerate(TOY_TEXTS * 5)]
    ids = tokenize(clf.tokenizer, texts, clf.config.model.max_length)
    pad = clf.tokenizer.pad_token_id
    one = onnx_probabilities(session, ids, pad_token_id=pad, batch_size=4, workers=1)
    three = onnx_probabilities(session, ids, pad_token_id=pad, batch_size=4, workers=3)
    np.testing.assert_array_equal(three, one)  # the same batches: the same numbers
    # Fewer texts than a batch per worker: smaller batches, the same values up to rounding.
    few = onnx_probabilities(session, ids[:3], pad_token_id=pad, batch_size=64, workers=2)
    np.testing.assert_allclose(few, one[:3], atol=1e-6)
    torch_probs = clf.predict_proba(texts, precision="fp32")
    np.testing.assert_allclose(one, torch_probs, atol=1e-5)

    class Failing:
        def __getattr__(self, name):
            return getattr(session, name)

        def run(self, *args):
            raise RuntimeError("batch failed")

    with pytest.raises(RuntimeError, match="batch failed"):
        onnx_probabilities(Failing(), ids, pad_token_id=pad, batch_size=4, workers=2)


def test_predict_backend_onnx_gives_the_torch_output(onnx_run, toy_file, tmp_path):
    _, run, _ = onnx_run
    rows = {}
    for backend, flags in (("torch", ["--precision", "fp32"]), ("onnx", [])):
        out = tmp_path / f"{backend}.jsonl"
        args = ("predict", run, toy_file, "-o", out, "--batch-size", 3, "--chunk-size", 5)
        result = invoke(*args, "--backend", backend, *flags)
        assert result.exit_code == 0, result.output
        rows[backend] = read_jsonl(out)
    torch_rows, onnx_rows = rows["torch"], rows["onnx"]
    assert [r["text"] for r in onnx_rows] == [r["text"] for r in torch_rows] == TOY_TEXTS
    assert [r["labels"] for r in onnx_rows] == [r["labels"] for r in torch_rows]
    for a, b in zip(onnx_rows, torch_rows, strict=True):
        assert a["probs"] == pytest.approx(b["probs"], abs=1e-4)

    # An explicit graph path, and texts on the command line.
    result = invoke(
        "predict",
        run,
        "--text",
        TOY_TEXTS[0],
        "--backend",
        "onnx",
        "--onnx-model",
        run / "model.onnx",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == torch_rows[0]["labels"]


def test_seed_ensemble_exports(toy_file, tmp_path):
    clf = Classifier.train(
        toy_file, toy_file, epochs=1, batch_size=4, ensemble=2, output=tmp_path / "ens", **TINY
    )
    result = exporting.export_onnx(tmp_path / "ens", tmp_path / "out" / "ens.onnx")
    assert result.path == tmp_path / "out" / "ens.onnx" and result.parity.max_abs_diff <= 1e-4
    predictor = Predictor.load(tmp_path / "ens", backend="onnx", onnx_path=result.path)
    np.testing.assert_allclose(
        predictor.predict_proba(TOY_TEXTS),
        clf.predict_proba(TOY_TEXTS, precision="fp32"),
        atol=1e-4,
    )


# ---------------------------------------------------------------------------------- Hugging Face
def test_hf_export_loads_with_auto_model_and_pipeline(pooler_run, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    clf, run = pooler_run
    out = tmp_path / "hf"
    result = invoke("export", run, "--format", "hf", "-o", out)
    assert result.exit_code == 0, result.output
    assert "hf vs torch fp32" in result.stdout and f"saved {out}" in result.stdout
    assert _leftovers(tmp_path) == []

    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    config = model.config
    assert type(model).__name__ == "BertForSequenceClassification"
    assert config.problem_type == "multi_label_classification"
    assert config.id2label == dict(enumerate(clf.label_names))
    assert config.label2id == {name: i for i, name in enumerate(clf.label_names)}
    assert config.multihot_thresholds == json.loads((run / "thresholds.json").read_text())

    expected = clf.predict_proba(TOY_TEXTS, precision="fp32")
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(TOY_TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        probs = torch.sigmoid(model(**batch).logits).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)

    classify = pipeline(
        "text-classification", model=str(out), function_to_apply="sigmoid", top_k=None
    )
    for scores, row in zip(classify(TOY_TEXTS), expected, strict=True):
        by_label = {s["label"]: s["score"] for s in scores}
        assert [by_label[name] for name in clf.label_names] == pytest.approx(row, abs=1e-5)

    # Exporting again replaces an earlier export of ours.
    assert invoke("export", run, "--format", "hf", "-o", out).exit_code == 0


def test_hf_export_of_a_calibrated_run_gives_calibrated_probabilities(
    pooler_run, toy_file, tmp_path
):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = copy_run(pooler_run[1], tmp_path / "pooler")
    clf = Classifier.load(run)
    clf.calibrate(toy_file, force=True)
    clf.save_calibration(run)
    out = tmp_path / "hf"
    assert invoke("export", run, "--format", "hf", "-o", out).exit_code == 0
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = AutoTokenizer.from_pretrained(out)(TOY_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        probs = torch.sigmoid(model(**batch).logits).numpy()
    np.testing.assert_allclose(probs, clf.predict_proba(TOY_TEXTS, precision="fp32"), atol=1e-5)
    assert not np.allclose(probs, pooler_run[0].predict_proba(TOY_TEXTS, precision="fp32"))


# ------------------------------------------------------------------------------------- refusals
def test_baseline_runs_cannot_export(baseline_run):
    for fmt in ("onnx", "hf"):
        assert_clean_error(invoke("export", baseline_run, "--format", fmt), "baseline")
    assert not (baseline_run / "model.onnx").exists()
    assert_clean_error(
        invoke("predict", baseline_run, "--text", "hi", "--backend", "onnx"), "baseline"
    )


def test_hf_export_needs_pooler_and_linear(toy_run, tmp_path):
    pooling = toy_run[0].config.model.pooling
    assert pooling != "pooler"
    result = invoke("export", toy_run[1], "--format", "hf", "-o", tmp_path / "hf")
    assert_clean_error(
        result, "pooling 'pooler'", "head 'linear'", f"pooling '{pooling}'", "--format onnx"
    )
    assert not (tmp_path / "hf").exists()


def test_hf_export_never_replaces_other_directories(pooler_run, tmp_path):
    _, run = pooler_run
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert_clean_error(
        invoke("export", run, "--format", "hf", "-o", tmp_path / "mine"), "refusing to replace"
    )
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert_clean_error(
        invoke("export", run, "--format", "hf", "-o", run), "would replace the run directory"
    )


def test_predict_onnx_without_an_export(toy_run, tmp_path):
    _, run = toy_run
    assert_clean_error(
        invoke("predict", run, "--text", "hi", "--backend", "onnx"),
        "model.onnx: no such ONNX model",
        f"multihot export {run} --format onnx",
    )
    assert_clean_error(
        invoke("predict", run, "--text", "hi", "--onnx-model", tmp_path / "m.onnx"),
        "--onnx-model needs --backend onnx",
    )
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    assert_clean_error(
        invoke("predict", run, "--text", "hi", "--backend", "onnx", "--onnx-model", broken),
        "broken.onnx: cannot load ONNX model",
    )


# ------------------------------------------------------------------------------ parity failures
def test_an_onnx_export_that_drifts_leaves_nothing(toy_run, tmp_path, monkeypatch):
    run = copy_run(toy_run[1], tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    monkeypatch.setattr(onnx_export, "FP32_TOLERANCE", -1.0)  # any difference, even 0, is drift
    with pytest.raises(ExportError, match=r"parity check failed: onnx fp32 .* max \|prob diff\|"):
        exporting.export_onnx(run)
    result = invoke("export", run)
    assert_clean_error(result, "parity check failed", "onnx fp32", "decisions agree on")
    assert sorted(p.name for p in run.iterdir()) == before


def test_an_hf_export_that_drifts_leaves_nothing(pooler_run, tmp_path, monkeypatch):
    monkeypatch.setattr(hf_export, "FP32_TOLERANCE", -1.0)
    result = invoke("export", pooler_run[1], "--format", "hf", "-o", tmp_path / "hf")
    assert_clean_error(result, "parity check failed", "hf vs torch fp32")
    assert list(tmp_path.iterdir()) == []
