"""A long document gets the same probabilities alone or batched with short texts, and the same
through Python, ``Predictor``, the CLI, ONNX and the server: they all take the one encoding step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers import FILLER, Server, assert_clean_error, copy_run, invoke, read_jsonl
from multihot import MultihotError, Predictor
from multihot.data.encoding import Reading


@pytest.fixture(scope="module")
def mixed(long_runs):
    """Long test documents and short texts, interleaved."""
    long = long_runs["test"][0][:6]
    short = [" ".join(FILLER[i : i + 3 + i]) for i in range(6)]
    return [text for pair in zip(short, long, strict=True) for text in pair]


@pytest.fixture(scope="module")
def chunk_onnx(long_runs, tmp_path_factory):
    from multihot import export as exporting

    run = copy_run(long_runs["chunk"][1], tmp_path_factory.mktemp("long-onnx") / "chunk")
    return run, exporting.export_onnx(run)


def test_alone_or_batched_with_short_texts(long_runs, mixed):
    clf, _ = long_runs["chunk"]
    batched = clf.predict_proba(mixed, precision="fp32")
    alone = np.concatenate([clf.predict_proba([t], precision="fp32") for t in mixed])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # A budget of two windows per encoder batch: documents alone, encoded two windows at a time.
    backend = clf.backend
    full = backend.reading
    try:
        backend.reading = dataclasses.replace(full, batch_tokens=2 * full.max_length)
        np.testing.assert_allclose(clf.predict_proba(mixed, precision="fp32"), batched, atol=1e-5)
    finally:
        backend.reading = full


def test_python_predictor_cli_onnx_and_server_agree(long_runs, mixed, chunk_onnx, tmp_path):
    clf, run = long_runs["chunk"]
    reference = clf.predict_proba(mixed, precision="fp32")
    names = clf.label_names
    predictor = Predictor.load(run, precision="fp32")
    assert isinstance(predictor.engine.reading, Reading) and predictor.engine.reading.chunked
    np.testing.assert_allclose(predictor.predict_proba(mixed), reference, atol=1e-5)

    out = tmp_path / "predictions.jsonl"
    texts = sum((["--text", t] for t in mixed), [])
    result = invoke("predict", run, *texts, "--precision", "fp32", "-o", out)
    assert result.exit_code == 0, result.output
    cli = np.array([[row["probs"][n] for n in names] for row in read_jsonl(out)])
    np.testing.assert_allclose(cli, reference, atol=1e-5)

    onnx_run, exported = chunk_onnx
    assert exported.parity.max_abs_diff <= 1e-4
    graph = Predictor.load(onnx_run, backend="onnx")
    np.testing.assert_allclose(graph.predict_proba(mixed), reference, atol=1e-4)

    server = Server(run, "--precision", "fp32")
    try:
        status, _, answer = server.post({"texts": mixed, "return_probs": True})
        _, _, model = server.get("/v1/model")
    finally:
        server.stop()
    assert status == 200, answer
    served = np.array([[p["probs"][n] for n in names] for p in answer["predictions"]])
    np.testing.assert_allclose(served, reference, atol=1e-5)
    assert model["long_text"] == "chunk" and model["max_chunks"] == 48


def test_the_graph_takes_windows_and_a_truncating_graph_is_refused(long_runs, chunk_onnx, tmp_path):
    from multihot import export as exporting
    from multihot.inference.onnx_backend import onnx_session

    onnx_run, _ = chunk_onnx
    inputs = {i.name for i in onnx_session(onnx_run / "model.onnx").get_inputs()}
    assert inputs == {"input_ids", "attention_mask", "chunk_index"}
    truncating = copy_run(long_runs["truncate"][1], tmp_path / "truncate")
    exporting.export_onnx(truncating)
    (onnx_run / "other.onnx").write_bytes((truncating / "model.onnx").read_bytes())
    with pytest.raises(MultihotError, match="export this run again"):
        Predictor.load(onnx_run, backend="onnx", onnx_path=onnx_run / "other.onnx")


def test_what_cannot_read_windows_says_so(long_runs, tmp_path):
    from multihot import export as exporting

    clf, run = long_runs["chunk"]
    with pytest.raises(MultihotError, match="long_text chunk"):
        exporting.export_hf(run, tmp_path / "hf")
    with pytest.raises(MultihotError, match="windows"):
        clf.explain("azure whale " + " ".join(FILLER))


def test_cli_evaluate_prints_the_length_table(long_runs, tmp_path):
    from helpers import write_jsonl

    texts, labels = long_runs["test"]
    data = write_jsonl(tmp_path / "test.jsonl", texts[:20], labels[:20])
    result = invoke("evaluate", long_runs["truncate"][1], data)
    assert result.exit_code == 0, result.output
    assert "by length in tokens (read up to 64 tokens)" in result.output
    assert "partly unread" in result.output and "513-1024" in result.output
    refused = invoke("train", data, "--long-text", "slice", "-o", tmp_path / "x")
    assert_clean_error(refused, "long_text", "truncate, chunk")
