"""``multihot serve`` as a client sees it: a real server in a subprocess, on a free loopback port
chosen at run time, spoken to over HTTP."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest

from helpers import TOY_TEXTS, Server, invoke, read_jsonl

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

LIMITS = ("--max-texts", 8, "--max-chars", 300, "--max-body-bytes", 4096, "--max-queue", 64)


@pytest.fixture(scope="module")
def server(toy_run):
    _, run = toy_run
    server = Server(run, "--precision", "fp32", "--max-wait-ms", 20, *LIMITS)
    yield server
    assert server.stop() == 0


@pytest.fixture()
def slow_server(toy_run):
    """A server whose batches wait two seconds for company: requests sit in its queue."""
    _, run = toy_run
    server = Server(
        run, "--precision", "fp32", "--max-wait-ms", 2000, "--max-texts", 8, "--max-queue", 16
    )
    yield server
    server.stop()


def probs_of(answer, names) -> np.ndarray:
    return np.array([[p["probs"][n] for n in names] for p in answer["predictions"]])


def test_predictions_equal_the_library_and_carry_the_model_id(server, toy_run):
    clf, _ = toy_run
    status, headers, answer = server.post({"texts": TOY_TEXTS, "return_probs": True})
    assert status == 200
    np.testing.assert_allclose(
        probs_of(answer, clf.label_names), clf.predict_proba(TOY_TEXTS, precision="fp32"), atol=1e-5
    )
    assert [p["labels"] for p in answer["predictions"]] == clf.predict(TOY_TEXTS, precision="fp32")
    assert answer["model_id"] == headers["x-model-id"] and answer["model_id"].startswith("toy@")
    status, _, answer = server.post({"texts": TOY_TEXTS[:2]})
    assert status == 200 and all("probs" not in p for p in answer["predictions"])


def test_the_cli_and_the_server_give_the_same_probabilities(server, toy_run, tmp_path):
    clf, run = toy_run
    out = tmp_path / "predictions.jsonl"
    result = invoke(
        "predict",
        run,
        *sum((["--text", t] for t in TOY_TEXTS[:6]), []),
        "--precision",
        "fp32",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    cli = np.array([[row["probs"][n] for n in clf.label_names] for row in read_jsonl(out)])
    _, _, answer = server.post({"texts": TOY_TEXTS[:6], "return_probs": True})
    np.testing.assert_allclose(probs_of(answer, clf.label_names), cli, atol=1e-5)


def test_the_python_client(server, toy_run):
    from multihot import Client

    clf, _ = toy_run
    client = Client(server.url)
    assert client.predict(TOY_TEXTS) == clf.predict(TOY_TEXTS, precision="fp32")
    np.testing.assert_allclose(
        client.predict_proba(TOY_TEXTS), clf.predict_proba(TOY_TEXTS, precision="fp32"), atol=1e-5
    )
    assert client.label_names == clf.label_names and client.model_id.startswith("toy@")
    assert client.model()["labels"] == clf.label_names


def test_client_errors_name_the_limit(server):
    from multihot import Client, MultihotError
    from multihot.serve.client import ServerError

    with pytest.raises(ServerError, match="too_many_texts") as caught:
        Client(server.url).predict(["a text"] * 9)
    assert caught.value.status == 413
    with pytest.raises(MultihotError, match="cannot reach"):
        Client("http://127.0.0.1:9").predict(["a"])


def test_model_and_labels(server, toy_run):
    clf, _ = toy_run
    _, _, labels = server.get("/v1/labels")
    assert [label["name"] for label in labels["labels"]] == clf.label_names
    np.testing.assert_allclose(
        [label["threshold"] for label in labels["labels"]], clf.thresholds.values
    )
    status, _, model = server.get("/v1/model")
    assert status == 200 and model["labels"] == clf.label_names
    assert model["encoder"] == "scratch-tiny" and model["kind"] == "transformer"
    assert model["validation"]["macro_f1"] == pytest.approx(clf.metrics["validation"]["macro_f1"])
    assert model["versions"]["serving"]["multihot"] and model["versions"]["trained_with"]
    assert model["limits"]["max_texts"] == 8 and model["model_id"] == labels["model_id"]


def test_health_metrics_docs_and_the_page(server):
    assert server.get("/healthz")[0] == 200 and server.get("/readyz")[0] == 200
    server.post({"texts": ["one more"]})
    status, headers, text = server.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'multihot_requests_total{endpoint="/v1/predict",status="200"}' in text
    for name in (
        "request_latency_seconds_bucket",
        "queue_depth",
        "batch_size_bucket",
        "batch_padded_tokens_count",
    ):
        assert f"multihot_{name}" in text
    assert server.get("/openapi.json")[2]["paths"]["/v1/predict"]["post"]
    assert server.get("/docs")[0] == 200
    status, _, page = server.get("/")
    assert status == 200 and "<textarea" in page and "http://" not in page.split("<script>")[1]


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"not json", 400, "invalid_json"),
        (b"\xff\xfe{}", 400, "invalid_encoding"),
        (b"[" * 100_000, 413, "body_too_large"),  # past --max-body-bytes before it is parsed
        (b"[" * 2000 + b"]" * 2000, 400, "invalid_json"),  # nested too deep for the parser
        (b'["a"]', 422, "invalid_request"),
        (b"{}", 422, "invalid_request"),
        (b'{"texts": "one string"}', 422, "invalid_request"),
        (b'{"texts": []}', 422, "invalid_request"),
        (b'{"texts": ["ok", 3]}', 422, "invalid_request"),
        (b'{"texts": ["ok", null]}', 422, "invalid_request"),
        (b'{"texts": ["ok", "  "]}', 422, "invalid_request"),
        (b'{"texts": ["ok"], "return_probs": "yes"}', 422, "invalid_request"),
        (b'{"texts": ["ok"], "return_prob": true}', 422, "invalid_request"),
        (json.dumps({"texts": ["a"] * 9}).encode(), 413, "too_many_texts"),
        (json.dumps({"texts": ["a" * 301]}).encode(), 413, "text_too_long"),
    ],
)
def test_malformed_and_oversized_requests_get_their_4xx(server, body, status, code):
    got, headers, answer = server.post(body)
    assert (got, answer["error"]["code"]) == (status, code), answer
    assert answer["model_id"] == headers["x-model-id"]
    if status == 413:
        assert answer["error"]["limit"] in (8, 300, 4096)


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    chunks = (b'{"texts": ["' + b"a" * 1000 for _ in range(10))  # no Content-Length: chunked
    connection.request(
        "POST",
        "/v1/predict",
        body=chunks,
        encode_chunked=True,
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "body_too_large"
    connection.close()


def test_wrong_methods_and_paths(server):
    status, _, answer = server.get("/v1/predict")
    assert status == 405 and answer["error"]["code"] == "method_not_allowed"
    status, _, answer = server.get("/etc/passwd")
    assert status == 404 and answer["error"]["code"] == "not_found"
    assert server.metric("requests_total") > 0
    text = server.get("/metrics")[2]
    assert 'endpoint="other",status="404"' in text and "passwd" not in text
    assert 'status="500"' not in text


def test_concurrent_requests_get_their_own_answers(server, toy_run):
    clf, _ = toy_run
    texts = [f"{TOY_TEXTS[i % len(TOY_TEXTS)]} {'!' * (i % 5)} {i}" for i in range(48)]
    expected = clf.predict_proba(texts, precision="fp32")
    batches_before = server.metric("batch_size_count")
    start = threading.Barrier(16)

    def ask(i):
        if i < 16:
            start.wait()
        return server.post({"texts": [texts[i]], "return_probs": True})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(len(texts))))
    for i, (status, _, answer) in enumerate(answers):
        assert status == 200
        np.testing.assert_allclose(probs_of(answer, clf.label_names)[0], expected[i], atol=1e-5)
    batches = server.metric("batch_size_count") - batches_before
    assert batches < len(texts), "no two requests shared a forward pass"


def test_a_full_queue_answers_503_with_retry_after(slow_server):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(slow_server.post, {"texts": ["wait"] * 8}) for _ in range(2)]
        deadline = time.monotonic() + 10
        while slow_server.metric("queue_depth") < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, headers, answer = slow_server.post({"texts": ["one too many"]})
        assert status == 503 and answer["error"]["code"] == "queue_full"
        assert headers["retry-after"] == "1"
        assert [f.result()[0] for f in waiting] == [200, 200]


def test_a_request_whose_client_left_is_not_computed(slow_server):
    address = urllib.parse.urlsplit(slow_server.url)
    body = json.dumps({"texts": ["left early", "me too"]}).encode()
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 10
        while slow_server.metric("queue_depth") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    # The socket is closed; the batch would run 2 s after the texts arrived.
    deadline = time.monotonic() + 10
    while slow_server.metric("texts_dropped_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow_server.metric("texts_dropped_total") == 2
    assert slow_server.metric("queue_depth") == 0
    time.sleep(2.2)
    assert slow_server.metric("texts_total") == 0  # nothing was computed for them


def test_sigterm_during_a_burst_loses_no_accepted_request(slow_server):
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        burst = [pool.submit(slow_server.post, {"texts": [f"text {i}"]}) for i in range(12)]
        deadline = time.monotonic() + 10
        while slow_server.metric("queue_depth") < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow_server.metric("queue_depth") == 12
        slow_server.process.send_signal(15)
        results = [f.result(timeout=30) for f in burst]
    assert [status for status, _, _ in results] == [200] * 12
    assert [len(answer["predictions"]) for _, _, answer in results] == [1] * 12
    assert slow_server.process.wait(30) == 0
    # Once it has stopped, nothing listens there.
    with pytest.raises(OSError):
        slow_server.request("GET", "/healthz")


def test_serve_refuses_a_bad_run_or_setting(tmp_path, toy_run):
    from helpers import assert_clean_error

    assert_clean_error(invoke("serve", tmp_path / "missing"), "missing")
    _, run = toy_run
    assert_clean_error(invoke("serve", run, "--backend", "tpu"), "backend")
    assert_clean_error(invoke("serve", run, "--max-queue", 4), "max_queue")


def test_the_onnx_backend_serves_what_the_onnx_predictor_gives(onnx_run):
    pytest.importorskip("onnxruntime")
    from multihot import Predictor

    clf, run, _ = onnx_run
    server = Server(run, "--backend", "onnx")
    try:
        _, headers, answer = server.post({"texts": TOY_TEXTS, "return_probs": True})
        expected = Predictor.load(run, backend="onnx").predict_proba(TOY_TEXTS)
        np.testing.assert_allclose(probs_of(answer, clf.label_names), expected, atol=1e-6)
        _, _, model = server.get("/v1/model")
        assert model["backend"] == "onnx"
        _, _, torch_model = server.get("/v1/labels")
        assert headers["x-model-id"] == model["model_id"] == torch_model["model_id"]
    finally:
        assert server.stop() == 0


def test_several_workers_answer_on_one_port(toy_run):
    clf, run = toy_run
    server = Server(run, "--workers", 2, "--precision", "fp32")
    try:
        answers = [server.post({"texts": TOY_TEXTS[:3], "return_probs": True}) for _ in range(4)]
        for status, _, answer in answers:
            assert status == 200
            np.testing.assert_allclose(
                probs_of(answer, clf.label_names),
                clf.predict_proba(TOY_TEXTS[:3], precision="fp32"),
                atol=1e-5,
            )
    finally:
        assert server.stop() == 0


def test_a_baseline_run_is_served_too(baseline_run):
    from multihot import Classifier

    linear = Classifier.load(baseline_run)
    server = Server(baseline_run)
    try:
        _, _, answer = server.post({"texts": TOY_TEXTS, "return_probs": True})
        np.testing.assert_allclose(
            probs_of(answer, linear.label_names), linear.predict_proba(TOY_TEXTS), atol=1e-6
        )
        assert [p["labels"] for p in answer["predictions"]] == linear.predict(TOY_TEXTS)
        assert server.get("/v1/model")[2]["kind"] == "tfidf-logreg"
    finally:
        assert server.stop() == 0
